"""A small synchronous client for the OpenAI-compatible API (httpx).

It knows the few calls the smoke test needs and returns raw status + JSON so that checks
can judge every detail themselves. The API key travels only in the Authorization header.

Every call ends by its deadline: ``timeout`` seconds for the whole request (not per byte), and
no later than the client's ``deadline`` (the whole task's); see :mod:`infra.endpoint.deadline`.
Replies are read up to :data:`MAX_REPLY_BYTES`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from infra.endpoint.deadline import Deadline, http_client, scope
from infra.endpoint.safetext import printable
from infra.endpoint.sse import MAX_STREAM_CHARS, SSEDecoder, SSEEvent, StreamResult, consume, finish
from infra.endpoint.target import Target

MAX_REPLY_BYTES = 16 << 20   # a non-streamed reply; a chat completion is a few KB


class BadReply(httpx.HTTPError):
    """The server answered, but not with what the API promises (too large, not JSON, wrong
    shape). The message is one line naming what was wrong."""


T = TypeVar("T")


def stale_connection(exc: Exception) -> bool:
    """A pooled keep-alive connection the server had already closed: the request was never
    answered (llama-server, for one, may close the connection right after a stream), so
    sending it again on a fresh connection is safe."""
    return isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in str(exc)


def retry_stale(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except httpx.RemoteProtocolError as exc:
        if not stale_connection(exc):
            raise
        return fn()


@dataclass
class Reply:
    status: int
    body: Any            # parsed JSON, or the text when it is not JSON
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == 200 and isinstance(self.body, dict)

    def describe(self) -> str:
        """A short, safe description of a failed reply (server error messages, never headers)."""
        if isinstance(self.body, dict) and "error" in self.body:
            err = self.body["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            return f"HTTP {self.status}: {printable(msg)}"
        return f"HTTP {self.status}: {printable(self.body)}"


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def model_ids(reply: Reply, what: str = "GET /v1/models") -> list[str]:
    """The ids a ``/v1/models`` reply lists (at least one), or BadReply naming what is wrong."""
    if reply.status != 200:
        raise BadReply(f"{what}: {reply.describe()}")
    body = reply.body
    if not isinstance(body, dict):
        shown = f": {printable(body, 60)!r}" if isinstance(body, str) else ""
        raise BadReply(f"{what}: the reply is {'not JSON' if isinstance(body, str) else 'JSON ' + _kind(body)}"
                       f"{shown}, expected an object with a `data` list")
    data = body.get("data")
    if not isinstance(data, list):
        raise BadReply(f"{what}: `data` is {'missing' if data is None else _kind(data)}, expected a list of models")
    if not data:
        raise BadReply(f"{what}: `data` is empty: the server lists no model (still loading?)")
    ids = []
    for i, m in enumerate(data):
        mid = m.get("id") if isinstance(m, dict) else None
        if not isinstance(mid, str) or not mid.strip():
            raise BadReply(f"{what}: data[{i}].id is not a non-empty string ({printable(mid, 60)!r})")
        ids.append(mid)
    return ids


def error_head(resp: httpx.Response) -> str:
    """The first ~4 KB of a failed reply's body, as one printable line."""
    head = b""
    for piece in resp.iter_bytes():
        head += piece
        if len(head) > 4096:
            break
    return printable(head.decode("utf-8", "replace").strip())


# Where each engine says its version (a route beside /v1, JSON with a `version` field).
ENGINE_VERSION_ROUTES = (("vllm", "/version"), ("sglang", "/server_info"))


class EndpointClient:
    def __init__(self, target: Target, timeout: float = 60.0, transport: httpx.BaseTransport | None = None,
                 deadline: Deadline | None = None, max_connections: int = 64):
        self.target = target
        self.timeout = timeout
        self.deadline = deadline  # the whole task's; each request also ends within `timeout`
        self._http = http_client(timeout, transport=transport, max_connections=max_connections)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "EndpointClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, path: str) -> str:
        return self.target.base_url + path

    def _scope(self):
        """The deadline of one request: ``timeout`` from now, or the task's if that is sooner."""
        return scope(self.deadline, Deadline.after(self.timeout, "request"))

    def _send(self, method: str, url: str, **kwargs: Any) -> Reply:
        t0 = time.perf_counter()

        def once() -> Reply:
            with self._http.stream(method, url, **kwargs) as resp:
                raw = bytearray()
                for piece in resp.iter_bytes():
                    raw += piece
                    if len(raw) > MAX_REPLY_BYTES:
                        raise BadReply(f"{method} {url}: the reply is larger than {MAX_REPLY_BYTES} bytes")
                status, encoding = resp.status_code, resp.encoding or "utf-8"
            text = bytes(raw).decode(encoding, errors="replace")
            try:
                body: Any = json.loads(text)
            except ValueError:
                body = text
            return Reply(status, body, time.perf_counter() - t0)

        with self._scope():
            return retry_stale(once)

    def health(self) -> Reply:
        return self._send("GET", self.target.health_url, headers=self.target.headers())

    def models(self, with_key: bool = True) -> Reply:
        return self._send("GET", self._url("/models"), headers=self.target.headers(with_key))

    def _root(self, path: str) -> str:
        """A server route beside /v1 (the engine's own, e.g. /version, /invocations)."""
        base = self.target.base_url
        return (base[: -len("/v1")] if base.endswith("/v1") else base) + path

    def root_get(self, path: str) -> Reply:
        """GET a route beside /v1 (vLLM's /version, SGLang's /server_info)."""
        return self._send("GET", self._root(path), headers=self.target.headers())

    def engine_version(self) -> tuple[str | None, str | None]:
        """(backend, version): vLLM answers GET /version, SGLang GET /server_info, each with a ``version``
        field; only the target's own backend is asked when it is known. (None, None) when neither answers."""
        backend = self.target.backend
        for name, path in ENGINE_VERSION_ROUTES:
            if backend not in (None, name):
                continue
            try:
                r = self.root_get(path)
            except httpx.HTTPError:
                continue
            version = r.body.get("version") if r.ok and isinstance(r.body, dict) else None
            if isinstance(version, str):
                return backend or name, printable(version[:60])
        return backend, None

    def probe(self, method: str, path: str, body: dict[str, Any] | None = None, *, with_key: bool = False) -> Reply:
        """One request to a route beside /v1 (or under it, path starting with /v1), by default without
        the key: what anyone who reaches the port can do."""
        kwargs: dict[str, Any] = {"headers": self.target.headers(with_key)}
        if body is not None:
            kwargs["json"] = body
        return self._send(method, self._root(path), **kwargs)

    def chat(self, body: dict[str, Any], *, with_key: bool = True, key_override: str | None = None) -> Reply:
        headers = self.target.headers(with_key)
        if key_override is not None:
            headers["Authorization"] = f"Bearer {key_override}"
        body = {**body, "stream": False}
        return self._send("POST", self._url("/chat/completions"), json=body, headers=headers)

    def responses(self, body: dict[str, Any]) -> Reply:
        """POST /v1/responses (the Responses API), not streamed."""
        return self._send("POST", self._url("/responses"), json={**body, "stream": False},
                          headers=self.target.headers())

    def responses_stream(self, body: dict[str, Any]) -> tuple[int, list[SSEEvent], str, list[str]]:
        """POST /v1/responses streamed: (status, the SSE events, content-type, errors). The events are
        returned undecoded (the checks judge each one); a non-200 reply leaves its text in ``errors``;
        reading stops after MAX_STREAM_CHARS."""
        with self._scope():
            return retry_stale(lambda: self._responses_stream(body))

    def _responses_stream(self, body: dict[str, Any]) -> tuple[int, list[SSEEvent], str, list[str]]:
        headers = {**self.target.headers(), "Accept": "text/event-stream"}
        events: list[SSEEvent] = []
        with self._http.stream("POST", self._url("/responses"), json={**body, "stream": True}, headers=headers) as resp:
            ctype = resp.headers.get("content-type", "")
            if resp.status_code != 200:
                return resp.status_code, events, ctype, [f"HTTP {resp.status_code}: {error_head(resp)}"]
            dec, chars = SSEDecoder(), 0
            for text in resp.iter_text():
                events.extend(dec.feed(text))
                chars += len(text)
                if chars > MAX_STREAM_CHARS:
                    dec.errors.append(f"the stream went on past {MAX_STREAM_CHARS} characters; stopped reading")
                    break
            else:
                events.extend(dec.flush())
            return resp.status_code, events, ctype, dec.errors

    def post_events(self, path: str, body: dict[str, Any], on_event: Callable[[SSEEvent], None]) -> tuple[int, str]:
        """POST ``body`` (``stream: true``) to ``path`` under /v1 and hand each SSE event to ``on_event``,
        reading at most MAX_STREAM_CHARS. (status, the head of the reply's text when not 200, else "")."""
        def once() -> tuple[int, str]:
            headers = {**self.target.headers(), "Accept": "text/event-stream"}
            with self._http.stream("POST", self._url(path), json={**body, "stream": True}, headers=headers) as resp:
                if resp.status_code != 200:
                    return resp.status_code, error_head(resp)
                dec, read = SSEDecoder(), 0
                for text in resp.iter_text():
                    read += len(text)
                    if read > MAX_STREAM_CHARS:
                        raise BadReply(f"POST {path}: the stream went on past {MAX_STREAM_CHARS} characters")
                    for ev in dec.feed(text):
                        on_event(ev)
                for ev in dec.flush():
                    on_event(ev)
                if dec.errors:  # e.g. an event line over the decoder's limit was dropped: say so, not "no event"
                    raise BadReply(f"POST {path}: {dec.errors[0]}")
                return resp.status_code, ""

        with self._scope():
            return retry_stale(once)

    def chat_stream(self, body: dict[str, Any]) -> tuple[int, StreamResult, str]:
        """(status, assembled stream, content-type). A non-200 reply leaves the error text in
        ``result.errors``."""
        with self._scope():
            return retry_stale(lambda: self._chat_stream(body))

    def _chat_stream(self, body: dict[str, Any]) -> tuple[int, StreamResult, str]:
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        headers = {**self.target.headers(), "Accept": "text/event-stream"}
        result = StreamResult()
        with self._http.stream("POST", self._url("/chat/completions"), json=body, headers=headers) as resp:
            ctype = resp.headers.get("content-type", "")
            if resp.status_code != 200:
                result.errors.append(f"HTTP {resp.status_code}: {error_head(resp)}")
                return resp.status_code, result, ctype
            dec = SSEDecoder()
            for text in resp.iter_text():
                if not consume(dec, result, text, time.perf_counter()):
                    return resp.status_code, result, ctype
            finish(dec, result)
            return resp.status_code, result, ctype
