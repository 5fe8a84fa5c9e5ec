"""Timing goals as pytest-benchmark benchmarks (no timed assertions):
- the full smoke test against the tiny model on vLLM (CPU) (goal: < 30 s wall on 2 cores);
- the bench client's own cost per request: SSE + JSON decoding of a real recorded stream."""

import httpx
import pytest

from infra.endpoint.bench import consume
from infra.endpoint.checks import CHECK_NAMES, SmokeConfig, run_checks
from infra.endpoint.sse import SSEDecoder, StreamResult
from infra.endpoint.target import resolve_target


pytestmark = pytest.mark.slow


def test_benchmark_full_smoke_test(benchmark, keyed_server, api_key_env):
    target = resolve_target(url=keyed_server.url, model=keyed_server.alias, api_key_env=api_key_env)
    report = benchmark.pedantic(run_checks, args=(target, SmokeConfig(only=CHECK_NAMES)), rounds=1, iterations=1)
    assert report.passed
    benchmark.extra_info["goal_s"] = 30.0
    benchmark.extra_info["last_run_s"] = round(report.seconds, 3)


def _recorded_stream(url: str, alias: str, n: int = 256) -> list[str]:
    body = {"model": alias, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as r:
        pieces = list(r.iter_text())
    text = "".join(pieces)
    assert "data: [DONE]" in text
    # a long generation: the recorded token chunks repeated, like a 256-token answer
    events = [e for e in text.split("\n\n") if e.strip()]
    token_events = [e for e in events if '"delta"' in e and "finish_reason\":null" in e] or events[:-1]
    body_events = (token_events * (n // max(1, len(token_events)) + 1))[:n]
    return [e + "\n\n" for e in body_events + events[-2:]]


def test_benchmark_client_overhead_per_request(benchmark, open_server):
    chunks = _recorded_stream(open_server.url, open_server.alias)

    def one_request():
        dec, res = SSEDecoder(), StreamResult()
        for i, c in enumerate(chunks):
            consume(dec, res, c, float(i))
        return res

    res = benchmark(one_request)
    assert res.done and res.chunks >= 256
    benchmark.extra_info["chunks_per_request"] = len(chunks)
