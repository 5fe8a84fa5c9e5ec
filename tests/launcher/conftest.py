"""Fixtures for the launcher and image tests (helpers live in launcher_support.py).

Only the NVML boundary is faked, by snapshot files built from a real capture (H200) and documented
specs (the rest, each file's `_source` says which). Everything else is real: the core, argparse,
pipes, HTTP, exec, Docker.
"""
from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launcher_support import HERE, ROOT  # noqa: E402

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


