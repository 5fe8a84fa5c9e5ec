import pytest

from infra.catalogue import (defaults, expected_tok_s, get_gpu, get_model, gpus, match_gpu_name, models,
                             presets)
from infra.plan import SETTINGS


def test_model_facts_from_config_json():
    big, small = get_model("openai/gpt-oss-120b"), get_model("openai/gpt-oss-20b")
    assert (big.num_hidden_layers, small.num_hidden_layers) == (36, 24)
    for m in (big, small):
        assert (m.num_attention_heads, m.num_key_value_heads, m.head_dim) == (64, 8, 64)
        assert m.sliding_window == 128 and m.max_position_embeddings == 131072
        # alternating: half the layers are sliding-window, starting with sliding
        assert m.layer_types[0] == "sliding_attention" and m.layer_types[1] == "full_attention"
        assert m.full_attention_layers == m.sliding_attention_layers == m.num_hidden_layers // 2
    assert 60 * 2**30 < big.weights_bytes < 66 * 2**30
    assert 12 * 2**30 < small.weights_bytes < 16 * 2**30


def test_every_gpu_of_the_spec_is_catalogued():
    assert set(gpus()) == {"a100-80gb", "h100-80gb", "h200-141gb", "b200-180gb", "l40s-48gb",
                           "rtx4090-24gb", "mi300x-192gb", "mi355x-288gb"}
    for g in gpus().values():
        assert g.source and g.k8s_product and g.vram_bytes > 20 * 2**30
        assert (g.compute_capability is not None) == (g.vendor == "nvidia")


def test_nvml_names_match_the_catalogue():
    assert match_gpu_name("NVIDIA H200").id == "h200-141gb"
    assert match_gpu_name("NVIDIA H100 80GB HBM3").id == "h100-80gb"
    assert match_gpu_name("NVIDIA A100-SXM4-80GB").id == "a100-80gb"
    assert match_gpu_name("nvidia l40s").id == "l40s-48gb"
    assert match_gpu_name("NVIDIA GeForce RTX 4090").id == "rtx4090-24gb"
    assert match_gpu_name("NVIDIA B200").id == "b200-180gb"
    # A different card with a shared prefix must not be mistaken for a catalogued one.
    assert match_gpu_name("NVIDIA H100 NVL") is None
    assert match_gpu_name("NVIDIA A100-SXM4-40GB") is None
    assert match_gpu_name("Tesla T4") is None


def test_every_preset_row_cites_a_source_and_uses_known_settings():
    rows = list(presets()) + [defaults("vllm"), defaults("sglang")]
    for p in rows:
        assert p.source.strip(), p.id
        assert set(p.settings) <= set(SETTINGS), (p.id, set(p.settings) - set(SETTINGS))
        for key in p.match:
            assert key in {"backend", "arch", "gpu", "model", "tensor_parallel", "speculative", "profile"}
        if "gpu" in p.match:
            assert p.match["gpu"] in gpus()
        if "model" in p.match:
            assert p.match["model"] in models()


def test_seed_facts_in_presets():
    by_id = {p.id: p for p in presets()}
    for fix in ("vllm-h100-tp1-120b", "vllm-a100-tp1-120b"):  # the recipe's OOM fix, on every 80 GB card
        assert by_id[fix].settings == {"gpu_memory_fraction": 0.95, "max_num_batched_tokens": 1024, "max_model_len": 32768}
    assert "flashinfer" not in by_id["sglang-gpt-oss-attention"].limits["attention_backends"]
    assert by_id["vllm-ampere"].settings["attention_backend"] == "TRITON_ATTN"
    assert by_id["vllm-blackwell"].settings["kv_cache_dtype"] == "fp8"
    assert by_id["vllm-blackwell"].env == {"VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8": "1"}
    assert by_id["vllm-amd-cdna3"].env["VLLM_ROCM_USE_AITER"] == "1"
    assert by_id["vllm-amd-cdna4"].weights["openai/gpt-oss-120b"] == "amd/gpt-oss-120b-w-mxfp4-a-fp8"
    assert defaults("sglang").settings["tool_call_parser"] == "gpt-oss"
    assert defaults("vllm").settings["reasoning_parser"] == "openai_gptoss"


def test_expected_tok_s():
    row = expected_tok_s("h100-80gb", "openai/gpt-oss-120b", "sglang")
    assert row["single_stream"] == [45, 55] and "the gpt-oss-sglang image README" in row["source"]
    assert expected_tok_s("mi300x-192gb", "openai/gpt-oss-120b", "sglang") is None


def test_unknown_ids_name_the_alternatives():
    import pytest

    with pytest.raises(KeyError, match="h100-80gb"):
        get_gpu("h100")
    with pytest.raises(KeyError, match="openai/gpt-oss-20b"):
        get_model("gpt-oss-20b")


def test_auto_tensor_parallel_is_the_catalogues_fact(monkeypatch):
    """tensor_parallel: auto reads models.yaml's auto_tensor_parallel, not the model's name."""
    import dataclasses

    from infra import spec as S
    from infra.catalogue import ALL_GPUS, model_ids

    assert get_model("openai/gpt-oss-120b").auto_tensor_parallel == ALL_GPUS
    assert get_model("openai/gpt-oss-20b").auto_tensor_parallel == 1
    stack = S.load_spec({"backend": "vllm", "model": "openai/gpt-oss-120b", "gpu": "h100-80gb", "gpu_count": 4}, "t")
    assert stack.resolved_tp == 4 and stack.tp_uses_all_gpus
    two = dataclasses.replace(get_model("openai/gpt-oss-120b"), auto_tensor_parallel=2)
    monkeypatch.setattr(S, "get_model", lambda _: two)
    assert stack.resolved_tp == 2 and not stack.tp_uses_all_gpus
    # the model ids a stack may name are the catalogue's rows; per-model defaults cover every one
    from typing import get_args

    from infra import constants as C

    assert get_args(S.StackSpec.model_fields["model"].annotation) == model_ids()
    assert set(C.STARTUP_GRACE_SECONDS) == set(C.MODEL_REVISIONS) == set(model_ids())


def test_bad_auto_tensor_parallel_is_refused_where_the_catalogue_is_read(monkeypatch):
    from infra import catalogue

    real = catalogue._load
    monkeypatch.setattr(catalogue, "_load", lambda name: {k: ({**v, "auto_tensor_parallel": "all"} if k != "drafts" else v)
                                                          for k, v in real(name).items()})
    catalogue.models.cache_clear()
    try:
        with pytest.raises(ValueError, match="auto_tensor_parallel 'all' is not all_gpus"):
            catalogue.models()
    finally:
        monkeypatch.undo()
        catalogue.models.cache_clear()
