"""wait-ready against a real vLLM, a vLLM that is still starting, and nothing."""

import sys
import time

import pytest

from infra.endpoint.ready import recent_logs, wait_ready
from infra.endpoint.target import resolve_target

from .conftest import TEST_API_KEY, stack_outputs
from .faultproxy import FaultProxy
from .invoke_helpers import run_task


@pytest.mark.slow
def test_ready_server(open_server, capsys):
    res = wait_ready(resolve_target(url=open_server.url, model=open_server.alias), timeout=30, interval=0.2)
    assert res.ready and res.phase == "ready" and open_server.alias in res.models
    code, out, err = run_task(["wait-ready", "--url", open_server.url, "--timeout", "30"], capsys)
    assert code == 0 and "ready after" in err


@pytest.mark.slow
def test_waits_for_a_server_that_is_still_starting(open_server):
    """The real server behind a port that refuses connections for its first 3 s, as a starting vLLM's does
    (FaultProxy's listen_after), instead of a vLLM start of its own (30-40 s of CI)."""
    with FaultProxy(open_server.url, listen_after=3.0) as proxy:
        res = wait_ready(resolve_target(url=proxy.url, model=open_server.alias), timeout=60, interval=0.3)
    assert res.ready and res.seconds > 2.5 and res.polls >= 5  # the first polls (3 s of them) were refused
    assert proxy.requests >= 2 and open_server.alias in res.models  # /health, then /v1/models, from the real server


@pytest.mark.slow
def test_wrong_model_never_becomes_ready(open_server):
    t0 = time.monotonic()
    res = wait_ready(resolve_target(url=open_server.url, model="not/served"), timeout=1.0, interval=0.2)
    assert not res.ready and res.phase == "models" and "not listed" in res.last
    assert time.monotonic() - t0 < 30  # bounded: it stops by itself


def test_timeout_shows_recent_logs_with_secrets_masked(fake_pulumi, tmp_path, capsys):
    logs = [sys.executable, "-c",
            f"print('loading weights'); print('api key is {TEST_API_KEY}'); print('CUDA out of memory')"]
    fake_pulumi("down", stack_outputs("http://127.0.0.1:9", "m", TEST_API_KEY, logs_command=logs))
    t0 = time.monotonic()
    code, out, err = run_task(["wait-ready", "--stack", "down", "--timeout", "1", "--interval", "0.2"], capsys)
    assert code == 1 and time.monotonic() - t0 < 30  # bounded: it stops by itself
    assert "not ready" in err and "CUDA out of memory" in err and "api key is ***" in err
    assert TEST_API_KEY not in out + err


def test_no_logs_command_is_said(capsys):
    code, out, err = run_task(["wait-ready", "--url", "http://127.0.0.1:9", "--timeout", "0.5", "--interval", "0.1"], capsys)
    assert code == 1 and "no logs command" in err
    assert recent_logs(None) is None


def test_a_timeout_is_waited_in_full(capsys):
    """--timeout 4 --interval 2 stopped at 2.3 s ('not ready after 2.0s', then 'not ready within 4s')."""
    t0 = time.monotonic()
    res = wait_ready(resolve_target(url="http://127.0.0.1:9"), timeout=2.0, interval=1.5)
    assert not res.ready and 2.0 <= res.seconds < 2.0 + 5 and time.monotonic() - t0 >= 2.0
    assert "Connection refused" in res.last  # the last real answer, not the deadline cutting the final poll
    code, out, err = run_task(["wait-ready", "--url", "http://127.0.0.1:9", "--timeout", "2", "--interval", "1.5"], capsys)
    assert code == 1 and "not ready after 2." in err and "not ready within 2s" in err
