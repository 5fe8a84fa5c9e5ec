"""Fixtures for the launcher and image tests (helpers live in launcher_support.py).

Only the NVML boundary is faked, by snapshot files built from a real capture (H200) and documented
specs (the rest, each file's `_source` says which). Everything else is real: the core, argparse,
pipes, HTTP, exec, Docker.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launcher_support import DOCKER_DIR, HERE, ROOT, Docker, _ping, in_ci, require_docker_cli, require_tool  # noqa: E402

from infra.launcher.encodings import EncodingError, verify_dir  # noqa: E402


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(str(item.path)).parents and "docker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)  # starts dockerd and builds images


@pytest.fixture(scope="session")
def encodings_dir() -> Path:
    """The real Harmony encodings: images/encodings if filled, else fetched from PyPI (litellm wheel)."""
    for d in (ROOT / "images" / "encodings", ROOT / ".cache" / "encodings"):
        try:
            verify_dir(d)
            return d
        except EncodingError:
            continue
    sys.path.insert(0, str(ROOT / "images"))
    from fetch_encodings import from_pypi

    dest = ROOT / ".cache" / "encodings"
    from_pypi(dest)
    verify_dir(dest)
    return dest


@pytest.fixture
def engine_bin(tmp_path) -> Path:
    """A PATH dir whose `vllm` is the engine stand-in (tests/launcher/engine_standin.py)."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "vllm"
    exe.write_text(f"#!{sys.executable}\n" + (HERE / "engine_standin.py").read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return d


@pytest.fixture
def sglang_pkg(tmp_path) -> Path:
    """A PYTHONPATH dir whose `sglang.launch_server` is the engine stand-in."""
    d = tmp_path / "pyroot"
    (d / "sglang").mkdir(parents=True)
    (d / "sglang" / "__init__.py").write_text("")
    (d / "sglang" / "launch_server.py").write_text((HERE / "engine_standin.py").read_text())
    return d


# ----------------------------------------------------------------------------- Docker
# Session fixtures here, so the image tests and the tool server's image test share one dockerd.

@pytest.fixture(scope="session")
def docker():
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("the Docker tests need root")
        pytest.skip("the Docker tests need root (dockerd)")
    require_tool("dockerd", "apt-get install docker.io")
    require_tool("docker", "apt-get install docker.io")
    import fcntl
    import shutil

    docker_bin = require_docker_cli()
    base = DOCKER_DIR
    base.mkdir(parents=True, exist_ok=True)
    lock = open(base / "lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        root, private = base, False
    except BlockingIOError:
        root, private = Path(f"{base}-{os.getpid()}"), True
        root.mkdir(parents=True, exist_ok=True)
    host = f"unix://{root}/docker.sock"
    log = open(root / "dockerd.log", "ab")
    # No iptables/bridge: this sandbox has neither; containers run with --network none.
    started = subprocess.Popen(
        ["dockerd", "--iptables=false", "--bridge=none", "--data-root", str(root / "data"),
         "--exec-root", str(root / "exec"), "-H", host, "-p", str(root / "dockerd.pid")],
        stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 90
    while not _ping(docker_bin, host):
        if started.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"dockerd did not start; see {root / 'dockerd.log'}")
        time.sleep(0.5)
    try:
        yield Docker(host)
    finally:
        started.terminate()
        try:
            started.wait(timeout=30)
        except subprocess.TimeoutExpired:
            started.kill()
        lock.close()
        if private:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def standin_base(docker, tmp_path_factory) -> str:
    from standin import build_rootfs_tar

    tar = tmp_path_factory.mktemp("standin") / "rootfs.tar"
    digest = build_rootfs_tar(tar)
    tag = f"gptoss-standin-base:{digest}"
    if docker("image", "inspect", tag, check=False).returncode != 0:
        docker("import", "-c", "ENV PATH=/usr/local/bin:/usr/bin:/bin", tar, tag)
    return tag
