"""check_argv against the committed snapshots: pure Python, no engine venv."""
from __future__ import annotations

import json

import pytest

from flagcheck_samples import HOPPER_YAML, SGLANG, VLLM, sglang_launch, vllm_launch
from infra.flagcheck.snapshot import (Problem, check_argv, check_launch, known_options, load_snapshot,
                                      snapshot_path, split_launcher)


def _opts(problems):
    return [p.option for p in problems]


def test_snapshots_are_the_pinned_versions_with_registries():
    for backend, version in (("vllm", "0.33.0"), ("sglang", "0.5.23")):
        snap = load_snapshot(backend)
        assert snap["engine"] == backend and snap["version"] == version
        assert snapshot_path(backend).name == f"{backend}-{version}.json"
        for registry in ("tool_call_parsers", "reasoning_parsers", "attention_backends",
                         "kv_cache_dtypes", "quantization_methods"):
            assert snap["registries"][registry], (backend, registry)


def test_issue_facts_are_in_the_snapshots():
    v, s = load_snapshot("vllm"), load_snapshot("sglang")
    for opt in ("--async-scheduling", "--max-cudagraph-capture-size", "--stream-interval", "--kv-cache-dtype",
                "--attention-backend", "--tool-call-parser", "--reasoning-parser", "--config",
                "--no-enable-prefix-caching"):
        assert opt in v["options"], opt
    for gone in ("--cuda-graph-sizes", "--num-scheduler-steps", "--max-seq-len-to-capture", "--swap-space"):
        assert gone not in v["options"], gone
    assert "openai" in v["registries"]["tool_call_parsers"]
    assert "openai_gptoss" in v["registries"]["reasoning_parsers"]
    assert {"FLASH_ATTN", "TRITON_ATTN"} <= set(v["registries"]["attention_backends"])
    assert "fp8" in v["registries"]["kv_cache_dtypes"]
    assert "gpt-oss" in s["registries"]["tool_call_parsers"] and "harmony" not in s["registries"]["tool_call_parsers"]
    assert "gpt-oss" in s["registries"]["reasoning_parsers"]
    assert "fp8_e4m3" in s["registries"]["kv_cache_dtypes"] and "fp8" not in s["registries"]["kv_cache_dtypes"]
    assert "--tp-size" in s["options"] and "--tp" not in s["options"]
    assert v["options"]["--no-async-scheduling"]["negative"] is True
    assert v["options"]["--max-model-len"]["takes_value"] is True


def test_known_options():
    assert "--tp-size" in known_options("sglang") and "--tensor-parallel-size" in known_options("vllm")
    with pytest.raises(KeyError):
        load_snapshot("tgi")


def test_good_launches_have_no_problems():
    assert check_launch(vllm_launch()) == []
    assert check_launch(sglang_launch()) == []
    # model positional, dotted JSON arg, nargs='+', short alias, BooleanOptionalAction negatives
    assert check_argv("vllm", VLLM + ["-tp", "2", "--served-model-name", "a", "b", "--compilation-config.level", "3",
                                      "--no-async-scheduling", "--disable-log-stats", "--port=8001"]) == []
    assert check_argv("sglang", ["sglang", "serve", "--model-path", "m", "--tensor-parallel-size", "2"]) == []
    assert check_argv("sglang", SGLANG + ["--tool-call-parser", "auto", "--attention-backend", "triton"]) == []


def test_seed_004_amd_command_line():
    argv = ["vllm", "serve", "openai/gpt-oss-120b", "--tensor-parallel-size=8", "--attention-backend",
            "ROCM_AITER_UNIFIED_ATTN", "-cc.pass_config.fuse_rope_kvcache=True", "-cc.use_inductor_graph_partition=True",
            "--gpu-memory-utilization", "0.95", "--block-size=64"]
    assert check_argv("vllm", argv) == []
    assert [p.option for p in check_argv("vllm", argv + ["-cx.level=3"])] == ["-cx.level"]


def test_a_renamed_flag_fails():
    problems = check_argv("vllm", VLLM + ["--max-num-seq", "8"])
    assert _opts(problems) == ["--max-num-seq"]
    assert "--max-num-seqs" in problems[0].fix
    problems = check_argv("sglang", SGLANG + ["--context-len", "4096"])
    assert _opts(problems) == ["--context-len"] and "--context-length" in problems[0].fix


def test_abbreviations_fail_even_though_argparse_takes_them():
    problems = check_argv("sglang", SGLANG + ["--tp", "2"])
    assert _opts(problems) == ["--tp"]
    assert "abbreviation" in problems[0].message and "--tp-size" in problems[0].fix
    problems = check_argv("vllm", VLLM + ["--tensor-parallel", "2"])
    assert _opts(problems) == ["--tensor-parallel"] and "--tensor-parallel-size" in problems[0].fix


def test_underscore_spelling_is_not_exact():
    problems = check_argv("vllm", VLLM + ["--max_model_len", "1000"])
    assert _opts(problems) == ["--max_model_len"] and "--max-model-len" in problems[0].fix


@pytest.mark.parametrize("flag", ["--swap-space", "--num-scheduler-steps", "--cuda-graph-sizes",
                                  "--max-seq-len-to-capture"])
def test_removed_vllm_flags_fail(flag):
    problems = check_argv("vllm", VLLM + [flag, "4"])
    assert _opts(problems) == [flag]  # and its value is not reported as a stray second problem
    assert "removed" in problems[0].fix or "drop" in problems[0].fix


def test_sglang_fp8_kv_cache_dtype_fails_with_the_sglang_name():
    problems = check_argv("sglang", SGLANG + ["--kv-cache-dtype", "fp8"])
    assert _opts(problems) == ["--kv-cache-dtype fp8"] and "fp8_e4m3" in problems[0].fix
    assert check_argv("vllm", VLLM + ["--kv-cache-dtype", "fp8"]) == []  # vLLM's name is fp8


@pytest.mark.parametrize("opt,value,fix", [("--tool-call-parser", "harmony", "gpt-oss"),
                                           ("--reasoning-parser", "gpt_oss", "gpt-oss"),
                                           ("--reasoning-parser", "harmony", "gpt-oss")])
def test_sglang_dynamo_parser_names_fail(opt, value, fix):
    problems = check_argv("sglang", SGLANG + [opt, value])
    assert _opts(problems) == [f"{opt} {value}"] and fix in problems[0].fix


@pytest.mark.parametrize("opt,value,fix", [("--tool-call-parser", "gpt-oss", "openai"),
                                           ("--reasoning-parser", "gpt-oss", "openai_gptoss"),
                                           ("--attention-backend", "flash_attn", "FLASH_ATTN"),
                                           ("--kv-cache-dtype", "fp8_e4m4", "fp8_e4m3")])
def test_vllm_registry_values_argparse_does_not_check(opt, value, fix):
    problems = check_argv("vllm", VLLM + [opt, value])
    assert _opts(problems) == [f"{opt} {value}"] and fix in problems[0].fix


def test_values_and_flags():
    assert _opts(check_argv("vllm", VLLM + ["--max-model-len"])) == ["--max-model-len"]
    assert _opts(check_argv("vllm", VLLM + ["--max-model-len", "--enforce-eager"])) == ["--max-model-len"]
    assert _opts(check_argv("vllm", VLLM + ["--enforce-eager=true"])) == ["--enforce-eager=true"]
    assert _opts(check_argv("sglang", SGLANG + ["--port", "http"])) == ["--port http"]
    assert _opts(check_argv("sglang", SGLANG + ["stray"])) == ["stray"]
    # vLLM takes one positional model right after `serve`, nothing later
    assert _opts(check_argv("vllm", VLLM + ["--port", "8000", "other"])) == ["other"]


def test_ranges_the_parsers_do_not_check():
    assert _opts(check_argv("sglang", SGLANG + ["--mem-fraction-static", "1.5"])) == ["--mem-fraction-static 1.5"]
    assert _opts(check_argv("vllm", VLLM + ["--gpu-memory-utilization", "0"])) == ["--gpu-memory-utilization 0"]
    assert check_argv("vllm", VLLM + ["--gpu-memory-utilization", "1.0"]) == []


def test_vllm_model_flag_is_discouraged_on_the_command_line():
    problems = check_argv("vllm", ["vllm", "serve", "--model", "openai/gpt-oss-20b"])
    assert _opts(problems) == ["--model"] and "positional" in problems[0].fix
    assert check_launch(vllm_launch("model: openai/gpt-oss-20b\n")) == []  # in the YAML it is fine


def test_vllm_yaml_false_is_reported():
    problems = check_launch(vllm_launch(HOPPER_YAML + "enable-chunked-prefill: false\n"))
    assert _opts(problems) == ["enable-chunked-prefill: false"]
    assert problems[0].where == "vllm.yaml"
    assert "--no-enable-chunked-prefill" in problems[0].fix


def test_vllm_yaml_keys_and_values():
    problems = check_launch(vllm_launch("max_num_seqs: 8\nswap-space: 4\nkv-cache-dtype: fp9\nmax-model-len: true\n"
                                        "enforce-eager: 1\n"))
    assert _opts(problems) == ["max_num_seqs", "--swap-space", "max-model-len: true", "enforce-eager: 1",
                               "--kv-cache-dtype fp9"]
    assert {p.where for p in problems} == {"vllm.yaml"}


def test_sglang_yaml_needs_dashes():
    launch = sglang_launch(["--config", "/etc/gptoss/sglang.yaml"],
                           {"sglang.yaml": "tp_size: 2\ncontext-length: 4096\nenable-metrics: true\n"})
    problems = check_launch(launch)
    assert _opts(problems) == ["tp_size"] and "tp-size:" in problems[0].fix


def test_config_file_must_exist_and_be_yaml():
    launch = vllm_launch()
    launch["argv"][launch["argv"].index("/etc/gptoss/vllm.yaml")] = "/etc/gptoss/other.yaml"
    assert _opts(check_launch(launch)) == ["--config /etc/gptoss/other.yaml"]
    launch = vllm_launch()
    launch["files"] = {"vllm.json": json.dumps({"port": 8000})}
    launch["argv"][-1] = "/etc/gptoss/vllm.json"
    assert _opts(check_launch(launch)) == ["--config /etc/gptoss/vllm.json"]


def test_args_files_are_checked_too():
    launch = sglang_launch(files={"sglang.args": "# one per line\n--tp-size\n2\n--tp\n2\n"})
    problems = check_launch(launch)
    assert [(p.where, p.option) for p in problems] == [("sglang.args", "--tp")]


def test_removed_env_var():
    problems = check_launch(vllm_launch(env={"VLLM_ATTENTION_BACKEND": "TRITON_ATTN"}))
    assert _opts(problems) == ["VLLM_ATTENTION_BACKEND"] and problems[0].where == "env"


def test_launcher_words():
    assert split_launcher("vllm", VLLM) == (["vllm", "serve"], ["openai/gpt-oss-120b"])
    assert split_launcher("sglang", ["/usr/bin/python3", "-m", "sglang.launch_server", "--port", "1"])[1] == ["--port", "1"]
    assert split_launcher("vllm", SGLANG) is None
    problems = check_argv("vllm", SGLANG)
    assert len(problems) == 1 and "vllm serve" in problems[0].fix


def test_problem_names_option_and_fix():
    p = Problem("--tp", "abbreviation", "write --tp-size", "argv")
    assert str(p) == "[argv] --tp: abbreviation; fix: write --tp-size"
