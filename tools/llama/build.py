"""Build ``llama-server`` from the llama-cpp-python sdist and cache it.

Usage: ``python -m tools.llama.build [--jobs N] [--force]``

The sdist ships llama.cpp under ``vendor/llama.cpp`` together with the real gpt-oss
chat template (``models/templates/openai-gpt-oss-120b.jinja``). We download it with
pip (the ordinary PyPI client), configure with cmake so that nothing is downloaded at
build time (no curl, no prebuilt web UI), build only the ``llama-server`` target at
low priority, and keep the binary plus the template in the cache directory.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
TEMPLATE_REL = "vendor/llama.cpp/models/templates/openai-gpt-oss-120b.jinja"
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
]

log = logging.getLogger("tools.llama")


def cache_root() -> Path:
    root = os.environ.get("GPTOSS_STACKS_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "gptoss-stacks"


def _build_dir() -> Path:
    key = hashlib.sha256("\n".join([LLAMA_CPP_PYTHON_VERSION, *CMAKE_FLAGS]).encode()).hexdigest()[:10]
    return cache_root() / "llama" / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}-{key}"


def server_binary_path() -> Path:
    return _build_dir() / "llama-server"


def chat_template_path() -> Path:
    return _build_dir() / "openai-gpt-oss-120b.jinja"


def _progress(msg: str) -> None:
    """One clear progress line on stderr (also logged), visible even under pytest -q."""
    try:
        from rich.console import Console

        # sys.__stderr__: visible even while pytest captures output during fixture setup
        Console(file=sys.__stderr__ or sys.stderr).print(f"[bold cyan]tools.llama[/]: {msg}")
    except Exception:  # rich missing: plain line
        print(f"tools.llama: {msg}", file=sys.__stderr__ or sys.stderr, flush=True)
    log.info(msg)


def _run(cmd: list[str], cwd: Path, logfile: Path) -> None:
    with logfile.open("ab") as fh:
        fh.write(("\n$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-40:]
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n" + "\n".join(tail))


def _download_sdist(dest: Path, logfile: Path) -> Path:
    cached = sorted(dest.glob(f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"))
    if cached:
        return cached[0]
    _progress(f"downloading llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} sdist with pip")
    _run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(dest)],
        cwd=dest, logfile=logfile,
    )
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        raise RuntimeError(f"pip download produced no sdist in {dest}")
    return found[0]


def build_llama_server(jobs: int = 2, force: bool = False) -> Path:
    """Return the path of a cached ``llama-server``, building it first when needed."""
    out = server_binary_path()
    if out.exists() and chat_template_path().exists() and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time per cache: parallel test runs wait for the first one's binary.
    with (out.parent / ".build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _progress("another process is building llama-server; waiting for it to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists() and chat_template_path().exists() and not force:
            return out
        _remove_stale_build_dirs(out.parent)
        return _build_locked(out, jobs)


def _remove_stale_build_dirs(parent: Path) -> None:
    """Remove ``llama-build-<pid>-*`` folders of build processes that no longer exist."""
    for d in parent.glob("llama-build-*-*"):
        try:
            pid = int(d.name.split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


def _build_locked(out: Path, jobs: int) -> Path:
    if shutil.which("cmake") is None or (shutil.which("c++") is None and shutil.which("g++") is None):
        raise RuntimeError("building llama-server needs cmake and a C++ compiler: apt-get install -y cmake g++ (ninja-build optional)")
    downloads = cache_root() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    logfile = out.parent / "build.log"
    logfile.write_text("")
    t0 = time.monotonic()
    sdist = _download_sdist(downloads, logfile)
    with tempfile.TemporaryDirectory(prefix=f"llama-build-{os.getpid()}-", dir=out.parent) as tmp:
        tmpdir = Path(tmp)
        _progress(f"extracting {sdist.name}")
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name or m.name.endswith("/vendor/llama.cpp")]
            tar.extractall(tmpdir, members=members, filter="data")
        src = next(tmpdir.glob("llama_cpp_python-*/vendor/llama.cpp"))
        template = src.parent.parent / TEMPLATE_REL
        bdir = tmpdir / "build"
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        nice = ["nice", "-n", "19"] if shutil.which("nice") else []
        _progress(f"building llama-server (cmake, -j{jobs}, niced; a few minutes on 2 cores; log: {logfile})")
        _run([*nice, "cmake", "-S", str(src), "-B", str(bdir), *gen, *CMAKE_FLAGS], cwd=tmpdir, logfile=logfile)
        _run([*nice, "cmake", "--build", str(bdir), "--target", "llama-server", "-j", str(jobs)], cwd=tmpdir, logfile=logfile)
        built = bdir / "bin" / "llama-server"
        if not built.exists():
            raise RuntimeError(f"build finished but {built} is missing; see {logfile}")
        shutil.copy2(template, chat_template_path())
        tmp_out = out.with_suffix(f".tmp{os.getpid()}")
        shutil.copy2(built, tmp_out)
        os.replace(tmp_out, out)
    _progress(f"llama-server ready at {out} ({time.monotonic() - t0:.0f}s)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    print(build_llama_server(jobs=args.jobs, force=args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
