"""The API key on every route of vLLM's server, not only under /v1 (vLLM `--middleware`).

vLLM's own check (`--api-key` / VLLM_API_KEY; vllm/entrypoints/serve/middleware/authenticate.py,
0.32 and 0.33) guards only paths starting with /v1, /v2, /inference and /cohere. Everything else
answers without a key: POST /invocations runs a full chat completion (vllm-project/vllm#58144;
reproduced on the vLLM CPU 0.32 server: 401 on /v1/chat/completions, 200 on /invocations with the
same body), /tokenize, /detokenize, /pooling, /score, /metrics, /version, /load and, in dev mode,
/collective_rpc. vLLM 0.33's `--api-key` help says so itself ("do not rely on --api-key alone").

`ApiKeyGuard` is a plain ASGI middleware that the plan adds with `--middleware` whenever the engine
has a key (infra.plan.api_key_guard_args). It reads the same VLLM_API_KEY the launcher gives vLLM
(so the key stays out of argv) and refuses to start without one (fail closed). Only these pass
without the key:
  - GET/HEAD of OPEN_PATHS (/health: the Docker healthcheck, Kubernetes probes, the launcher's
    progress monitor; it reveals nothing and generates nothing);
  - CORS preflights (OPTIONS with Origin and Access-Control-Request-Method), which vLLM's CORSMiddleware
    answers itself; a bare OPTIONS needs the key (the /metrics Mount answers any method);
  - ASGI scopes other than http/websocket (lifespan).
A websocket without the key is closed before it is accepted (the client sees HTTP 403).

Standard library only: it is imported inside the engine's process (PYTHONPATH=/opt/gptoss in the image).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any, Awaitable, Callable

KEY_ENV = "VLLM_API_KEY"  # vLLM's own variable (vllm/envs.py); the launcher sets it from API_KEY
OPEN_PATHS = frozenset({"/health"})
_OPEN_METHODS = frozenset({"GET", "HEAD"})
_BODY = json.dumps({"error": {"message": "Unauthorized: send the API key as 'Authorization: Bearer <key>'",
                              "type": "authentication_error", "code": 401}}).encode()

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _digest(value: bytes) -> bytes:
    # Compare fixed-length digests so the comparison time says nothing about the key's length.
    return hashlib.sha256(value).digest()


def bearer_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token of the first Authorization header if its scheme is Bearer (any case), else None."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else None
    return None


def _is_preflight(headers: list[tuple[bytes, bytes]]) -> bool:
    """A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method. vLLM's CORSMiddleware (inside
    this guard) answers it without calling any route. A bare OPTIONS is not one: it reaches the routes, and
    the /metrics Mount (prometheus_client's ASGI app) answers any method."""
    names = {name.lower() for name, _ in headers}
    return b"origin" in names and b"access-control-request-method" in names


def is_open(scope: Scope) -> bool:
    """True for requests that need no key (see the module docstring)."""
    if scope["type"] not in ("http", "websocket"):
        return True
    method = scope.get("method", "")
    if method == "OPTIONS" and _is_preflight(scope.get("headers") or []):
        return True
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return scope["type"] == "http" and method in _OPEN_METHODS and path in OPEN_PATHS


class ApiKeyGuard:
    """ASGI middleware: every http/websocket request but the open ones carries the key, or gets 401."""

    def __init__(self, app: Callable[..., Awaitable[None]], keys: list[str] | None = None) -> None:
        self.app = app
        if keys is None:
            keys = [os.environ.get(KEY_ENV, "")]
        keys = [k for k in keys if k]
        if not keys:
            # Added only when the stack has a key: an engine that would serve without one must not start.
            raise RuntimeError(f"gptoss ApiKeyGuard: {KEY_ENV} is empty; the engine would answer without a key. "
                               "Set API_KEY on the container (the launcher passes it as VLLM_API_KEY)")
        self._digests = [_digest(k.encode("utf-8")) for k in keys]

    def allowed(self, scope: Scope) -> bool:
        if is_open(scope):
            return True
        token = bearer_token(scope.get("headers") or [])
        if token is None:
            return False
        got = _digest(token)
        ok = False
        for d in self._digests:
            ok |= hmac.compare_digest(got, d)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allowed(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation; HTTP 403 before accept
        else:
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(_BODY)).encode()),
                                    (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": _BODY})
