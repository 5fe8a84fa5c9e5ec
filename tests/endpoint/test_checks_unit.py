"""Check logic on replies that a real server would rarely give (no server needed)."""

import json

import httpx
import pytest

from infra.endpoint.checks import (TOOLS, CheckFailed, SmokeConfig, reasoning_of, run_checks,
                                   validate_tool_calls)
from infra.endpoint.target import Target


def call(name="get_weather", args='{"city": "Paris"}', **extra):
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": args}, **extra}


def test_valid_tool_call():
    (c,) = validate_tool_calls([call()], TOOLS, "t")
    assert c == {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "c1"}


@pytest.mark.parametrize("calls,msg", [
    ([], "no tool_calls"),
    ([call(name="get_weather<|channel|>commentary")], "not an offered tool"),
    ([call(args='{"city": ')], "not JSON"),
    ([call(args='["Paris"]')], "not a JSON object"),
    ([call(args='{"town": "Paris"}')], "do not match the schema"),
    ([call(args='{"city": 7}')], "do not match the schema"),
    ([call(args='{"city": "Paris", "unit": "kelvin"}')], "do not match the schema"),
    ([call(args={"city": "Paris"})], "not a string"),
    ([call(type="code")], "type is 'code'"),
])
def test_invalid_tool_calls(calls, msg):
    with pytest.raises(CheckFailed, match=msg):
        validate_tool_calls(calls, TOOLS, "t")


def test_reasoning_field_names():
    assert reasoning_of({"reasoning": "r"}) == ("reasoning", "r")
    assert reasoning_of({"reasoning_content": "r"}) == ("reasoning_content", "r")
    assert reasoning_of({"reasoning": "  ", "content": "x"}) == (None, None)


def test_a_malformed_reply_fails_one_check_not_the_run():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m"}]})
        assert json.loads(request.content)["model"] == "m"
        return httpx.Response(200, json={"choices": ["not an object"]})

    report = run_checks(Target(base_url="http://127.0.0.1:9/v1", health_url="http://127.0.0.1:9/health", model="m"),
                        SmokeConfig(only=("models", "chat", "reasoning")), transport=httpx.MockTransport(handler))
    st = {c.name: c.status for c in report.checks}
    assert st == {"models": "pass", "chat": "fail", "reasoning": "skip"}
    assert report.by_name()["chat"].detail == "choices[0] is not a JSON object"


def test_required_expectations_per_backend_and_version():
    from infra.endpoint.checks import required_expectation

    assert required_expectation("vllm", "0.32.0+cpu")[0] is True
    assert required_expectation("vllm", "0.33.0")[0] is True
    enforced, why = required_expectation("vllm", "0.20.1")
    assert enforced is False and "#44216" in why
    assert required_expectation("sglang", "0.5.23")[0] is None
    assert required_expectation("vllm", None)[0] is None


def test_tpot_uses_vllms_formula_and_usage_when_the_stream_is_one_chunk():
    from infra.endpoint.bench import RequestMetrics

    one_chunk = RequestMetrics(ok=True, ttft=0.99, e2e=1.0, completion_tokens=100, choice_chunks=1, token_chunks=1)
    assert one_chunk.tpot_from_usage and one_chunk.tpot == 1.0 / 100  # not (1.0 - 0.99) / 99
    streamed = RequestMetrics(ok=True, ttft=0.1, e2e=1.0, completion_tokens=10, choice_chunks=11, token_chunks=10)
    assert not streamed.tpot_from_usage and abs(streamed.tpot - 0.9 / 9) < 1e-12
    # random weights behind the harmony parser: a role chunk at the first token, text only at the end;
    # TTFT is the first chunk, so (E2E - TTFT) / (tokens - 1) is still the decode rate, as vLLM computes it
    hidden = RequestMetrics(ok=True, ttft=0.5, e2e=5.61, completion_tokens=512, choice_chunks=3, token_chunks=1)
    assert not hidden.tpot_from_usage and abs(hidden.tpot - 5.11 / 511) < 1e-12
