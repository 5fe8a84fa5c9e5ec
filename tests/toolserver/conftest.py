"""Fixtures for the python tool server tests (the server and client helpers live in harness.py)."""
from __future__ import annotations

import time

import pytest

from tests.toolserver.harness import call, running_toolserver, sandbox_processes


@pytest.fixture(scope="session")
def toolserver(tmp_path_factory):
    with running_toolserver(log_dir=tmp_path_factory.mktemp("toolserver")) as server:
        yield server


@pytest.fixture
def server(toolserver):
    """The shared server; after each test: it still answers, and no sandboxed process is left behind."""
    yield toolserver
    text, is_error = call(toolserver.url, "print('still here')")
    assert (text, is_error) == ("still here\n", False)
    end = time.monotonic() + 10
    while (left := sandbox_processes(toolserver.scratch, toolserver.pid)) and time.monotonic() < end:
        time.sleep(0.2)
    assert not left, f"sandboxed processes outlived their call: {left}"
