from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def engine_venvs(request):
    """Both parse-only venvs, built on first use and cached in ~/.cache/gptoss-stacks/engine-venvs.
    Built with pytest's capture off, so a cold build's progress lines reach the CI log as they come."""
    from devtools.flagcheck.venvs import ensure_venv

    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        return {engine: ensure_venv(engine) for engine in ("vllm", "sglang")}
