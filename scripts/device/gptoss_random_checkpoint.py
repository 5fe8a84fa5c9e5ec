"""Write a gpt-oss checkpoint of the real tensor names, shapes and dtypes with random values, to time
weight loading from disk (vLLM's `--load-format dummy` reads nothing). Runs on the device's python3
(torch + safetensors):

    python3 gptoss_random_checkpoint.py CONFIG_JSON OUTDIR [--layers N --experts E]

The layout is the published MXFP4 checkpoint's: per layer self_attn.{q,k,v,o}_proj.{weight,bias} and sinks
(bf16), mlp.router.{weight,bias} (bf16), mlp.experts.{gate_up,down}_proj_{blocks,scales} (uint8: 16 bytes
= 32 fp4 values per block, one e8m0 scale per block) and _bias (bf16); embed_tokens, norm, lm_head.
gpt-oss-20b: 24 layers, 32 experts (about 13 GB); --layers/--experts derive it from the 120b config.
Scales are 127 (2^0) so the random blocks decode to finite values.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

SHARD_BYTES = 4 << 30


def tensors(cfg: dict):
    h, inter, heads, kv, hd = (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"],
                               cfg["num_key_value_heads"], cfg["head_dim"])
    e, vocab, blocks = cfg["num_local_experts"], cfg["vocab_size"], cfg["hidden_size"] // 32
    bf = torch.bfloat16
    yield "model.embed_tokens.weight", (vocab, h), bf
    for n in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{n}"
        yield f"{p}.input_layernorm.weight", (h,), bf
        yield f"{p}.post_attention_layernorm.weight", (h,), bf
        for proj, out in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd)):
            yield f"{p}.self_attn.{proj}_proj.weight", (out, h), bf
            yield f"{p}.self_attn.{proj}_proj.bias", (out,), bf
        yield f"{p}.self_attn.o_proj.weight", (h, heads * hd), bf
        yield f"{p}.self_attn.o_proj.bias", (h,), bf
        yield f"{p}.self_attn.sinks", (heads,), bf
        yield f"{p}.mlp.router.weight", (e, h), bf
        yield f"{p}.mlp.router.bias", (e,), bf
        for proj, out, k_blocks in (("gate_up", 2 * inter, blocks), ("down", h, inter // 32)):
            yield f"{p}.mlp.experts.{proj}_proj_blocks", (e, out, k_blocks, 16), torch.uint8
            yield f"{p}.mlp.experts.{proj}_proj_scales", (e, out, k_blocks), torch.uint8
            yield f"{p}.mlp.experts.{proj}_proj_bias", (e, out), bf
    yield "model.norm.weight", (h,), bf
    yield "lm_head.weight", (vocab, h), bf


def value(name: str, shape, dtype, gen: torch.Generator) -> torch.Tensor:
    if name.endswith("_scales"):
        return torch.full(shape, 127, dtype=dtype)
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    return (torch.randn(shape, generator=gen, dtype=torch.float32) * 0.02).to(dtype)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--experts", type=int)
    a = ap.parse_args()
    cfg = json.loads(Path(a.config).read_text())
    if a.layers:
        cfg["num_hidden_layers"] = a.layers
        cfg["layer_types"] = ["sliding_attention", "full_attention"] * (a.layers // 2)
    if a.experts:
        cfg["num_local_experts"] = a.experts
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    gen = torch.Generator().manual_seed(0)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, shape, dtype in tensors(cfg):
        t = value(name, shape, dtype, gen)
        if size and size + t.numel() * t.element_size() > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += t.numel() * t.element_size()
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i:05d}-of-{len(shards) - 1:05d}.safetensors"
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        for name, t in shard.items():
            weight_map[name] = fname
            total += t.numel() * t.element_size()
        shards[i] = {}
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    print(json.dumps({"dir": str(out), "shards": len(shards), "total_gib": round(total / 2**30, 2),
                      "layers": cfg["num_hidden_layers"], "experts": cfg["num_local_experts"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
