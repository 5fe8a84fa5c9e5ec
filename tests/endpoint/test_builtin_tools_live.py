"""builtin_python on the real vLLM (CPU) server started from the local stack's rendered plan, whose
`builtin_tools.python.address` points at the project's real tool server (tests/toolserver/harness.py running_toolserver,
attached to the package servers once in conftest: no extra vLLM start). The tiny model's harmony plugin
writes the python call and answers from the tool's output (tests/vllm_cpu/harmony_plugin.py)."""
from __future__ import annotations

import re

import httpx
import pytest

from infra.builtin_tools import REQUEST_TOOL
from infra.endpoint.checks import SmokeConfig, run_checks
from infra.endpoint.target import resolve_target

pytestmark = pytest.mark.slow


def test_the_engine_runs_with_the_plans_tool_server_flag(open_server):
    argv = open_server.plan.argv
    address = argv[argv.index("--tool-server") + 1]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", address)
    log = open_server.log_path.read_text(errors="replace")
    assert "MCPToolServer initialized with tools: ['python']" in log  # vLLM 0.32 read the server's name


def test_builtin_python_passes(open_server):
    report = run_checks(resolve_target(url=open_server.url, model=open_server.alias),
                        SmokeConfig(only=("builtin_python", "no_harmony_leak")))
    by = report.by_name()
    assert by["builtin_python"].status == "pass", by["builtin_python"].detail
    assert by["no_harmony_leak"].status == "pass", by["no_harmony_leak"].detail
    data = by["builtin_python"].data
    # vLLM 0.32: turn 1 reasoning and the call (a reasoning item), turn 2 reasoning and the answer; the tool's
    # result is not an output item, it came back as prompt tokens of turn 2
    assert data["items"] == ["reasoning", "reasoning", "reasoning", "message"] and data["tool_output_tokens"] > 0
    assert "the call as a reasoning item" in by["builtin_python"].detail


def test_sandbox_refusals_reach_the_model_as_tool_output_and_the_engine_keeps_serving(open_server):
    """Model-written code that reaches for the engine's own port gets an error from the sandbox, which the
    model reads back (the plugin repeats it); the engine and the tool server carry on."""
    port = open_server.plan.port
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 2)\nprint('connected')"
    body = {"model": open_server.alias, "max_output_tokens": 512,
            "input": f"Run this with python:\n```python\n{code}\n```", "tools": [REQUEST_TOOL]}
    r = httpx.post(open_server.url + "/v1/responses", json=body, timeout=120)
    assert r.status_code == 200, r.text[:300]
    out = r.json()
    answer = "".join(c.get("text", "") for i in out["output"] if i["type"] == "message" for c in i["content"])
    assert not re.search(r"^connected$", answer, re.M) and re.search(r"Error|denied|not permitted", answer), answer
    assert out["usage"]["output_tokens_details"]["tool_output_tokens"] > 0
    again = run_checks(resolve_target(url=open_server.url, model=open_server.alias), SmokeConfig(only=("builtin_python",)))
    assert again.checks[0].status == "pass", again.checks[0].detail
