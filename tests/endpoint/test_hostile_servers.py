"""`wait-ready`, `smoke-test` and `bench` against real misbehaving servers on 127.0.0.1
(tests/endpoint/hostile.py), one test per kind of server. Each task is run through invoke's
real command line and must *return* within its deadline plus a generous margin (returning at
all is the property; speed targets live in the benchmarks), with a one-line error naming what
was wrong, and never a traceback.
"""

from __future__ import annotations

import json
import time

from infra.endpoint.bench import BenchConfig, run_bench
from infra.endpoint.target import resolve_target

from .hostile import HIDDEN_DECODE_S, HIDDEN_FIRST_S, MARKUP_CONTENT, MARKUP_ID, ODD_STREAMS, HostileServer
from .invoke_helpers import run_task

MARGIN = 8.0  # seconds beyond a task's deadline that count as "returned in time" on a loaded 2-core box


def timed(argv, capsys):
    t0 = time.monotonic()
    code, out, err = run_task(argv, capsys)
    return code, out, err, time.monotonic() - t0


def no_traceback(out: str, err: str) -> None:
    assert "Traceback" not in out + err and "MarkupError" not in out + err


def bench_json(out_dir) -> dict:
    return json.loads((out_dir / "bench.json").read_text())


def test_slow_drip_server(tmp_path, capsys):
    # every byte of every answer (status line included) comes 0.3 s after the last: no per-operation
    # timeout ever fires, only an overall deadline ends a request
    with HostileServer("slow_drip") as srv:
        code, out, err, s = timed(["wait-ready", "--url", srv.url, "--timeout", "3", "--interval", "0.5"], capsys)
        assert code == 1 and s < 3 + MARGIN, (s, err)
        assert "not ready" in err and "deadline" in err
        no_traceback(out, err)

        code, out, err, s = timed(["smoke-test", "--url", srv.url, "--model", "m", "--timeout", "2", "--deadline", "5",
                                   "--json", str(tmp_path / "smoke.json")], capsys)
        assert code == 1 and s < 5 + MARGIN, (s, err)
        checks = {c["name"]: c for c in json.loads((tmp_path / "smoke.json").read_text())["checks"]}
        assert checks["health"]["detail"] == "ReadTimeout: the request took longer than its 2s deadline"
        assert "not run: the smoke test took longer than its 5s deadline" in checks["no_harmony_leak"]["detail"]
        assert {c["status"] for c in checks.values()} == {"fail"}
        no_traceback(out, err)

        # finding the model to use is a request like any other
        code, out, err, s = timed(["bench", "--url", srv.url, "--request-timeout", "2", "--out", str(tmp_path / "b0")],
                                  capsys)
        assert code == 1 and s < 2 + MARGIN, (s, err)
        assert "bench: ReadTimeout: the request took longer than its 2s deadline" in err
        no_traceback(out, err)

        # warm-up (2 s) + one level of 2 x 2 requests (4 s): each request ends at its own deadline
        out_dir = tmp_path / "b1"
        code, out, err, s = timed(["bench", "--url", srv.url, "--model", "m", "--request-timeout", "2",
                                   "--concurrency", "2", "--num-prompts", "4", "--out", str(out_dir)], capsys)
        assert code == 1 and s < 6 + MARGIN, (s, err)
        data = bench_json(out_dir)
        assert data["warmup"]["ok"] is False and "2s deadline" in data["warmup"]["error"]
        (lv,) = data["levels"]
        assert (lv["completed"], lv["failed"], lv["cancelled"], lv["not_started"]) == (0, 4, 0, 0)
        assert lv["errors"] == {"ReadTimeout: the request took longer than its 2s deadline": 4}
        no_traceback(out, err)


def test_endless_sse_server(tmp_path, capsys):
    # every answer is a text/event-stream of a chunk each 10 ms that never ends
    with HostileServer("endless_sse") as srv:
        code, out, err, s = timed(["wait-ready", "--url", srv.url, "--timeout", "2", "--interval", "0.5"], capsys)
        assert code == 1 and s < 2 + MARGIN and "deadline" in err, (s, err)

        report = tmp_path / "smoke.json"
        code, out, err, s = timed(["smoke-test", "--url", srv.url, "--model", "m", "--only", "stream", "--timeout", "2",
                                   "--json", str(report)], capsys)
        assert code == 1 and s < 2 + MARGIN, (s, err)
        (check,) = json.loads(report.read_text())["checks"]
        assert check["detail"] == "ReadTimeout: the request took longer than its 2s deadline"

        # the task's deadline cuts a request whose own timeout is longer
        code, out, err, s = timed(["smoke-test", "--url", srv.url, "--model", "m", "--only", "stream,tool_call_stream",
                                   "--timeout", "60", "--deadline", "3", "--json", str(report)], capsys)
        assert code == 1 and s < 3 + MARGIN, (s, err)
        details = [c["detail"] for c in json.loads(report.read_text())["checks"]]
        assert details == ["ReadTimeout: the smoke test took longer than its 3s deadline",
                           "not run: the smoke test took longer than its 3s deadline"]
        no_traceback(out, err)

        # the bench warm-up has its deadline, and so has the whole run
        out_dir = tmp_path / "b"
        code, out, err, s = timed(["bench", "--url", srv.url, "--model", "m", "--request-timeout", "2",
                                   "--concurrency", "1,4", "--num-prompts", "4", "--deadline", "5",
                                   "--out", str(out_dir)], capsys)
        assert code == 1 and s < 5 + MARGIN, (s, err)
        data = bench_json(out_dir)
        assert "warm-up request took longer than its 2s deadline" in data["warmup"]["error"]
        first, second = data["levels"]
        assert first["failed"] + first["not_started"] == 4 and first["completed"] == 0
        assert second["not_started"] == 4  # the run's deadline had passed before this level
        no_traceback(out, err)


def test_endless_streams_in_flight_at_the_level_deadline_are_cancelled_not_unstarted(tmp_path):
    with HostileServer("endless_sse") as srv:
        t0 = time.monotonic()
        res = run_bench(resolve_target(url=srv.url, model="m"),
                        BenchConfig(concurrency=[2], num_prompts=6, request_timeout=60, level_timeout=2, warmup=False),
                        tmp_path / "b")
        assert time.monotonic() - t0 < 2 + MARGIN
    (lv,) = res["levels"]
    # two requests were in flight when the level's 2 s ran out: sent, cut, counted as failed
    assert (lv["completed"], lv["failed"], lv["cancelled"], lv["not_started"]) == (0, 2, 2, 4)
    assert lv["errors"] == {"ReadTimeout: the concurrency 2 level took longer than its 2s deadline": 2}
    assert all(r["cancelled"] for r in lv["requests"])


def test_markup_and_escapes_in_server_text(tmp_path, capsys):
    # the model id is rich markup, a terminal escape and matplotlib mathtext; content too
    with HostileServer("markup_ids") as srv:
        code, out, err, s = timed(["wait-ready", "--url", srv.url, "--timeout", "10", "--interval", "0.2"], capsys)
        assert code == 0 and "ready after" in err, err
        shown = "[/bold]$\\frac{$\\x1b]0;pwned\\x07"  # literally, the control characters as escapes
        assert shown in err and "\x1b]0;" not in err
        no_traceback(out, err)

        code, out, err, s = timed(["smoke-test", "--url", srv.url, "--json", str(tmp_path / "s.json")], capsys)
        assert code == 1  # no reasoning, no tool calls: failed checks, not a crash
        assert "[/bold]" in out and "\x1b]0;" not in out + err and "\x1b[2J" not in out + err
        data = json.loads((tmp_path / "s.json").read_text())
        assert data["target"]["model"] == MARKUP_ID
        st = {c["name"]: c["status"] for c in data["checks"]}
        assert st["models"] == st["chat"] == st["stream"] == "pass" and st["reasoning"] == "fail"
        assert any(c["data"].get("content") == MARKUP_CONTENT for c in data["checks"] if c["data"])
        no_traceback(out, err)

        out_dir = tmp_path / "b"
        code, out, err, s = timed(["bench", "--url", srv.url, "--concurrency", "1", "--num-prompts", "2",
                                   "--out", str(out_dir)], capsys)
        assert code == 0, out + err
        assert "[/bold]" in out and "\x1b]0;" not in out + err
        assert bench_json(out_dir)["target"]["model"] == MARKUP_ID and (out_dir / "bench.png").exists()
        no_traceback(out, err)


def test_malformed_json(tmp_path, capsys):
    with HostileServer("malformed_json") as srv:
        code, out, err, s = timed(["wait-ready", "--url", srv.url, "--timeout", "1", "--interval", "0.2"], capsys)
        assert code == 1 and "GET /v1/models: the reply is not JSON: '{not json'" in err, err

        code, out, err, s = timed(["bench", "--url", srv.url, "--out", str(tmp_path / "b0")], capsys)
        assert code == 1 and err.strip().splitlines()[-1] == (
            "bench: BadReply: GET /v1/models: the reply is not JSON: '{not json', "
            "expected an object with a `data` list"), err

        out_dir = tmp_path / "b1"
        code, out, err, s = timed(["bench", "--url", srv.url, "--model", "m", "--concurrency", "1",
                                   "--num-prompts", "2", "--out", str(out_dir)], capsys)
        assert code == 1 and "no request succeeded" in err
        assert bench_json(out_dir)["levels"][0]["errors"] == {"event 1: `data` is not JSON: '{oops'": 2}

        code, out, err, s = timed(["smoke-test", "--url", srv.url, "--model", "m", "--only", "models,chat,stream",
                                   "--json", str(tmp_path / "s.json")], capsys)
        assert code == 1
        details = {c["name"]: c["detail"] for c in json.loads((tmp_path / "s.json").read_text())["checks"]}
        assert details == {"models": "BadReply: GET /v1/models: the reply is not JSON: '{not json', "
                                     "expected an object with a `data` list",
                           "chat": "chat: reply is not a JSON object",
                           "stream": "stream: event 1: `data` is not JSON: '{oops'"}
        no_traceback(out, err)


def test_empty_model_list(tmp_path, capsys):
    msg = "GET /v1/models: `data` is empty: the server lists no model (still loading?)"
    with HostileServer("empty_data") as srv:
        code, out, err, s = timed(["wait-ready", "--url", srv.url, "--timeout", "1", "--interval", "0.2"], capsys)
        assert code == 1 and msg in err

        code, out, err, s = timed(["bench", "--url", srv.url, "--out", str(tmp_path / "b")], capsys)
        assert code == 1 and err.strip().splitlines()[-1] == f"bench: BadReply: {msg}"

        code, out, err, s = timed(["smoke-test", "--url", srv.url, "--only", "models",
                                   "--json", str(tmp_path / "s.json")], capsys)
        assert code == 1
        (check,) = json.loads((tmp_path / "s.json").read_text())["checks"]
        assert check["detail"] == f"BadReply: {msg}"
        no_traceback(out, err)


def test_odd_sse_shapes(tmp_path, capsys):
    # one odd stream per request, in order: each request fails with the field that was wrong
    with HostileServer("odd_sse") as srv:
        out_dir = tmp_path / "b"
        n = len(ODD_STREAMS)
        code, out, err, s = timed(["bench", "--url", srv.url, "--model", "m", "--concurrency", "1",
                                   "--num-prompts", str(n), "--out", str(out_dir)], capsys)
        assert code == 1 and "no request succeeded" in err
        no_traceback(out, err)
        data = bench_json(out_dir)
        # the warm-up took the first odd stream; the level's requests take the rest, then wrap around
        errors = [r["error"] for r in data["levels"][0]["requests"]]
        assert len(errors) == n
        for i, err_text in enumerate(errors):
            expected = ODD_STREAMS[(i + 1) % n][1]
            assert expected in err_text and "\n" not in err_text, (i, err_text)
        assert ODD_STREAMS[0][1] in data["warmup"]["error"]

        code, out, err, s = timed(["smoke-test", "--url", srv.url, "--model", "m", "--only", "stream",
                                   "--json", str(tmp_path / "s.json")], capsys)
        assert code == 1
        (check,) = json.loads((tmp_path / "s.json").read_text())["checks"]
        # the server is at its second odd stream again (the warm-up and n requests took n + 1)
        assert check["detail"] == "stream: event 2: choices[0].delta is a JSON list, not an object"
        no_traceback(out, err)



def test_bench_times_a_stream_whose_text_the_parser_hides(tmp_path):
    """vLLM with random weights (the H200 runs): a role chunk at the first token, no visible text, then
    usage. TTFT is that first chunk and TPOT (E2E - TTFT) / (tokens - 1), as `vllm bench serve` computes
    them; the requests completed (the server generated every token), counted in no_text_streams."""
    with HostileServer("hidden_text") as srv:
        cfg = BenchConfig(concurrency=[2], output_len=256, num_prompts=4, warmup=False, request_timeout=20,
                          slo_ttft_ms=None, slo_tpot_ms=None)
        lv = run_bench(resolve_target(url=srv.url, model="m"), cfg, tmp_path)["levels"][0]
    assert lv["completed"] == 4 and lv["failed"] == 0 and lv["no_text_streams"] == 4, lv["errors"]
    assert lv["output_tokens"] == 4 * 256
    for q in lv["requests"]:
        assert q["ttft_token"] is None and q["ttft_content"] is None
        assert HIDDEN_FIRST_S <= q["ttft"] < q["e2e"] and not q["tpot_from_usage"]
        assert q["tpot"] == (q["e2e"] - q["ttft"]) / 255
        assert q["tpot"] >= HIDDEN_DECODE_S / 255  # the decode time, not ~0 and not the whole request


def test_agentic_sessions_in_flight_at_the_run_deadline_are_cancelled_and_the_rest_not_started(tmp_path):
    from infra.endpoint.agentic import AgenticConfig

    with HostileServer("endless_sse") as srv:
        t0 = time.monotonic()
        res = run_bench(resolve_target(url=srv.url, model="m"),
                        AgenticConfig(sessions=2, turns=3, think_time=0, request_timeout=60, level_timeout=2,
                                      warmup=False, metrics_urls=["http://127.0.0.1:9/metrics"]), tmp_path / "a")
        assert time.monotonic() - t0 < 2 + MARGIN
    (lv,) = res["levels"]
    # each session's first turn was in flight when the run's 2 s ran out; its later turns never started
    assert (lv["completed"], lv["failed"], lv["cancelled"], lv["not_started"]) == (0, 2, 2, 4)
    assert lv["errors"] == {"ReadTimeout: the agentic run took longer than its 2s deadline": 2}
    (cache,) = res["agentic"]["prefix_cache"]["per_endpoint"]
    assert cache["hit_rate"] is None and "ConnectError" in cache["note"] and res["agentic"]["by_turn"][0]["completed"] == 0
