"""Precedence: catalogue default < GPU preset < stack config < container env < extra_args."""
import yaml
import pytest

from infra.catalogue import get_gpu
from infra.envmap import EnvError, parse_env
from infra.fit import FitError
from infra.plan import Detected, build_plan
from infra.spec import SpecError, load_spec

H100 = {"backend": "vllm", "model": "openai/gpt-oss-120b", "gpu": "h100-80gb"}


def plan(cfg=None, env=None, detected=None, **kw):
    return build_plan(load_spec({**H100, **(cfg or {}), **kw}, stack="p"), env_overrides=env, detected=detected)


def vllm_cfg(p):
    return yaml.safe_load(p.files["vllm.yaml"])


def test_each_layer_overrides_the_one_below():
    # 1. catalogue default (the gpt-oss-vllm image README): 8192 batched tokens; a GPU without a preset for it keeps it.
    p = plan(gpu="a100-80gb", model="openai/gpt-oss-20b")
    assert vllm_cfg(p)["max-num-batched-tokens"] == 8192
    assert p.provenance["max_num_batched_tokens"].startswith("default")
    # 2. GPU preset: H100 TP1 120b OOM fix -> 1024 (the vLLM gpt-oss recipe).
    p = plan()
    assert vllm_cfg(p)["max-num-batched-tokens"] == 1024
    assert p.provenance["max_num_batched_tokens"].startswith("preset vllm-h100-tp1-120b")
    # 3. stack config
    p = plan(max_num_batched_tokens=2048)
    assert vllm_cfg(p)["max-num-batched-tokens"] == 2048 and p.provenance["max_num_batched_tokens"] == "stack config"
    # 4. container env (launcher)
    p = plan(max_num_batched_tokens=2048, env={"MAX_NUM_BATCHED_TOKENS": "4096"})
    assert vllm_cfg(p)["max-num-batched-tokens"] == 4096
    assert p.provenance["max_num_batched_tokens"] == "container env MAX_NUM_BATCHED_TOKENS"
    # 5. extra_args: last word; the lower layers' value is removed from the config file.
    p = plan(max_num_batched_tokens=2048, env={"MAX_NUM_BATCHED_TOKENS": "4096"},
             extra_args=["--max-num-batched-tokens", "512"])
    assert "max-num-batched-tokens" not in vllm_cfg(p)
    assert p.argv[-2:] == ["--max-num-batched-tokens", "512"]


def test_extra_args_replace_negations_and_keep_one_occurrence():
    p = plan(enable_prefix_caching=False, extra_args=["--enable-prefix-caching"])
    assert "--no-enable-prefix-caching" not in p.argv and p.argv.count("--enable-prefix-caching") == 1
    p = build_plan(load_spec({"backend": "sglang", "model": "openai/gpt-oss-20b", "gpu": "h100-80gb",
                              "extra_args": ["--context-length", "8192"]}, stack="s"))
    assert p.argv.count("--context-length") == 1 and p.argv[-1] == "8192"


def test_vllm_negatives_go_on_the_command_line_not_in_yaml():
    p = plan(enable_prefix_caching=False, async_scheduling=False)
    cfg = vllm_cfg(p)
    assert "enable-prefix-caching" not in cfg and "async-scheduling" not in cfg
    assert "--no-enable-prefix-caching" in p.argv and "--no-async-scheduling" in p.argv
    assert False not in cfg.values()  # vLLM silently drops `key: false`
    assert p.argv[:3] == ["vllm", "serve", "openai/gpt-oss-120b"]  # model positional, not --model


def test_sglang_flags_use_sglang_names():
    p = build_plan(load_spec({"backend": "sglang", "model": "openai/gpt-oss-120b", "gpu": "b200-180gb",
                              "kv_cache_dtype": "fp8", "enable_prefix_caching": False}, stack="s"))
    a = p.argv
    assert a[a.index("--tool-call-parser") + 1] == "gpt-oss" and a[a.index("--reasoning-parser") + 1] == "gpt-oss"
    assert a[a.index("--kv-cache-dtype") + 1] == "fp8_e4m3"
    assert "--tp-size" in a and "--tp" not in a and "--disable-radix-cache" in a


def test_seed_env_vars_and_legacy_names():
    sg = load_spec({"backend": "sglang", "model": "openai/gpt-oss-120b", "gpu": "h200-141gb"}, stack="s")
    p = build_plan(sg, env_overrides={"DYN_TOOL_CALL_PARSER": "harmony", "DYN_REASONING_PARSER": "gpt_oss",
                            "MEM_FRACTION_STATIC": "0.85", "MAX_RUNNING_REQUESTS": "4", "CHUNKED_PREFILL": "false"})
    a = p.argv
    assert a[a.index("--tool-call-parser") + 1] == "gpt-oss" and a[a.index("--reasoning-parser") + 1] == "gpt-oss"
    assert a[a.index("--mem-fraction-static") + 1] == "0.85" and a[a.index("--max-running-requests") + 1] == "4"
    assert a[a.index("--chunked-prefill-size") + 1] == "-1"
    assert any("harmony" in w for w in p.warnings) and any("gpt_oss" in w for w in p.warnings)


def test_env_for_the_other_engine_is_ignored_with_a_warning():
    out = parse_env({"MEM_FRACTION_STATIC": "0.8"}, "vllm")
    assert out.values == {} and "GPU_MEMORY_UTILIZATION" in out.warnings[0]


@pytest.mark.parametrize("env", [{"MAX_MODEL_LEN": "lots"}, {"GPU_MEMORY_UTILIZATION": "1.5"},
                                 {"ASYNC_SCHEDULING": "maybe"}, {"MODEL": "openai/gpt-oss-70b"}, {"PORT": "0"}])
def test_bad_env_values_fail_with_one_line(env):
    with pytest.raises(EnvError) as exc:
        parse_env(env, "vllm")
    assert list(env)[0] in str(exc.value) and "\n" not in str(exc.value)


def test_env_model_override_reruns_presets_and_checks():
    p = plan(env={"MODEL": "openai/gpt-oss-20b"})
    assert p.model == "openai/gpt-oss-20b" and p.argv[2] == "openai/gpt-oss-20b"
    assert vllm_cfg(p)["max-num-batched-tokens"] == 8192  # the 120b-only H100 preset no longer applies


def test_max_num_seqs_is_never_lowered_and_facts_are_reported():
    p = plan(max_model_len=131072)
    short = plan()  # the default context: max_num_seqs the same, from the same layer, though 4x fewer full sequences fit
    assert (p.settings["max_num_seqs"], p.provenance["max_num_seqs"]) == (short.settings["max_num_seqs"], short.provenance["max_num_seqs"])
    assert p.fit_figures["fits"] and 1 <= p.fit_figures["max_concurrency_at_max_model_len"] < p.settings["max_num_seqs"]
    assert any("KV cache:" in n and "tokens" in n for n in p.notes)
    with pytest.raises(FitError, match="lower max_model_len"):
        plan(max_model_len=131072, gpu_memory_fraction=0.8)
    p = plan(max_model_len=131072, gpu_memory_fraction=0.8, fit_check="warn")  # the same plan, built with the refusal as a warning
    assert p.fit_figures["fits"] is False and [w for w in p.warnings if w.startswith("fit_check warn:") and "lower max_model_len" in w]


def test_h100_tp2_fraction_limit():
    with pytest.raises(SpecError, match="0.94"):
        plan(gpu_count=2, tensor_parallel=2, gpu_memory_fraction=0.95)


def test_detected_gpu_must_match_declared():
    with pytest.raises(SpecError, match="this host has NVIDIA H200"):
        plan(detected=Detected(get_gpu("h200-141gb"), 1))


def test_auto_gpu_takes_the_detected_gpu_preset_and_fit():
    local = {"backend": "vllm", "model": "openai/gpt-oss-120b", "gpu": "auto"}
    p = build_plan(load_spec(local, stack="l"), detected=Detected(get_gpu("a100-80gb"), 2))
    assert p.gpu == "a100-80gb" and p.tensor_parallel == 2  # seeds: TP = all GPUs for 120b
    assert vllm_cfg(p)["attention-backend"] == "TRITON_ATTN" and p.fit
    p = build_plan(load_spec({**local, "model": "openai/gpt-oss-20b"}, stack="l"),
                   detected=Detected(get_gpu("h100-80gb"), 4))
    assert p.tensor_parallel == 1 and vllm_cfg(p)["attention-backend"] == "FLASH_ATTN"
    with pytest.raises(SpecError, match="20b"):
        build_plan(load_spec(local, stack="l"), detected=Detected(get_gpu("l40s-48gb"), 1))


def test_fit_uses_free_memory_from_the_host():
    gib = 2**30
    with pytest.raises(FitError, match="free memory"):
        plan(detected=Detected(get_gpu("h100-80gb"), 1, free_bytes_per_gpu=40 * gib))


def test_api_key_is_never_on_the_vllm_command_line():
    p = plan(docker={"publish_address": "0.0.0.0"})
    assert p.secrets == [{"env": "API_KEY", "pass_as": {"env": "VLLM_API_KEY"}}]
    assert not any("api-key" in a for a in p.argv)
    sg = build_plan(load_spec({"backend": "sglang", "model": "openai/gpt-oss-20b", "gpu": "h100-80gb",
                               "docker": {"publish_address": "0.0.0.0"}}, stack="s"))
    assert sg.secrets == [{"env": "API_KEY", "pass_as": {"config_key": "api-key"}}]
    assert not any("api-key" in a for a in sg.argv)


def test_blackwell_and_amd_presets():
    b = plan(gpu="b200-180gb")
    assert vllm_cfg(b)["kv-cache-dtype"] == "fp8" and b.env["VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8"] == "1"
    m = plan(gpu="mi355x-288gb")
    assert m.argv[2] == "amd/gpt-oss-120b-w-mxfp4-a-fp8"
    assert vllm_cfg(m)["served-model-name"] == "openai/gpt-oss-120b"
    assert m.env["VLLM_ROCM_QUICK_REDUCE_QUANTIZATION"] == "INT4"


def test_extra_args_are_checked_against_the_engine_options():
    with pytest.raises(SpecError, match="did you mean '--max-num-seqs'"):
        plan(extra_args=["--max-num-seq", "4"])
    with pytest.raises(SpecError, match="exact names only"):
        build_plan(load_spec({"backend": "sglang", "model": "openai/gpt-oss-20b", "gpu": "h100-80gb",
                              "extra_args": ["--tp", "1"]}, stack="s"))
    # removed vLLM flags warn and are dropped (with their value) instead of crashing the engine
    p = plan(extra_args=["--swap-space", "16", "--max-log-len", "100"])
    assert "--swap-space" not in p.argv and "16" not in p.argv and p.argv[-2:] == ["--max-log-len", "100"]
    assert any("--swap-space dropped" in w for w in p.warnings)


def test_attention_backend_is_checked_against_the_engine_registry():
    with pytest.raises(SpecError) as exc:
        plan(attention_backend="FLASH_ATN")
    assert exc.value.field == "attention_backend" and "FLASH_ATTN" in str(exc.value)
    with pytest.raises(SpecError):
        build_plan(load_spec({"backend": "sglang", "model": "openai/gpt-oss-20b", "gpu": "h100-80gb",
                              "attention_backend": "TRITON_ATTN"}, stack="s"))


def test_auto_gpu_container_env_may_use_every_detected_gpu():
    # gpu: auto with the default gpu_count 1: the host's GPUs are the container's, so TP 2 from the env passes.
    local = load_spec({"backend": "vllm", "model": "openai/gpt-oss-20b", "gpu": "auto"}, stack="l")
    p = build_plan(local, env_overrides={"TENSOR_PARALLEL_SIZE": "2"}, detected=Detected(get_gpu("h100-80gb"), 2))
    assert p.tensor_parallel == 2 and p.gpu_count == 2
    with pytest.raises(SpecError, match="tensor_parallel"):
        build_plan(local, env_overrides={"TENSOR_PARALLEL_SIZE": "2"}, detected=Detected(get_gpu("h100-80gb"), 1))


@pytest.mark.parametrize("backend,args,field", [
    ("vllm", ["-dpx", "2"], "extra_args[0]"),  # not an option: refused like a double-dash one
    ("vllm", ["--max-log-len", "10", "-tpp", "2"], "extra_args[2]"),
    ("sglang", ["-O3"], "extra_args[0]"),  # vLLM's compact -O form; SGLang has none
    ("sglang", ["-dp", "2"], "extra_args[0]"),  # vLLM's alias; SGLang has only --dp-size
])
def test_single_dash_extra_args_are_checked_like_the_rest(backend, args, field):
    with pytest.raises(SpecError) as exc:
        build_plan(load_spec({"backend": backend, "model": "openai/gpt-oss-20b", "gpu": "h100-80gb",
                              "extra_args": args}, stack="s"))
    assert exc.value.field == field and "option" in str(exc.value)


@pytest.mark.parametrize("args", [["-O3"], ["-O", "3"], ["-O=3"], ["-Odecode"]])
def test_vllms_compact_optimization_level_is_accepted(args):
    # vLLM's FlexibleArgumentParser rewrites these to --optimization-level before argparse (0.33)
    p = plan(extra_args=args)
    assert p.argv[-len(args):] == args and p.provenance["argv:--optimization-level"] == "extra_args"


def test_an_unknown_option_gets_a_one_line_fix_not_the_option_list():
    with pytest.raises(SpecError) as exc:
        plan(extra_args=["--frobnicate"])
    assert exc.value.fix == "see `vllm serve --help` for its options" and len(str(exc.value)) < 300
    with pytest.raises(SpecError) as exc:
        plan(extra_args=["--max-num-seqz", "3"])
    assert exc.value.fix == "did you mean '--max-num-seqs'?"


def test_single_dash_alias_and_negative_values_in_extra_args():
    # vLLM's -tp is --tensor-parallel-size: it replaces the config file's key (it used to stay beside it)
    p = plan(gpu_count=2, tensor_parallel=2, extra_args=["-tp", "2"])
    assert "tensor-parallel-size" not in vllm_cfg(p) and p.argv[-2:] == ["-tp", "2"]
    assert p.provenance["argv:--tensor-parallel-size"] == "extra_args"
    # a negative number is a value, not an option: SGLang's chunked prefill off replaces the plan's size
    sg = build_plan(load_spec({"backend": "sglang", "model": "openai/gpt-oss-20b", "gpu": "h100-80gb",
                               "extra_args": ["--chunked-prefill-size", "-1"]}, stack="s"))
    assert sg.argv.count("--chunked-prefill-size") == 1 and sg.argv[-2:] == ["--chunked-prefill-size", "-1"]
    assert "--chunked-prefill-size\n-1\n" in sg.files["sglang.args"]
    # an option the engine accumulates is added to: extra_args cannot drop the API-key guard
    p = plan(docker={"publish_address": "0.0.0.0"}, extra_args=["--middleware", "my.Guard"])
    assert p.argv.count("--middleware") == 2 and "infra.launcher.authguard.ApiKeyGuard" in p.argv
