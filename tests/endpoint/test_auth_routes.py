"""The API key on every route (issue 24, finding 1), on the real vLLM CPU server.

The keyed server is the Docker `local` stack's rendered plan with an API key (tests/vllm_cpu/server.py):
the plan adds the project's ASGI guard (`--middleware infra.launcher.authguard.ApiKeyGuard`). Without
it, vLLM 0.32 answered POST /invocations with a full completion and no key (the smoke test's `auth`
check then fails: "answered without the key: POST /invocations -> HTTP 200"; see the closing note of
issue 24 for the run with the guard removed)."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from infra.endpoint.checks import AUTH_PROBES, SmokeConfig, run_checks
from infra.endpoint.target import Target

from .conftest import TEST_API_KEY

pytestmark = pytest.mark.slow


def _target(url: str, model: str | None, key: str | None) -> Target:
    return Target(base_url=url + "/v1", health_url=url + "/health", model=model, api_key=key, backend="vllm")


def test_the_rendered_keyed_plan_refuses_every_route_without_the_key(keyed_server):
    srv = keyed_server
    assert "--middleware" in srv.plan.argv  # the Docker target's rendered plan carries the guard
    report = run_checks(_target(srv.url, srv.alias, TEST_API_KEY), SmokeConfig(only=("auth",)))
    auth = report.by_name()["auth"]
    assert auth.status == "pass", auth.detail
    assert auth.data["routes"]["/invocations"] == 401 and auth.data["routes"]["/tokenize"] == 401
    assert auth.data["metrics"] == 401


def test_with_the_key_every_route_still_works(keyed_server):
    srv = keyed_server
    key = {"Authorization": f"Bearer {TEST_API_KEY}"}
    body = {"model": srv.alias, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    with httpx.Client(timeout=120) as c:
        r = c.post(srv.url + "/invocations", json=body, headers=key)
        assert r.status_code == 200 and r.json()["choices"][0]["message"], r.text[:300]
        assert c.post(srv.url + "/invocations", json=body).status_code == 401
        assert c.get(srv.url + "/metrics", headers=key).status_code == 200
        assert c.get(srv.url + "/health").status_code == 200  # probes need no key
        # vLLM mounts /metrics for every method: a bare OPTIONS must not read it without the key
        assert c.request("OPTIONS", srv.url + "/metrics").status_code == 401


class _PrefixOnlyAuth(BaseHTTPRequestHandler):
    """vLLM's own rule, as on a server started with --api-key and no guard: the key only under /v1."""

    def log_message(self, *a):
        pass

    def _answer(self):
        n = int(self.headers.get("content-length") or 0)
        self.rfile.read(n)
        if self.path.startswith("/v1") and self.headers.get("authorization") != f"Bearer {TEST_API_KEY}":
            code, text = 401, b'{"error": "Unauthorized"}'
        else:
            code, text = 200, b'{"choices": [{"message": {"role": "assistant", "content": "hi"}}]}'
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    do_GET = do_POST = _answer


def test_a_server_guarding_only_v1_fails_auth_naming_the_open_routes():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _PrefixOnlyAuth)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        auth = run_checks(_target(url, "m", TEST_API_KEY), SmokeConfig(only=("auth",), timeout=10)).by_name()["auth"]
    finally:
        srv.shutdown()
    assert auth.status == "fail"
    assert "answered without the key: POST /invocations -> HTTP 200" in auth.detail
    assert all(p in auth.detail for _, p in AUTH_PROBES if not p.startswith("/v1"))
