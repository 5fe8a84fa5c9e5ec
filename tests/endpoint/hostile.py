"""Real HTTP servers on 127.0.0.1 that misbehave the way a broken or hostile endpoint does,
one ``mode`` each, for the clients of ``smoke-test``, ``wait-ready`` and ``bench``.

Written on the standard library's HTTP server and raw socket writes, independent of
``infra.endpoint``, so that a bug in the code under test cannot hide itself here. Every
endless loop ends when the client goes away or the server is stopped.
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A model id that is rich markup, a terminal escape (window title) and matplotlib mathtext.
MARKUP_ID = "[/bold]$\\frac{$\x1b]0;pwned\x07"
MARKUP_CONTENT = "[/]hello [link=file:///etc/passwd]x[/link] \x1b[2J"

# One odd stream per request (the server cycles through them): the event(s) it sends before
# `data: [DONE]`, and the words the client's error must contain.
ODD_STREAMS: list[tuple[str, str]] = [
    ('data: {"choices": {"0": {"delta": {"content": "x"}}}}\n\n', "`choices` is a JSON object, not a list"),
    ('data: {"choices": [{"delta": ["content", "x"]}]}\n\n', "choices[0].delta is a JSON list, not an object"),
    ('data: {"choices": ["x"]}\n\n', "choices[0] is a JSON string, not an object"),
    ('data: {"choices": [{"delta": {"content": 7}}]}\n\n', "choices[0].delta.content is a JSON number, not a string"),
    ('data: {"choices": [{"delta": {"tool_calls": [{"index": [0], "function": {"name": "f"}}]}}]}\n\n',
     "tool_calls[0].index is [0], not an integer"),
    ('data: {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": 5}}]}}]}\n\n',
     "tool_calls[0].function.name is a JSON number, not a string"),
    ('data: {"choices": [{"delta": {"content": "x"}}], "usage": "lots"}\n\n', "`usage` is a JSON string, not an object"),
    ('data: {"choices": [{"delta": {"content": "x"}}], "usage": {"completion_tokens": "3"}}\n\n',
     "usage.completion_tokens is \"3\", not a count"),
    ("data: [1, 2]\n\n", "`data` is a JSON list, not an object"),
    ("data: {half an object\n\n", "`data` is not JSON"),
    ('data: {"error": {"message": "[/bold] overloaded"}}\n\n', "error event: [/bold] overloaded"),
    ("event: ping\nid: 1\n\n" + "data: " + "x" * (2 << 20) + "\n\n", "an SSE line longer than"),
]

MODES = ("slow_drip", "endless_sse", "markup_ids", "malformed_json", "empty_data", "odd_sse", "hidden_text")
# hidden_text: the shape of vLLM's stream for gpt-oss with random weights (`--load-format dummy`, as
# on the lent H200), reconstructed from vLLM's chat streaming code and the H200 runs (not a byte
# capture): the role chunk with the first generated token, then no visible text (the harmony parser
# finds no message in random tokens) until finish_reason "length" and usage's token count.
HIDDEN_FIRST_S, HIDDEN_DECODE_S = 0.2, 0.6


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    obj = {"id": "c", "object": "chat.completion.chunk", "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return "data: " + json.dumps(obj) + "\n\n"


class HostileServer:
    def __init__(self, mode: str, drip_interval: float = 0.3):
        assert mode in MODES, mode
        self.mode = mode
        self.drip_interval = drip_interval   # < every per-operation timeout the tests use
        self.stopping = threading.Event()
        self.requests: list[str] = []
        self._odd = itertools.cycle(range(len(ODD_STREAMS)))
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self, None)

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                server._handle(self, json.loads(self.rfile.read(n) or b"{}"))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HostileServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # ---- helpers ---------------------------------------------------------------------------

    def _write(self, h: BaseHTTPRequestHandler, data: bytes) -> bool:
        try:
            h.wfile.write(data)
            h.wfile.flush()
            return True
        except OSError:  # the client gave up: that is what the tests want
            return False

    def _json(self, h: BaseHTTPRequestHandler, obj: Any, raw: bytes | None = None, status: int = 200) -> None:
        data = raw if raw is not None else json.dumps(obj).encode()
        reason = "OK" if status == 200 else "Error"
        self._write(h, f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(data)}\r\n\r\n".encode() + data)

    def _sse_head(self, h: BaseHTTPRequestHandler) -> bool:
        h.close_connection = True
        return self._write(h, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")

    def _sse_reply(self, h: BaseHTTPRequestHandler, events: str) -> None:
        if self._sse_head(h):
            self._write(h, (events + "data: [DONE]\n\n").encode())

    def _chat_reply(self, model: str, content: str) -> dict[str, Any]:
        return {"id": "c", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}

    # ---- the modes ---------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, body: dict[str, Any] | None) -> None:
        with self._lock:
            self.requests.append(h.path)
        path = h.path.rstrip("/")
        stream = bool(body and body.get("stream"))
        mode = self.mode
        if mode == "slow_drip":  # the status line, headers and a body that never ends, a byte at a time
            h.close_connection = True
            reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{"
            for b in itertools.chain(reply, itertools.repeat(ord(" "))):
                if self.stopping.wait(self.drip_interval) or not self._write(h, bytes([b])):
                    return
        if mode == "endless_sse":  # every answer is an event stream that never ends
            if not self._sse_head(h):
                return
            self._write(h, _chunk({"role": "assistant", "content": ""}).encode())
            while not self.stopping.wait(0.01):
                if not self._write(h, _chunk({"content": "la "}).encode()):
                    return
            return
        if path.endswith("/health"):
            return self._json(h, {"status": "ok"})
        if path.endswith("/models"):
            if mode == "malformed_json":
                return self._json(h, None, raw=b"{not json")
            if mode == "empty_data":
                return self._json(h, {"object": "list", "data": []})
            ids = [MARKUP_ID, "[red]second[/red]"] if mode == "markup_ids" else ["m"]
            return self._json(h, {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})
        if path.endswith("/chat/completions"):
            model = (body or {}).get("model", "m")
            if mode == "malformed_json":
                if stream:
                    return self._sse_reply(h, "data: {oops\n\n")
                return self._json(h, None, raw=b"{oops")
            if mode == "odd_sse" and stream:
                with self._lock:
                    i = next(self._odd)
                return self._sse_reply(h, _chunk({"role": "assistant", "content": ""}) + ODD_STREAMS[i][0])
            if mode == "hidden_text" and stream:
                if not self._sse_head(h) or self.stopping.wait(HIDDEN_FIRST_S):
                    return
                self._write(h, _chunk({"role": "assistant", "content": ""}).encode())
                if self.stopping.wait(HIDDEN_DECODE_S):
                    return
                n = int((body or {}).get("max_tokens") or 16)
                usage = {"id": "c", "object": "chat.completion.chunk", "choices": [],
                         "usage": {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n}}
                self._write(h, (_chunk({}, "length") + "data: " + json.dumps(usage) + "\n\n" + "data: [DONE]\n\n").encode())
                return
            if stream:
                usage = {"id": "c", "object": "chat.completion.chunk", "choices": [],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
                return self._sse_reply(h, _chunk({"role": "assistant", "content": ""})
                                       + _chunk({"content": MARKUP_CONTENT}) + _chunk({}, "stop")
                                       + "data: " + json.dumps(usage) + "\n\n")
            return self._json(h, self._chat_reply(model, MARKUP_CONTENT))
        self._json(h, {"error": {"message": f"no route {h.path}"}}, status=404)

