"""The API-key guard (infra/launcher/authguard.py) as vLLM runs it: an ASGI middleware around the app.

Driven through real ASGI calls (scope, receive, send) around a small ASGI app that records what
reached it; the live proof on the real vLLM CPU server is tests/endpoint/test_auth_routes.py."""
from __future__ import annotations

import asyncio

import pytest

from infra.launcher.authguard import KEY_ENV, ApiKeyGuard, bearer_token
from infra.plan import api_key_guard_args, build_plan, merge_extra_args
from infra.stackfile import load_stack

KEY = "test-key-" + "k" * 24


def _call(guard: ApiKeyGuard, scope: dict) -> tuple[list[dict], list[str]]:
    reached: list[str] = []
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg):
        sent.append(msg)

    async def go():
        await guard(scope, receive, send)

    async def app(scope, receive, send):
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    guard.app = app
    asyncio.run(go())
    return sent, reached


def _http(path: str, method: str = "POST", auth: bytes | None = None, root: str = "") -> dict:
    headers = [(b"host", b"x")] + ([(b"authorization", auth)] if auth is not None else [])
    return {"type": "http", "method": method, "path": root + path, "root_path": root, "headers": headers}


def _status(sent: list[dict]) -> int:
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


@pytest.mark.parametrize("path", ["/invocations", "/tokenize", "/detokenize", "/metrics", "/version", "/load",
                                  "/pooling", "/collective_rpc", "/v1/chat/completions", "/health/../invocations",
                                  "/HEALTH", "/health/", "/nonexistent"])
def test_every_route_but_health_needs_the_key(path):
    guard = ApiKeyGuard(None, keys=[KEY])
    sent, reached = _call(guard, _http(path))
    assert _status(sent) == 401 and reached == []
    assert any((b"www-authenticate", b"Bearer") == h for h in sent[0]["headers"])
    sent, reached = _call(guard, _http(path, auth=b"Bearer " + KEY.encode()))
    assert _status(sent) == 200 and reached == [path]


@pytest.mark.parametrize("auth", [b"Bearer wrong", b"Basic " + KEY.encode(), KEY.encode(), b"Bearer ",
                                  b"Bearer " + KEY.encode() + b"x", b"bearer " + KEY.encode()[:-1]])
def test_a_wrong_or_malformed_key_is_refused(auth):
    sent, reached = _call(ApiKeyGuard(None, keys=[KEY]), _http("/invocations", auth=auth))
    assert _status(sent) == 401 and reached == []


def test_scheme_is_case_insensitive_as_in_vllm():
    sent, reached = _call(ApiKeyGuard(None, keys=[KEY]), _http("/invocations", auth=b"bearer " + KEY.encode()))
    assert _status(sent) == 200


def test_open_without_key_health_get_cors_preflight_and_lifespan():
    guard = ApiKeyGuard(None, keys=[KEY])
    preflight = _http("/invocations", "OPTIONS")
    preflight["headers"] += [(b"Origin", b"https://app.example"), (b"Access-Control-Request-Method", b"POST")]
    for scope in (_http("/health", "GET"), _http("/health", "HEAD"), preflight, _http("/health", "GET", root="/engine")):
        sent, reached = _call(guard, scope)
        assert reached, scope
    sent, reached = _call(guard, _http("/health", "POST"))
    assert _status(sent) == 401
    # a bare OPTIONS is no preflight: it reaches the routes (vLLM's /metrics Mount answers any method)
    for path in ("/metrics", "/invocations"):
        sent, reached = _call(guard, _http(path, "OPTIONS"))
        assert _status(sent) == 401 and reached == []
    sent, reached = _call(guard, {"type": "lifespan"} | {"path": "lifespan"})
    assert reached == ["lifespan"]


def test_websocket_without_key_is_closed_before_accept():
    sent, reached = _call(ApiKeyGuard(None, keys=[KEY]), {"type": "websocket", "path": "/v1/realtime", "headers": []})
    assert sent == [{"type": "websocket.close", "code": 1008}] and reached == []


def test_reads_vllms_own_variable_and_fails_closed_without_it(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    assert ApiKeyGuard(None).allowed(_http("/invocations", auth=b"Bearer " + KEY.encode()))
    monkeypatch.setenv(KEY_ENV, "")
    with pytest.raises(RuntimeError, match="VLLM_API_KEY is empty"):
        ApiKeyGuard(None)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(RuntimeError):
        ApiKeyGuard(None)


def test_bearer_token_takes_the_first_authorization_header():
    assert bearer_token([(b"Authorization", b"Bearer a"), (b"authorization", b"Bearer b")]) == b"a"
    assert bearer_token([]) is None


# ------------------------------------------------------------------- where the plan puts it

def test_a_keyed_vllm_plan_adds_the_guard_and_a_keyless_one_does_not():
    spec = load_stack("h100-vllm")
    assert spec.wants_api_key
    argv = build_plan(spec).argv
    assert argv[-2:] == ["--middleware", "infra.launcher.authguard.ApiKeyGuard"]
    local = load_stack("local")
    assert not local.wants_api_key and "--middleware" not in build_plan(local).argv
    assert api_key_guard_args("sglang") == []
    assert "--middleware" not in build_plan(load_stack("h100-sglang")).argv


def test_extra_args_middleware_adds_to_the_guard_never_replaces_it():
    argv = ["vllm", "serve", "m", "--middleware", "infra.launcher.authguard.ApiKeyGuard"]
    out, _ = merge_extra_args(argv, {}, ["--middleware", "my.mod.Other"], "vllm")
    assert out == argv + ["--middleware", "my.mod.Other"]


def test_the_launcher_adds_the_guard_when_api_key_is_set_on_a_keyless_image_start():
    """A plain `docker run -e API_KEY=... IMAGE` (the image READMEs' way): no stack spec, auth turned on by the
    env var; the guard comes with VLLM_API_KEY, and the key stays out of argv."""
    from launcher_support import clean_env, snapshot

    from infra.launcher.main import prepare

    lc = prepare(clean_env(API_KEY=KEY), "vllm", snapshot("h200-1gpu.json"), dry_run=True)
    assert lc.env["VLLM_API_KEY"] == KEY and KEY not in " ".join(lc.argv)
    assert lc.argv[-2:] == api_key_guard_args("vllm")
    assert "--middleware" not in prepare(clean_env(), "vllm", snapshot("h200-1gpu.json"), dry_run=True).argv
    sg = prepare(clean_env(API_KEY=KEY), "sglang", snapshot("h200-1gpu.json"), dry_run=True)
    assert "--middleware" not in sg.argv
