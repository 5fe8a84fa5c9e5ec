"""The launcher's decisions: the image READMEs' env vars and auto-detection table, refusals, secrets.

`prepare()` runs the real core (spec, envmap, presets, fit, plan); only the GPUs come from snapshots.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from launcher_support import ROOT, clean_env, pythonpath, run_launcher, snap_dict, snap_path, snapshot

from infra.launcher.errors import LaunchError
from infra.launcher.main import prepare, redact_argv, redact_env
from infra.launcher.nvml import snapshot_from_dict

GiB = 2**30
SECRETS = {"API_KEY": "sk-launcher-test-0123456789", "HF_TOKEN": "hf_launchertest0123456789",
           "SSH_PASSWORD": "correct-horse-battery-staple", "HUGGING_FACE_HUB_TOKEN": "hf_legacytoken0123456789"}


def launch(backend: str, snap: str = "h200-1gpu.json", **env):
    return prepare(clean_env(**env), backend, snapshot(snap), dry_run=True)


def vllm_cfg(lc) -> dict:
    return yaml.safe_load(next(t for p, t in lc.files.items() if p.endswith("vllm.yaml")))


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


# ----------------------------------------------------------------------------- seeds' auto-detection table

@pytest.mark.parametrize("snap, attention", [
    ("a100-1gpu.json", "TRITON_ATTN"),   # the gpt-oss-vllm RunPod README: A100 -> TRITON_ATTN (attention sinks)
    ("h100-2gpu.json", "FLASH_ATTN"),    # the gpt-oss-vllm RunPod README: H100/H200 -> FLASH_ATTN
    ("h200-1gpu.json", "FLASH_ATTN"),
])
def test_vllm_attention_backend_per_gpu_120b(snap, attention):
    lc = launch("vllm", snap)
    assert vllm_cfg(lc)["attention-backend"] == attention


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
@pytest.mark.parametrize("snap", ["l40s-1gpu.json", "rtx4090-1gpu.json"])
def test_ada_cards_refuse_120b_with_the_fix(backend, snap):
    with pytest.raises(LaunchError, match="for gpt-oss-20b only.*MODEL=openai/gpt-oss-20b"):
        launch(backend, snap)


def test_l40s_runs_20b_with_triton_attention():
    assert vllm_cfg(launch("vllm", "l40s-1gpu.json", MODEL="openai/gpt-oss-20b"))["attention-backend"] == "TRITON_ATTN"
    assert flag(launch("sglang", "l40s-1gpu.json", MODEL="openai/gpt-oss-20b").argv, "--attention-backend") == "triton"


def test_blackwell_gets_its_preset():
    lc = launch("vllm", "b200-1gpu.json")
    assert vllm_cfg(lc)["kv-cache-dtype"] == "fp8"
    assert lc.env["VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8"] == "1"  # the vLLM gpt-oss recipe launch_server.sh, cc 10.0
    assert "vllm-blackwell" in " ".join(lc.summary)


def test_h100_tp1_120b_gets_the_recipes_oom_fix():
    cfg = vllm_cfg(launch("vllm", "h100-1gpu.json"))
    assert (cfg["gpu-memory-utilization"], cfg["max-num-batched-tokens"]) == (0.95, 1024)


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_tp_is_all_gpus_for_120b_and_one_for_20b(backend):
    assert launch(backend, "h100-2gpu.json").plan.tensor_parallel == 2
    assert launch(backend, "h100-2gpu.json", MODEL="openai/gpt-oss-20b").plan.tensor_parallel == 1
    lc = launch(backend, "h100-2gpu.json", MODEL="openai/gpt-oss-20b", TENSOR_PARALLEL_SIZE="2")
    assert lc.plan.tensor_parallel == 2 and "TENSOR_PARALLEL_SIZE" in " ".join(lc.summary)


def test_tp_above_the_gpus_found_is_refused():
    with pytest.raises(LaunchError, match="(exceeds gpu_count|were found)"):
        launch("vllm", "h100-1gpu.json", TENSOR_PARALLEL_SIZE="2")


def test_mig_slice_refuses_120b_and_runs_20b():
    with pytest.raises(LaunchError, match="MIG instance.*gpt-oss-20b"):
        launch("vllm", "h100-mig-2x3g40gb.json")
    lc = launch("sglang", "h100-mig-2x3g40gb.json", MODEL="openai/gpt-oss-20b")
    assert lc.plan.tensor_parallel == 1 and "free memory" in lc.plan.fit


def test_fit_uses_memory_actually_free():
    data = snap_dict("h200-1gpu.json")
    dev = data["devices"][0]
    dev["memory_free"], dev["memory_used"] = 40 * GiB, dev["memory_total"] - 40 * GiB  # someone else holds 100 GiB
    with pytest.raises(LaunchError, match="does not fit.*GiB.*(lower|use)"):
        prepare(clean_env(), "vllm", snapshot_from_dict(data), dry_run=True)
    assert launch("vllm").plan.fit.endswith("fits")


def test_declared_gpu_must_match_unless_auto():
    spec = json.dumps({"backend": "vllm", "gpu": "h100-80gb"})
    with pytest.raises(LaunchError, match="declares NVIDIA H100 80GB but this host has NVIDIA H200.*gpu: auto"):
        launch("vllm", GPTOSS_STACK_SPEC=spec)
    lc = launch("vllm", GPTOSS_STACK_SPEC=json.dumps({"backend": "vllm", "gpu": "h200-141gb", "model": "openai/gpt-oss-20b"}))
    assert lc.plan.gpu == "h200-141gb" and lc.plan.model == "openai/gpt-oss-20b"


def test_stack_for_the_other_engine_is_refused():
    with pytest.raises(LaunchError, match="stack is for backend 'sglang' but this is the vllm image"):
        launch("vllm", GPTOSS_STACK_SPEC=json.dumps({"backend": "sglang", "gpu": "auto"}))


def test_rendered_plan_spec_round_trips_through_the_container():
    """The deploy ships the plan's GPTOSS_STACK_SPEC; the launcher rebuilds the same argv from it."""
    first = launch("sglang", "h100-2gpu.json", MAX_RUNNING_REQUESTS="16")
    again = launch("sglang", "h100-2gpu.json", MAX_RUNNING_REQUESTS="16", GPTOSS_STACK_SPEC=first.env["GPTOSS_STACK_SPEC"])
    assert again.argv == first.argv


# ----------------------------------------------------------------------------- every seed env var

VLLM_VARS = [
    ({"MODEL": "openai/gpt-oss-20b"}, lambda lc: lc.argv[2] == "openai/gpt-oss-20b"),
    ({"MAX_MODEL_LEN": "16384"}, lambda lc: vllm_cfg(lc)["max-model-len"] == 16384),
    ({"GPU_MEMORY_UTILIZATION": "0.85"}, lambda lc: vllm_cfg(lc)["gpu-memory-utilization"] == 0.85),
    ({"MAX_NUM_SEQS": "16"}, lambda lc: vllm_cfg(lc)["max-num-seqs"] == 16),
    ({"MAX_NUM_BATCHED_TOKENS": "4096"}, lambda lc: vllm_cfg(lc)["max-num-batched-tokens"] == 4096),
    ({"ASYNC_SCHEDULING": "false"}, lambda lc: "--no-async-scheduling" in lc.argv),
    ({"ENABLE_PREFIX_CACHING": "false"}, lambda lc: "--no-enable-prefix-caching" in lc.argv),
    ({"ENABLE_CHUNKED_PREFILL": "false", "MAX_NUM_BATCHED_TOKENS": "32768"},
     lambda lc: "--no-enable-chunked-prefill" in lc.argv),
    ({"ENABLE_AUTO_TOOL_CHOICE": "false"}, lambda lc: "enable-auto-tool-choice" not in vllm_cfg(lc)),
    ({"TOOL_CALL_PARSER": "openai"}, lambda lc: vllm_cfg(lc)["tool-call-parser"] == "openai"),
    ({"TOOL_CALL_PARSER": "harmony"}, lambda lc: vllm_cfg(lc)["tool-call-parser"] == "openai"
     and any("harmony" in w for w in lc.warnings)),
    ({"ATTENTION_BACKEND": "TRITON_ATTN"}, lambda lc: vllm_cfg(lc)["attention-backend"] == "TRITON_ATTN"),
    ({"HOST": "127.0.0.1"}, lambda lc: vllm_cfg(lc)["host"] == "127.0.0.1"),
    ({"PORT": "9000"}, lambda lc: vllm_cfg(lc)["port"] == 9000),
    ({"API_KEY": SECRETS["API_KEY"]}, lambda lc: lc.env["VLLM_API_KEY"] == SECRETS["API_KEY"]
     and "API_KEY" not in lc.env and SECRETS["API_KEY"] not in " ".join(lc.argv)),
    ({"SHOW_LOADING_PROGRESS": "true"}, lambda lc: lc.show_progress),
    ({"HUGGING_FACE_HUB_TOKEN": SECRETS["HUGGING_FACE_HUB_TOKEN"]},
     lambda lc: lc.env["HF_TOKEN"] == SECRETS["HUGGING_FACE_HUB_TOKEN"] and "HUGGING_FACE_HUB_TOKEN" not in lc.env),
    ({"HF_TOKEN": SECRETS["HF_TOKEN"]}, lambda lc: lc.env["HF_TOKEN"] == SECRETS["HF_TOKEN"]),
    ({"PUBLIC_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk+runpod user@host"},
     lambda lc: "key login" in " ".join(lc.summary) and "PUBLIC_KEY" not in lc.env),
    ({"SSH_PUBLIC_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk+own me@laptop", "PUBLIC_KEY": "ssh-rsa AAAAB3Nza x"},
     lambda lc: "from SSH_PUBLIC_KEY" in " ".join(lc.summary)),
    ({"SSH_PASSWORD": SECRETS["SSH_PASSWORD"]}, lambda lc: "PASSWORD login" in " ".join(lc.summary)
     and any("!!!" in w for w in lc.warnings) and "SSH_PASSWORD" not in lc.env),
]

SGLANG_VARS = [
    ({"MODEL": "openai/gpt-oss-20b"}, lambda lc: flag(lc.argv, "--model-path") == "openai/gpt-oss-20b"),
    ({"MAX_MODEL_LEN": "65536"}, lambda lc: flag(lc.argv, "--context-length") == "65536"),
    ({"TENSOR_PARALLEL_SIZE": "2"}, lambda lc: flag(lc.argv, "--tp-size") == "2"),
    ({"MEM_FRACTION_STATIC": "0.85"}, lambda lc: flag(lc.argv, "--mem-fraction-static") == "0.85"),
    ({"MAX_RUNNING_REQUESTS": "16"}, lambda lc: flag(lc.argv, "--max-running-requests") == "16"),
    ({"CHUNKED_PREFILL": "false"}, lambda lc: flag(lc.argv, "--chunked-prefill-size") == "-1"),
    ({"ATTENTION_BACKEND": "triton"}, lambda lc: flag(lc.argv, "--attention-backend") == "triton"),
    ({"DYN_TOOL_CALL_PARSER": "harmony"}, lambda lc: flag(lc.argv, "--tool-call-parser") == "gpt-oss"
     and any("harmony" in w and "gpt-oss" in w for w in lc.warnings)),
    ({"DYN_REASONING_PARSER": "gpt_oss"}, lambda lc: flag(lc.argv, "--reasoning-parser") == "gpt-oss"
     and any("gpt_oss" in w for w in lc.warnings)),
    ({"HOST": "127.0.0.1", "PORT": "9001"}, lambda lc: (flag(lc.argv, "--host"), flag(lc.argv, "--port")) == ("127.0.0.1", "9001")),
    ({"API_KEY": SECRETS["API_KEY"]}, lambda lc: SECRETS["API_KEY"] not in " ".join(lc.argv)
     and "--config" in lc.argv and SECRETS["API_KEY"] in lc.secret_files[flag(lc.argv, "--config")]),
    ({"SHOW_LOADING_PROGRESS": "1"}, lambda lc: lc.show_progress),
]


@pytest.mark.parametrize("env, check", VLLM_VARS, ids=[",".join(e) for e, _ in VLLM_VARS])
def test_vllm_seed_variable(env, check):
    assert check(launch("vllm", "h100-2gpu.json", **env))


@pytest.mark.parametrize("env, check", SGLANG_VARS, ids=[",".join(e) for e, _ in SGLANG_VARS])
def test_sglang_seed_variable(env, check):
    assert check(launch("sglang", "h100-2gpu.json", **env))


def test_seed_defaults():
    cfg = vllm_cfg(launch("vllm", "h100-2gpu.json"))  # the gpt-oss-vllm image README Configuration table
    assert (cfg["max-model-len"], cfg["gpu-memory-utilization"], cfg["max-num-seqs"], cfg["max-num-batched-tokens"],
            cfg["port"]) == (32768, 0.9, 128, 8192, 8000)  # 128: the interactive profile
    assert cfg["async-scheduling"] and cfg["enable-prefix-caching"] and cfg["enable-chunked-prefill"]
    assert cfg["enable-auto-tool-choice"] and cfg["tool-call-parser"] == "openai"
    argv = launch("sglang", "h100-2gpu.json", MODEL="openai/gpt-oss-20b").argv  # the gpt-oss-sglang image README tables (no GPU preset for 20b TP1)
    assert (flag(argv, "--context-length"), flag(argv, "--mem-fraction-static"), flag(argv, "--tool-call-parser"),
            flag(argv, "--reasoning-parser")) == ("131072", "0.9", "gpt-oss", "gpt-oss")
    assert flag(argv, "--chunked-prefill-size") != "-1"


def test_other_engines_variable_is_a_warning_not_silence():
    lc = launch("vllm", "h100-2gpu.json", MEM_FRACTION_STATIC="0.8")
    assert any("MEM_FRACTION_STATIC" in w and "GPU_MEMORY_UTILIZATION" in w for w in lc.warnings)


# ----------------------------------------------------------------------------- bad values: one line, exit 2

BAD = [
    ("MAX_MODEL_LEN", "abc", "whole number"),
    ("MAX_MODEL_LEN", "262144", "max"),
    ("GPU_MEMORY_UTILIZATION", "1.5", "0.98"),
    ("ASYNC_SCHEDULING", "maybe", "true or false"),
    ("SHOW_LOADING_PROGRESS", "perhaps", "true or false"),
    ("MODEL", "openai/gpt-oss-999b", "expected one of"),
    ("TENSOR_PARALLEL_SIZE", "3", "divide"),
    ("PORT", "70000", "1..65535"),
    ("API_KEY", "sk-with\nnewline", "whitespace"),
    ("SSH_PUBLIC_KEY", "not-a-key", "OpenSSH public key"),
    ("SSH_PASSWORD", "short", "8 characters"),
    ("GPTOSS_STACK_SPEC", "{not json", "not valid JSON"),
]


@pytest.mark.parametrize("name, value, words", BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_bad_value_exits_2_with_one_line_before_the_engine(tmp_path, name, value, words):
    env = clean_env(GPTOSS_BACKEND="vllm", PYTHONPATH=pythonpath(), **{name: value})
    env["PATH"] = str(tmp_path) + os.pathsep + env["PATH"]  # no engine anywhere it could start
    r = run_launcher(["--gpu-snapshot", str(snap_path("h100-2gpu.json"))], env)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("[gptoss] error: ")
    assert words.lower() in lines[0].lower()
    if name not in ("API_KEY", "SSH_PASSWORD"):
        assert name in lines[0] or name == "GPTOSS_STACK_SPEC" or "tensor_parallel" in lines[0] or "max_model_len" in lines[0]
    assert r.stdout == ""


def test_api_key_required_by_the_stack_but_missing():
    spec = json.dumps({"backend": "vllm", "gpu": "auto", "api_key_mode": "generate"})
    with pytest.raises(LaunchError, match="API_KEY is not set but this stack requires"):
        launch("vllm", GPTOSS_STACK_SPEC=spec)


def test_rocm_image_needs_a_declared_gpu():
    with pytest.raises(LaunchError, match="declare the GPU"):
        prepare(clean_env(GPTOSS_PLATFORM="rocm"), "vllm", None, dry_run=True)
    lc = prepare(clean_env(GPTOSS_PLATFORM="rocm", GPTOSS_STACK_SPEC=json.dumps(
        {"backend": "vllm", "gpu": "mi300x-192gb", "gpu_count": 8, "tensor_parallel": 8})), "vllm", None, dry_run=True)
    assert vllm_cfg(lc)["attention-backend"] == "ROCM_AITER_UNIFIED_ATTN" and lc.env["VLLM_ROCM_USE_AITER"] == "1"


# ----------------------------------------------------------------------------- secrets never printed

@pytest.mark.parametrize("backend", ["vllm", "sglang"])
@pytest.mark.parametrize("as_json", [False, True])
def test_dry_run_never_prints_a_secret(backend, as_json):
    env = clean_env(GPTOSS_BACKEND=backend, PYTHONPATH=pythonpath(), **SECRETS)
    r = run_launcher(["--dry-run", "--gpu-snapshot", str(snap_path("h200-1gpu.json"))] + (["--json"] if as_json else []), env)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for value in SECRETS.values():
        assert value not in out
    if backend == "vllm":
        assert "VLLM_API_KEY" in out and "<redacted>" in out
    else:
        assert "0600" in out or "secret_files" in out
    if as_json:
        data = json.loads(r.stdout)
        assert data["api_key"] is True and data["argv"][0] in ("vllm", "python3")


def test_redaction_helpers():
    assert redact_argv(["x", "--api-key", "s3cret", "--api-key=s3cret", "--port", "1"]) == [
        "x", "--api-key", "<redacted>", "--api-key=<redacted>", "--port", "1"]
    red = redact_env({"HF_TOKEN": "a", "VLLM_API_KEY": "b", "TIKTOKEN_ENCODINGS_BASE": "/opt/tiktoken",
                      "MY_SECRET": "c", "PORT": "8000"})
    assert red == {"HF_TOKEN": "<redacted>", "VLLM_API_KEY": "<redacted>", "TIKTOKEN_ENCODINGS_BASE": "/opt/tiktoken",
                   "MY_SECRET": "<redacted>", "PORT": "8000"}


def test_launcher_never_imports_pulumi():
    code = ("import sys; sys.path.insert(0, %r); from infra.launcher.main import prepare; "
            "from infra.launcher.nvml import load_snapshot; "
            "prepare({'MODEL': 'openai/gpt-oss-20b'}, 'sglang', load_snapshot(%r), dry_run=True); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'pulumi_docker', 'pulumi_kubernetes')))"
            % (str(ROOT), str(snap_path("l40s-1gpu.json"))))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_read_only_config_dir_falls_back_to_a_private_dir():
    from infra.launcher.main import materialise_files

    lc = prepare(clean_env(), "vllm", snapshot("h200-1gpu.json"), dry_run=True, config_dir="/proc/gptoss-nowhere")
    materialise_files(lc, None)
    cfg = lc.argv[lc.argv.index("--config") + 1]
    assert not cfg.startswith("/proc/") and yaml.safe_load(open(cfg))["port"] == 8000
    assert any("read-only" in w for w in lc.warnings)


def test_print_snapshot_without_a_driver(tmp_path):
    from infra.launcher.nvml import NvmlUnavailable, read_nvml

    try:
        read_nvml()
        pytest.skip("this machine has an NVIDIA driver")
    except NvmlUnavailable:
        pass
    r = run_launcher(["--print-snapshot"], clean_env(PYTHONPATH=pythonpath()))
    assert r.returncode == 2 and "NVML could not start" in r.stderr


@pytest.mark.parametrize("env, url", [
    ({}, "http://127.0.0.1:8000/health"),
    ({"PORT": "9000"}, "http://127.0.0.1:9000/health"),
    ({"GPTOSS_STACK_SPEC": '{"port": 8100, "host": "0.0.0.0"}'}, "http://127.0.0.1:8100/health"),
    ({"GPTOSS_STACK_SPEC": '{"port": 8100}', "PORT": "8200", "HOST": "10.0.0.5"}, "http://10.0.0.5:8200/health"),
])
def test_healthcheck_url_follows_the_launcher(env, url):
    from infra.launcher.healthcheck import health_url

    assert health_url(env) == url


def test_engine_sees_the_gpus_the_launcher_checked():
    lc = launch("vllm", "h100-2gpu.json", MODEL="openai/gpt-oss-20b")
    assert lc.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" and "CUDA_VISIBLE_DEVICES" not in lc.env
    mig = launch("sglang", "h100-mig-2x3g40gb.json", MODEL="openai/gpt-oss-20b")
    assert mig.env["CUDA_VISIBLE_DEVICES"] == "MIG-00000000-0000-0000-0000-000000000000"
    chosen = launch("sglang", "h100-mig-2x3g40gb.json", MODEL="openai/gpt-oss-20b",
                    CUDA_VISIBLE_DEVICES="MIG-00000000-0000-0000-0000-000000000001")
    assert chosen.env["CUDA_VISIBLE_DEVICES"].endswith("0001")
