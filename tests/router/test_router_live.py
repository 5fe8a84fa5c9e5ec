"""The SMG router (smg==1.9.0, the chart's version) run for real, from the Kubernetes target's rendered
values, in front of two real vLLM CPU workers from the local stack's plan (tests/router/workers.py).

One module: the two workers start side by side once (~50-90 s on 2 cores), the routers (a second
each) come and go per test. Requests are few and short; everything is on 127.0.0.1 and bounded.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time

import httpx
import pytest

from infra.endpoint.agentic import AgenticConfig
from infra.endpoint.bench import run_bench
from infra.endpoint.target import resolve_target
from tests.endpoint.invoke_helpers import run_task
from infra.stackfile import load_stack
from tests.router.workers import K8S_STACK, SmgRouter, make_worker, rendered_values

pytestmark = pytest.mark.slow

KEY = "sk-test-" + "9e4a1c2b7d3f5e6a"  # a throwaway key for these loopback workers only
KEY_ENV = "GPTOSS_ROUTER_TEST_KEY"
# Short agent conversations: 4 sessions x 5 turns, ~300-1100 prompt tokens, 16 tokens out.
WORKLOAD = dict(sessions=4, turns=5, system_len=300, task_len=30, tool_result_len=150, output_len=16,
                think_time=0.2, warmup=False, request_timeout=120.0, level_timeout=240.0)


def progress(msg: str) -> None:
    sys.__stderr__.write(f"\n[tests/router] {msg}\n")
    sys.__stderr__.flush()


@pytest.fixture(scope="module")
def workers(request, tmp_path_factory):
    pytest.importorskip("smg", reason="smg==1.9.0 is in the dev extras")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    root = tmp_path_factory.mktemp("router-workers")
    pool = []
    try:
        with capman.global_and_fixture_disabled():
            pool = [make_worker(root / f"w{i}", KEY).start(wait=False) for i in range(2)]  # side by side
            for w in pool:
                w.wait_healthy()
        yield pool
    finally:
        for w in pool:
            w.stop()


@pytest.fixture
def router(workers, tmp_path):
    started = []

    def start(policy: str | None = None) -> SmgRouter:
        r = SmgRouter(rendered_values(policy), [w.url for w in workers], KEY, tmp_path).start()
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def _metrics(workers) -> list[str]:
    return [w.url + "/metrics" for w in workers]


def _agentic(url: str, workers, seed: int, out, **over) -> dict:
    cfg = AgenticConfig(seed=seed, metrics_urls=_metrics(workers), **{**WORKLOAD, **over})
    return run_bench(resolve_target(url=url, api_key_env=KEY_ENV), cfg, out)


def _log(router: SmgRouter) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", router.log_path.read_text(errors="replace"))


@pytest.fixture(autouse=True)
def _key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def test_smoke_test_passes_through_the_router_and_no_key_is_refused_there(router, workers, capsys):
    r = router()
    code, out, err = run_task(["smoke-test", "--url", r.url + "/v1", "--api-key-env", KEY_ENV], capsys)
    assert code == 0, out + err
    body = {"model": workers[0].alias, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    before = [w.log_path.read_text(errors="replace").count("POST /v1/chat/completions") for w in workers]
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert httpx.post(r.url + "/v1/chat/completions", json=body, headers=headers, timeout=30).status_code == 401
    assert httpx.get(r.url + "/workers", timeout=10).status_code == 401
    after = [w.log_path.read_text(errors="replace").count("POST /v1/chat/completions") for w in workers]
    assert after == before  # refused by the router itself: no worker saw those requests
    assert KEY not in out + err and KEY not in _log(r)


def test_cache_aware_keeps_conversations_where_their_prefix_is(router, workers, tmp_path):
    # the reference: one engine, every turn finds its previous prompt cached
    one = _agentic(workers[0].url, workers[:1], 100, tmp_path / "one")["agentic"]["prefix_cache"]
    results = {"one_engine": one}
    for seed, policy in ((101, "cache_aware"), (102, "round_robin")):  # a seed each: no run reuses another's cache
        r = router(policy)
        res = _agentic(r.url, workers, seed, tmp_path / policy)
        lv = res["levels"][0]
        assert lv["completed"] == lv["num_prompts"] == 20, lv["errors"]
        results[policy] = res["agentic"]["prefix_cache"]
        r.stop()
    summary = {k: {"hit_rate": v["hit_rate"],
                   "per_worker": [{"hit_rate": e["hit_rate"], "queried_tokens": e["queried_tokens"],
                                   "hit_tokens": e["hit_tokens"]} for e in v["per_endpoint"]]}
               for k, v in results.items()}
    progress("prefix-cache hit rates: " + json.dumps(summary))
    out = os.environ.get("GPTOSS_ROUTER_MEASUREMENTS")
    if out:  # docs/measurements is written from this
        with open(out, "w") as fh:
            json.dump({"workload": WORKLOAD, **summary}, fh, indent=2)
    ca, rr = results["cache_aware"]["hit_rate"], results["round_robin"]["hit_rate"]
    # cache_aware: as good as one engine (each turn lands where its conversation is cached);
    # round_robin: a turn lands on the other worker every other time and misses its last turn's prefix
    assert ca == pytest.approx(one["hit_rate"], abs=0.05)
    assert rr < ca - 0.02  # two or more of its 16 later turns switched worker (measured: 6-11 points lower)
    rr_workers = [e["queried_tokens"] for e in results["round_robin"]["per_endpoint"]]
    assert all(q and q > 0 for q in rr_workers)  # round robin used both


# Long enough to be still in flight after the removal, the 3 s settle and the preStop pause (about 20 s in
# all): the tiny model decodes one stream at ~120 tok/s on an idle 2-core machine, so 4,500 tokens take ~37 s.
LONG_TOKENS = 4500


def _running(worker) -> float:
    text = httpx.get(worker.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vllm:num_requests_running"))


def _posts(worker) -> int:
    return worker.log_path.read_text(errors="replace").count("POST /v1/chat/completions")


def test_a_worker_scaled_down_mid_run_drains_and_a_new_one_is_used(router, workers, tmp_path):
    """Scale-down as on Kubernetes: the pod's deletion makes SMG's discovery submit RemoveWorker for
    it (here the same job through DELETE /workers/{id}), the preStop pause runs, then SIGTERM to the
    engine's main process, which drains for the rendered --shutdown-timeout. Scale-up: discovery
    submits AddWorker for the new ready pod (here POST /workers): a new worker, started when the test
    starts so that its ~30 s start overlaps the drain (it replaces the drained one in the module's pool)."""
    drain = load_stack(K8S_STACK).target_settings.drain
    r = router()  # cache_aware, as rendered
    fresh = make_worker(tmp_path / "w-new", KEY).start(wait=False)  # the scale-up pod, not in the router yet
    try:
        _drain_then_scale_up(r, workers, drain, fresh, tmp_path)
    finally:
        if fresh not in workers:
            fresh.stop()


def _drain_then_scale_up(r, workers, drain, fresh, tmp_path):
    hdr = {"Authorization": f"Bearer {KEY}"}
    # a long request first: the worker it lands on is the one scaled down while it is in flight
    long_body = {"model": workers[0].alias, "messages": [{"role": "user", "content": "Write a long story."}],
                 "max_tokens": LONG_TOKENS, "ignore_eos": True}
    long_reply: dict = {}
    long_req = threading.Thread(target=lambda: long_reply.update(r=httpx.post(
        r.url + "/v1/chat/completions", json=long_body, headers=hdr, timeout=300)), daemon=True)
    long_req.start()
    victim, t0 = None, time.monotonic()
    while victim is None and time.monotonic() - t0 < 60 and long_req.is_alive():
        victim = next((w for w in workers if _running(w) >= 1), None)
        time.sleep(0.1)
    assert victim is not None, "the long request is running on neither worker"
    other = workers[1 - workers.index(victim)]
    result: dict = {}
    load = threading.Thread(target=lambda: result.update(res=_agentic(
        r.url, workers, 200, tmp_path / "drain", turns=6, think_time=0.5)), daemon=True)
    load.start()
    time.sleep(2)  # the agent sessions are under way
    ids = {w["url"]: w["id"] for w in httpx.get(r.url + "/workers", headers=hdr, timeout=5).json()["workers"]}
    assert httpx.delete(f"{r.url}/workers/{ids[victim.url]}", headers=hdr, timeout=10).status_code < 300
    r.wait_workers({other.url}, timeout=10)
    progress(f"worker {victim.url} removed from the router; preStop pause {drain.prestop_seconds}s, then SIGTERM")
    time.sleep(3)  # a request routed just before the removal is logged when its reply starts
    served = _posts(victim)
    time.sleep(max(0, drain.prestop_seconds - 3))
    assert _running(victim) >= 1  # the long request is still in flight on it
    os.kill(victim.proc.pid, signal.SIGTERM)
    victim.proc.wait(timeout=drain.shutdown_timeout_seconds + 30)
    long_req.join(timeout=60)
    reply = long_reply["r"]
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == LONG_TOKENS  # it finished
    assert "draining in-flight requests" in victim.log_path.read_text(errors="replace")
    load.join(timeout=240)
    assert not load.is_alive()
    lv = result["res"]["levels"][0]
    assert lv["failed"] == 0 and lv["completed"] == lv["num_prompts"], lv["errors"]  # nothing else failed
    sent_after = _posts(victim) - served - 1  # uvicorn logs the long (not streamed) request when it replies
    assert sent_after == 0  # nothing was sent to it once it was out of the pool

    # scale-up: the new worker, ready, added as discovery adds a ready pod; it takes the drained one's place
    fresh.wait_healthy()
    workers[workers.index(victim)] = fresh  # the module's pool (its teardown stops it)
    victim.stop()  # exited already: closes its log
    added = httpx.post(r.url + "/workers", headers=hdr, timeout=10, json={"url": fresh.url, "api_key": KEY})
    assert added.status_code < 300, added.text
    back = r.wait_workers({other.url, fresh.url}, timeout=60)
    before = _posts(fresh)
    res = _agentic(r.url, workers, 201, tmp_path / "back", turns=2)
    used = _posts(fresh) - before
    progress(f"worker back: healthy in the router {back:.0f}s after it was added; {used} of the next 8 requests went to it")
    assert res["levels"][0]["failed"] == 0 and used > 0
