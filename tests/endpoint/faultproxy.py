"""A real HTTP proxy (127.0.0.1 only) that sits between the smoke-test client and a real
server and reproduces the known gpt-oss serving failure modes, one per ``fault``.

It is deliberately independent of ``infra.endpoint`` (its own SSE splitting), so that a bug
in the code under test cannot hide itself here.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

FAULTS = {
    # fault -> what it does
    "harmony_in_content": "prefix message content with raw harmony tokens",
    "tool_name_channel": "tool name becomes 'get_weather<|channel|>commentary' (vLLM #32587)",
    "args_in_content": "tool arguments returned as raw JSON content, no tool_calls (vLLM #25560)",
    "no_done": "streams end without 'data: [DONE]'",
    "stream_no_tool_call": "streaming with tools: no tool_calls deltas, arguments as content (vLLM #24076)",
    "no_reasoning": "reasoning / reasoning_content removed from replies",
    "no_auth": "requests without a key are let through (the proxy adds the key)",
    "wrong_model": "/v1/models lists another model id",
    # the Responses API, structured output and answers (issue 25)
    "no_responses_route": "a router or proxy that does not forward /v1/responses (404, as a route it lacks)",
    "responses_no_completed": "Responses streams end without their response.completed event",
    "reasoning_in_output_text": "Responses messages carry the reasoning text in front of their output_text",
    "bad_function_args": "Responses function_call arguments break the tool's schema ('city' renamed 'town')",
    "schema_break": "structured-output JSON gets a property the schema forbids",
    "wrong_answer": "every answer is wrong: digits shifted by one, letters lower-cased",
}
_SHIFT = str.maketrans("0123456789", "1234567890")


def _wrong(text: str) -> str:
    return text.translate(_SHIFT).lower()


def _break_schema(text: str) -> str:
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    if isinstance(obj, dict):
        obj["not_in_schema"] = True
    return json.dumps(obj)


def _wants_json(body: dict[str, Any] | None) -> bool:
    body = body or {}
    fmt = ((body.get("text") or {}).get("format") or {}) if isinstance(body.get("text"), dict) else {}
    return (body.get("response_format") or {}).get("type") == "json_schema" or fmt.get("type") == "json_schema"


def _mutate_response(fault: str, obj: dict[str, Any], body: dict[str, Any] | None) -> None:
    """A /v1/responses reply (a Response object), changed in place."""
    items = [i for i in obj.get("output") or [] if isinstance(i, dict)]
    reasoning = "".join(p.get("text") or "" for i in items if i.get("type") == "reasoning" for p in i.get("content") or [])
    for item in items:
        if item.get("type") == "function_call" and fault == "bad_function_args":
            item["arguments"] = item.get("arguments", "").replace('"city"', '"town"')
        for part in item.get("content") or [] if item.get("type") == "message" else []:
            if part.get("type") != "output_text":
                continue
            if fault == "reasoning_in_output_text":
                part["text"] = reasoning + part["text"]
            elif fault == "schema_break" and _wants_json(body):
                part["text"] = _break_schema(part["text"])
            elif fault == "wrong_answer":
                part["text"] = _wrong(part["text"])


def _mutate_message(fault: str, msg: dict[str, Any], choice: dict[str, Any], body: dict[str, Any] | None) -> None:
    if fault == "schema_break" and _wants_json(body) and msg.get("content"):
        msg["content"] = _break_schema(msg["content"])
    elif fault == "wrong_answer" and msg.get("content"):
        msg["content"] = _wrong(msg["content"])
    elif fault == "harmony_in_content" and msg.get("content"):
        msg["content"] = "<|channel|>final<|message|>" + msg["content"]
    elif fault == "tool_name_channel":
        for tc in msg.get("tool_calls") or []:
            tc["function"]["name"] += "<|channel|>commentary"
    elif fault == "args_in_content" and msg.get("tool_calls"):
        msg["content"] = msg["tool_calls"][0]["function"]["arguments"]
        msg.pop("tool_calls")
        choice["finish_reason"] = "stop"
    elif fault == "no_reasoning":
        msg.pop("reasoning_content", None)
        msg.pop("reasoning", None)


def _mutate_chunk(fault: str, obj: dict[str, Any], has_tools: bool) -> None:
    for choice in obj.get("choices") or []:
        delta = choice.get("delta") or {}
        if fault == "stream_no_tool_call" and has_tools:
            calls = delta.pop("tool_calls", None)
            if calls:
                args = "".join((c.get("function") or {}).get("arguments") or "" for c in calls)
                if args:
                    delta["content"] = (delta.get("content") or "") + args
            if choice.get("finish_reason") == "tool_calls":
                choice["finish_reason"] = "stop"
        elif fault == "no_reasoning":
            delta.pop("reasoning_content", None)
            delta.pop("reasoning", None)


class FaultProxy:
    """``listen_after``: for that many seconds the proxy's port is bound but not listening, so connections are
    refused, as a vLLM that is still starting refuses them (vLLM binds its port before the engine loads and
    listens only once it is up: vllm/entrypoints/launchers/launcher.py, setup_server then serve_http)."""

    def __init__(self, upstream: str, fault: str | None = None, api_key: str | None = None, listen_after: float = 0.0):
        assert fault is None or fault in FAULTS, fault
        self.upstream = upstream.rstrip("/")
        self.fault = fault
        self.api_key = api_key
        self.requests = 0
        self._http = httpx.Client(timeout=120)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                proxy._handle(self, None)

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                proxy._handle(self, self.rfile.read(n))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self._server.server_bind()  # the port is taken now; listen() comes in __enter__ (or _serve, after listen_after)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.listen_after = listen_after
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        if self.listen_after:
            self._closing.wait(self.listen_after)
            self._server.server_activate()
        self._server.serve_forever()

    def __enter__(self) -> "FaultProxy":
        if not self.listen_after:
            self._server.server_activate()  # listening before the caller's first request
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def _handle(self, h: BaseHTTPRequestHandler, raw: bytes | None) -> None:
        self.requests += 1
        headers = {}
        if h.headers.get("Authorization"):
            headers["Authorization"] = h.headers["Authorization"]
        elif self.fault == "no_auth" and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = json.loads(raw) if raw else None
        if body is not None:
            headers["Content-Type"] = "application/json"
        stream = bool(body and body.get("stream"))
        has_tools = bool(body and body.get("tools"))
        if self.fault == "no_responses_route" and h.path.startswith("/v1/responses"):
            data = b'{"detail":"Not Found"}'
            h.send_response(404)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        req = self._http.build_request(h.command, self.upstream + h.path, headers=headers, content=raw)
        resp = self._http.send(req, stream=True)
        try:
            ctype = resp.headers.get("content-type", "")
            if stream and resp.status_code == 200 and "event-stream" in ctype:
                self._relay_stream(h, resp, has_tools)
                return
            data = resp.read()
            if resp.status_code == 200 and "json" in ctype:
                obj = json.loads(data)
                if h.path.rstrip("/").endswith("/models") and self.fault == "wrong_model":
                    for m in obj.get("data", []):
                        m["id"] = "someone/another-model"
                for choice in obj.get("choices") or []:
                    if isinstance(choice.get("message"), dict) and self.fault:
                        _mutate_message(self.fault, choice["message"], choice, body)
                if obj.get("object") == "response" and self.fault:
                    _mutate_response(self.fault, obj, body)
                data = json.dumps(obj).encode()
            h.send_response(resp.status_code)
            h.send_header("Content-Type", ctype or "application/octet-stream")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        finally:
            resp.close()

    def _relay_stream(self, h: BaseHTTPRequestHandler, resp: httpx.Response, has_tools: bool) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        buf = ""
        for text in resp.iter_text():
            buf += text.replace("\r\n", "\n")
            while "\n\n" in buf:
                event, buf = buf.split("\n\n", 1)
                out = self._rewrite_event(event, has_tools)
                if out is not None:
                    h.wfile.write((out + "\n\n").encode())
                    h.wfile.flush()
        if buf.strip():
            out = self._rewrite_event(buf, has_tools)
            if out is not None:
                h.wfile.write((out + "\n\n").encode())
        h.close_connection = True

    def _rewrite_event(self, event: str, has_tools: bool) -> str | None:
        if self.fault == "responses_no_completed" and "event: response.completed" in event.split("\n", 1)[0]:
            return None
        if not event.startswith("data:"):
            return event
        payload = event[len("data:"):].strip()
        if payload == "[DONE]":
            return None if self.fault == "no_done" else event
        if self.fault in ("stream_no_tool_call", "no_reasoning"):
            obj = json.loads(payload)
            _mutate_chunk(self.fault, obj, has_tools)
            return "data: " + json.dumps(obj)
        return event
