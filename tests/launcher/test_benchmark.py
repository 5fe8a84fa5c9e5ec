"""Launcher overhead from start to exec (goal < 1 s).

`test_bench_start_to_exec` times the whole process: interpreter start, imports, spec, detection,
plan, fit, files, exec. The engine is /bin/true under the name `vllm`, so the time is the launcher's.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from launcher_support import ROOT, clean_env, launcher_env, snap_path, snapshot

from infra.launcher.main import prepare

SNAP = str(snap_path("h200-1gpu.json"))


@pytest.fixture
def true_engine(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    os.symlink("/bin/true", d / "vllm")
    return d


def test_bench_start_to_exec(benchmark, tmp_path, encodings_dir, true_engine):
    env = launcher_env(tmp_path, encodings_dir, GPTOSS_BACKEND="vllm", API_KEY="sk-bench-not-secret")
    env["PATH"] = f"{true_engine}{os.pathsep}{env['PATH']}"
    cmd = [sys.executable, "-m", "infra.launcher", "--gpu-snapshot", SNAP, "--config-dir", str(tmp_path / "cfg")]

    def start_to_exec():
        subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)

    benchmark.pedantic(start_to_exec, rounds=5, iterations=1, warmup_rounds=1)
    assert benchmark.stats.stats.median < 1.0


def test_bench_decision_in_process(benchmark):
    env = clean_env(MODEL="openai/gpt-oss-120b", MAX_MODEL_LEN="65536")
    snap = snapshot("h100-2gpu.json")
    lc = benchmark(prepare, env, "sglang", snap, dry_run=True)
    assert lc.plan.tensor_parallel == 2
    assert benchmark.stats.stats.median < 0.25
