"""Helpers shared by the launcher and image tests (a unique module name: other test dirs have a conftest).

Only the NVML boundary is faked, by snapshot files built from a real capture (H200) and documented
specs (the rest, each file's `_source` says which). Everything else is real: the core, argparse,
pipes, HTTP, exec, Docker.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "nvml"
HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(ROOT))

from infra import constants as C  # noqa: E402
from infra.launcher.nvml import snapshot_from_dict  # noqa: E402

SNAPSHOTS = sorted(p.name for p in FIXTURES.glob("*.json"))


def snap_path(name: str) -> Path:
    return FIXTURES / name


def snap_dict(name: str) -> dict:
    return json.loads(snap_path(name).read_text())


def snapshot(name: str, **device_changes):
    data = snap_dict(name)
    for dev in data["devices"]:
        dev.update(device_changes)
    return snapshot_from_dict(data, where=name)


def clean_env(**extra: str) -> dict[str, str]:
    """The container env a test passes: nothing from this machine's env but PATH/HOME."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(extra)
    return env


def pythonpath() -> str:
    """The repo first, then whatever this interpreter was given (on the GPU machine: the carried wheels)."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


def launcher_env(tmp_path: Path, encodings: Path, **extra: str) -> dict[str, str]:
    """Env for a real (non-dry-run) launcher start on this machine: caches and config under tmp."""
    cache = tmp_path / "cache"
    env = clean_env(TIKTOKEN_ENCODINGS_BASE=str(encodings), PYTHONPATH=pythonpath())
    for k, v in C.CACHE_ENV.items():
        env[k] = str(cache / Path(v).relative_to(C.CACHE_ROOT)) if v != C.CACHE_ROOT else str(cache)
    env.update(extra)
    return env


def run_launcher(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.launcher", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def require_tool(name: str, why: str):
    """Skip when a system tool is missing here; in CI (.ci/run installs it) a missing tool is a failure."""
    if shutil.which(name) is None:
        msg = f"{name} not installed ({why})"
        if in_ci():
            pytest.fail(msg + "; .ci/run must install it")
        pytest.skip(msg)


# Strings that must never reach an image layer, its history or its config, although they sit in the
# environment of every build and run below.
CANARIES = {"API_KEY": "sk-canary-image-leak-0001", "HF_TOKEN": "hf_canaryimageleak0002",
            "HUGGING_FACE_HUB_TOKEN": "hf_canaryimageleak0003", "SSH_PASSWORD": "canary-password-0004",
            "REGISTRY_PASSWORD": "canary-registry-0005"}

# One dockerd per checkout (layers cached between runs); a second concurrent session on the same checkout
# gets a private one, so a session ending never stops the daemon another is using.
DOCKER_DIR = Path(f"/tmp/gptoss-dockerd-{__import__('hashlib').sha1(str(ROOT).encode()).hexdigest()[:8]}")


class Docker:
    def __init__(self, host: str):
        self.env = {**os.environ, **CANARIES, "DOCKER_HOST": host}
        self.bin = require_docker_cli()

    def __call__(self, *args, check=True, timeout=600, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run([self.bin, *map(str, args)], env=self.env, capture_output=True, text=True,
                           timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r


def require_docker_cli() -> str:
    return shutil.which("docker")


def _ping(docker_bin: str, host: str) -> bool:
    r = subprocess.run([docker_bin, "-H", host, "version", "--format", "{{.Server.Version}}"],
                       capture_output=True, text=True, timeout=20)
    return r.returncode == 0
