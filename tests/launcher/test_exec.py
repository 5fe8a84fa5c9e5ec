"""The real start path (no --dry-run): exec with the same PID, signals, secrets out of argv, refusals.

The engine is tests/launcher/engine_standin.py on PATH as `vllm` (and as the `sglang.launch_server`
module): no engine can run here, but exec, pipes, signals and files are the real ones.
"""
from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time

import pytest
from launcher_support import ROOT, launcher_env, run_launcher, snap_path

SNAP = str(snap_path("h200-1gpu.json"))


def _env(tmp_path, encodings_dir, engine_bin, **extra):
    env = launcher_env(tmp_path, encodings_dir, GPTOSS_BACKEND="vllm", STANDIN_RECORD=str(tmp_path / "rec.json"), **extra)
    env["PATH"] = f"{engine_bin}{os.pathsep}{env['PATH']}"
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_exec_replaces_the_launcher_process(tmp_path, encodings_dir, engine_bin):
    env = _env(tmp_path, encodings_dir, engine_bin, API_KEY="sk-exec-test-secret-42", HUGGING_FACE_HUB_TOKEN="hf_exectest42")
    proc = subprocess.Popen([sys.executable, "-m", "infra.launcher", "--gpu-snapshot", SNAP,
                             "--config-dir", str(tmp_path / "cfg")], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rec = json.loads((tmp_path / "rec.json").read_text())
    assert rec["pid"] == proc.pid  # exec, not a child: signals from docker stop reach the engine
    assert rec["argv"][1:] == ["serve", "openai/gpt-oss-120b", "--config", str(tmp_path / "cfg" / "vllm.yaml"),
                               "--middleware", "infra.launcher.authguard.ApiKeyGuard"]  # API_KEY set: key on every route
    assert rec["vllm_api_key_set"] and not rec["api_key_in_env"]
    assert "HF_TOKEN" in rec["env"] and "HUGGING_FACE_HUB_TOKEN" not in rec["env"]
    assert "sk-exec-test-secret-42" not in " ".join(rec["argv"]) + out + err
    assert "[gptoss] exec (" in out
    cfg = (tmp_path / "cfg" / "vllm.yaml").read_text()
    assert "port: 8000" in cfg and "sk-exec" not in cfg


def test_sigterm_reaches_the_engine(tmp_path, encodings_dir, engine_bin):
    port = _free_port()
    env = _env(tmp_path, encodings_dir, engine_bin, PORT=str(port), STANDIN_STARTUP="1", STANDIN_STEP_S="0.05",
               STANDIN_SERVE_S="60")
    proc = subprocess.Popen([sys.executable, "-m", "infra.launcher", "--gpu-snapshot", SNAP,
                             "--config-dir", str(tmp_path / "cfg")], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from infra.launcher.progress import http_health

    deadline = time.monotonic() + 30
    while not http_health(f"http://127.0.0.1:{port}/health") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert http_health(f"http://127.0.0.1:{port}/health")
    proc.send_signal(signal.SIGTERM)  # what `docker stop` sends to PID 1
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGTERM  # the engine itself got it (no launcher in between)


def test_progress_mode_end_to_end(tmp_path, encodings_dir, engine_bin):
    port = _free_port()
    env = _env(tmp_path, encodings_dir, engine_bin, PORT=str(port), SHOW_LOADING_PROGRESS="true",
               STANDIN_STARTUP="1", STANDIN_STEP_S="0.2", STANDIN_SERVE_S="1.5")
    proc = subprocess.Popen([sys.executable, "-m", "infra.launcher", "--gpu-snapshot", SNAP,
                             "--config-dir", str(tmp_path / "cfg")], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    rec = json.loads((tmp_path / "rec.json").read_text())
    assert proc.returncode == 0 and rec["pid"] == proc.pid  # still exec'ed with the monitor forked off
    # With a GPU (the H200 run) the line carries NVML's memory too: "[LOADING] ###--- 13.1GB / 140GB - loading weights..."
    assert re.search(r"\[LOADING\] (\S+ [\d.]+GB / \d+GB - )?loading weights\.\.\.", out)
    assert re.search(r"\[LOADING\] (\S+ [\d.]+GB / \d+GB - )?capturing CUDA graphs\.\.\.", out)
    assert "[OK] MODEL READY (loaded in" in out and f"API available at http://0.0.0.0:{port}/v1" in out
    assert "Starting to load model" in out  # the engine's own log passes through


def test_progress_mode_reports_a_crash(tmp_path, encodings_dir, engine_bin):
    env = _env(tmp_path, encodings_dir, engine_bin, PORT=str(_free_port()), SHOW_LOADING_PROGRESS="true",
               STANDIN_STARTUP="1", STANDIN_STEP_S="0.05", STANDIN_EXIT="3")
    proc = subprocess.run([sys.executable, "-m", "infra.launcher", "--gpu-snapshot", SNAP,
                           "--config-dir", str(tmp_path / "cfg")], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 3  # the engine's own exit code
    assert "CUDA out of memory (stand-in crash)" in proc.stderr
    # The monitor shares stdout, so run() returns only after it has written its verdict.
    assert "[FAILED] the engine stopped before it was ready" in proc.stdout


def test_sglang_api_key_goes_in_a_0600_config_file(tmp_path, encodings_dir, sglang_pkg):
    env = launcher_env(tmp_path, encodings_dir, GPTOSS_BACKEND="sglang", API_KEY="sk-sglang-secret-77",
                       STANDIN_RECORD=str(tmp_path / "rec.json"), MODEL="openai/gpt-oss-20b")
    env["PYTHONPATH"] = f"{sglang_pkg}{os.pathsep}{env['PYTHONPATH']}"
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}"
    r = run_launcher(["--gpu-snapshot", SNAP, "--config-dir", str(tmp_path / "cfg")], env)
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "rec.json").read_text())
    argv = rec["argv"]
    assert "sk-sglang-secret-77" not in " ".join(argv) + r.stdout + r.stderr
    secret = argv[argv.index("--config") + 1]
    st = os.stat(secret)
    assert stat.S_IMODE(st.st_mode) == 0o600 and stat.S_IMODE(os.stat(os.path.dirname(secret)).st_mode) == 0o700
    assert open(secret).read() == 'api-key: "sk-sglang-secret-77"\n'
    assert "API_KEY" not in rec["env"]


def test_missing_engine_is_exit_127(tmp_path, encodings_dir):
    env = launcher_env(tmp_path, encodings_dir, GPTOSS_BACKEND="vllm")
    env["PATH"] = str(tmp_path)  # no vllm
    r = subprocess.run([sys.executable, "-m", "infra.launcher", "--gpu-snapshot", SNAP, "--config-dir", str(tmp_path / "c")],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 127 and "engine command 'vllm' not found" in r.stderr


def test_missing_harmony_encodings_refuse_to_start(tmp_path, engine_bin, encodings_dir):
    empty = tmp_path / "enc"
    empty.mkdir()
    env = _env(tmp_path, empty, engine_bin)
    r = run_launcher(["--gpu-snapshot", SNAP, "--config-dir", str(tmp_path / "cfg")], env)
    assert r.returncode == 2 and "o200k_base.tiktoken is missing" in r.stderr
    assert not (tmp_path / "rec.json").exists()  # the engine never started


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_root_launcher_keeps_root_only_with_a_reason(tmp_path, encodings_dir, engine_bin):
    env = _env(tmp_path, encodings_dir, engine_bin)
    r = run_launcher(["--gpu-snapshot", SNAP, "--config-dir", str(tmp_path / "cfg")], env)
    # This machine has no `gptoss` user, so the launcher says why the engine stays root.
    assert r.returncode == 0 and "no 'gptoss' user" in r.stdout
