from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def engine_venvs():
    """Both parse-only venvs, built on first use and cached in ~/.cache/gptoss-stacks/engine-venvs."""
    from infra.flagcheck.venvs import ensure_venv

    return {engine: ensure_venv(engine) for engine in ("vllm", "sglang")}
