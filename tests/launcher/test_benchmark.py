"""Launcher overhead from start to exec (goal < 1 s) and the in-process decision (goal < 0.25 s).

`test_bench_start_to_exec` times the whole process: interpreter start, imports, spec, detection,
plan, fit, files, exec. The engine is a two-line shell script under the name `vllm` that writes down
its arguments, so the time is the launcher's and the test sees what was exec'd.
The figures are pytest-benchmark's table, never asserted (a loaded CI machine would fail a timed
assert for nothing); each test asserts what the launcher did.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest
from launcher_support import ROOT, clean_env, launcher_env, snap_path, snapshot

from infra.launcher.main import prepare

SNAP = str(snap_path("h200-1gpu.json"))


@pytest.fixture
def recording_engine(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    engine = d / "vllm"
    engine.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {shlex.quote(str(d / 'argv'))}\n")
    engine.chmod(0o755)
    return d


def test_bench_start_to_exec(benchmark, tmp_path, encodings_dir, recording_engine):
    env = launcher_env(tmp_path, encodings_dir, GPTOSS_BACKEND="vllm", API_KEY="sk-bench-not-secret")
    env["PATH"] = f"{recording_engine}{os.pathsep}{env['PATH']}"
    cmd = [sys.executable, "-m", "infra.launcher", "--gpu-snapshot", SNAP, "--config-dir", str(tmp_path / "cfg")]

    def start_to_exec():
        subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)

    benchmark.pedantic(start_to_exec, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["goal_s"] = 1.0
    argv = (recording_engine / "argv").read_text().splitlines()  # the engine ran, with the plan's command line
    config = tmp_path / "cfg" / "vllm.yaml"
    assert argv[:4] == ["serve", "openai/gpt-oss-120b", "--config", str(config)] and config.is_file(), argv


def test_bench_decision_in_process(benchmark):
    env = clean_env(MODEL="openai/gpt-oss-120b", MAX_MODEL_LEN="65536")
    snap = snapshot("h100-2gpu.json")
    lc = benchmark(prepare, env, "sglang", snap, dry_run=True)
    benchmark.extra_info["goal_s"] = 0.25
    assert lc.plan.tensor_parallel == 2


# Hostile 100 kB engine lines (issue 24, finding 5): a digit run, and the markers the SGLang rules scan on from.
HOSTILE_LINES = ["9" * 100_000, "1," * 50_000, "max_total_num_tokens=" * 4_762, "KV Cache is allocated. " * 4_348]


def test_bench_selfcheck_on_100kb_hostile_lines(benchmark):
    """The self-check's cost on lines it must never stall the engine's output for. Every pattern is searched over the
    whole 100 kB (not only the MAX_LINE_CHARS the monitor reads), so the figure is the patterns' own; their linearity
    is by construction (tests/launcher/test_selfcheck.py: each reads a bounded window). Before the fix one
    5,000-digit line took 1.5-2 s; after it, the four 100 kB lines through every rule take ~0.2 s here."""
    from infra.launcher.selfcheck import RULES, StartupLog

    patterns = [r.pattern for rules in RULES.values() for r in rules]

    def search_all():
        hits = 0
        for line in HOSTILE_LINES:
            hits += sum(p.search(line) is not None for p in patterns)
            for backend in RULES:
                StartupLog(backend).feed(line)  # the monitor's path: cut at MAX_LINE_CHARS, then matched
        return hits

    assert benchmark.pedantic(search_all, rounds=3, iterations=1, warmup_rounds=0) == 0
