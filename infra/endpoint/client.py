"""A small synchronous client for the OpenAI-compatible API (httpx).

It knows the few calls the smoke test needs and returns raw status + JSON so that checks
can judge every detail themselves. The API key travels only in the Authorization header.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from infra.endpoint.sse import SSEDecoder, StreamResult
from infra.endpoint.target import Target


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
            return f"HTTP {self.status}: {str(msg)[:200]}"
        text = self.body if isinstance(self.body, str) else str(self.body)
        return f"HTTP {self.status}: {text[:200]}"


class EndpointClient:
    def __init__(self, target: Target, timeout: float = 60.0, transport: httpx.BaseTransport | None = None):
        self.target = target
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                  transport=transport, follow_redirects=False,
                                  limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "EndpointClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, path: str) -> str:
        return self.target.base_url + path

    @staticmethod
    def _reply(resp: httpx.Response, t0: float) -> Reply:
        try:
            body: Any = resp.json()
        except ValueError:
            body = resp.text
        return Reply(resp.status_code, body, time.perf_counter() - t0)

    def health(self) -> Reply:
        t0 = time.perf_counter()
        return self._reply(retry_stale(lambda: self._http.get(self.target.health_url, headers=self.target.headers())), t0)

    def models(self, with_key: bool = True) -> Reply:
        t0 = time.perf_counter()
        return self._reply(retry_stale(lambda: self._http.get(self._url("/models"), headers=self.target.headers(with_key))), t0)

    def chat(self, body: dict[str, Any], *, with_key: bool = True, key_override: str | None = None) -> Reply:
        headers = self.target.headers(with_key)
        if key_override is not None:
            headers["Authorization"] = f"Bearer {key_override}"
        t0 = time.perf_counter()
        body = {**body, "stream": False}
        return self._reply(retry_stale(lambda: self._http.post(self._url("/chat/completions"), json=body, headers=headers)), t0)

    def chat_stream(self, body: dict[str, Any]) -> tuple[int, StreamResult, str]:
        """(status, assembled stream, content-type). A non-200 reply leaves the error text in
        ``result.errors``."""
        return retry_stale(lambda: self._chat_stream(body))

    def _chat_stream(self, body: dict[str, Any]) -> tuple[int, StreamResult, str]:
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        headers = {**self.target.headers(), "Accept": "text/event-stream"}
        result = StreamResult()
        with self._http.stream("POST", self._url("/chat/completions"), json=body, headers=headers) as resp:
            ctype = resp.headers.get("content-type", "")
            if resp.status_code != 200:
                resp.read()
                result.errors.append(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return resp.status_code, result, ctype
            dec = SSEDecoder()
            for text in resp.iter_text():
                now = time.perf_counter()
                for ev in dec.feed(text):
                    result.add_event(ev, now)
            for ev in dec.flush():
                result.add_event(ev)
            return resp.status_code, result, ctype
