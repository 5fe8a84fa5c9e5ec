"""`invoke bench --workload agentic|trace` against the real vLLM CPU server: the engine's own prefix-cache
counters agree with the requests the bench sent."""
import json

import pytest

from infra.endpoint.agentic import AgenticConfig
from infra.endpoint.bench import run_bench
from infra.endpoint.prefixcache import scrape
from infra.endpoint.target import resolve_target

from .invoke_helpers import run_task

pytestmark = pytest.mark.slow


def test_invoke_bench_agentic_measures_turns_and_the_engine_cache(open_server, tmp_path, capsys):
    out_dir = tmp_path / "agentic"
    code, out, err = run_task(["bench", "--url", open_server.url, "--workload", "agentic", "--sessions", "3",
                               "--turns", "4", "--system-len", "200", "--tool-result-len", "120", "--output-len", "16",
                               "--think-time", "0.1", "--seed", "7", "--out", str(out_dir)], capsys)
    assert code == 0, out + err
    assert (out_dir / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out_dir / "bench.json").read_text())
    lv, a = data["levels"][0], data["agentic"]
    assert lv["completed"] == lv["num_prompts"] == 12 and lv["failed"] == 0 and data["warmup"]["ok"]
    assert [(t["turn"], t["completed"]) for t in a["by_turn"]] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    means = [t["prompt_tokens_mean"] for t in a["by_turn"]]
    assert means == sorted(means) and means[0] < means[-1]  # the conversations grow turn by turn
    assert sorted((q["session"], q["turn"]) for q in lv["requests"]) == [(f"s{s}", t) for s in range(3) for t in range(4)]
    pc = a["prefix_cache"]
    (one,) = pc["per_endpoint"]
    assert one["engine"] == "vllm" and one["url"] == open_server.url + "/metrics"
    # the engine looked up exactly the prompt tokens the bench sent (the warm-up was before the first read)
    assert one["queried_tokens"] == sum(q["prompt_tokens"] for q in lv["requests"])
    assert 0.3 < pc["hit_rate"] < 1 and pc["hit_rate"] == one["hit_rate"]
    assert "prefix-cache hit rate" in out


def test_trace_replay_through_a_keyed_server(keyed_server, api_key_env, tmp_path):
    first = [{"role": "system", "content": "You are terse. " * 60}, {"role": "user", "content": "first question"}]
    rows = [{"session_id": "a", "timestamp": 10.0, "messages": first, "max_tokens": 8},
            {"session_id": "b", "timestamp": 10.2, "input_len": 40, "max_tokens": 8},
            {"session_id": "a", "timestamp": 10.1, "messages": first + [
                {"role": "assistant", "content": "ok"}, {"role": "user", "content": "second question"}], "max_tokens": 8}]
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in rows))
    target = resolve_target(url=keyed_server.url, api_key_env=api_key_env, model=keyed_server.alias)
    res = run_bench(target, AgenticConfig(workload="trace", trace=str(trace), warmup=False, speed=10.0), tmp_path / "o")
    lv, pc = res["levels"][0], res["agentic"]["prefix_cache"]
    assert lv["completed"] == 3 and res["agentic"]["sessions"] == 2 and res["config"]["concurrency"] == [2]
    assert sorted((q["session"], q["turn"]) for q in lv["requests"]) == [("a", 0), ("a", 1), ("b", 0)]
    # the key went to the server's own /metrics (which the API-key guard covers) and was never written
    assert pc["queried_tokens"] == sum(q["prompt_tokens"] for q in lv["requests"]) and pc["hit_tokens"] > 0
    assert target.api_key not in (tmp_path / "o" / "bench.json").read_text()


def test_the_key_goes_only_to_metrics_on_the_endpoints_host(keyed_server, api_key_env):
    target = resolve_target(url=keyed_server.url, api_key_env=api_key_env)
    port = keyed_server.url.rsplit(":", 1)[1]
    assert "vllm:prefix_cache_queries_total" in scrape(target, keyed_server.url + "/metrics")["counters"]
    # the same server under another host name: not the endpoint's host, so no key, and the guard refuses
    assert scrape(target, f"http://localhost:{port}/metrics") == {"url": f"http://localhost:{port}/metrics",
                                                                   "error": "HTTP 401"}
