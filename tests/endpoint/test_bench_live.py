"""`invoke bench` against the real server: files, and metrics that agree with each other."""

import json

import httpx
import pytest

from infra.endpoint.bench import BenchConfig, compare, percentile, run_bench
from infra.endpoint.target import resolve_target

from .conftest import TEST_API_KEY, stack_outputs
from .invoke_helpers import run_task

pytestmark = pytest.mark.slow


def test_percentile_matches_linear_interpolation():
    xs = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(xs, 50) == 3.0 and percentile(xs, 0) == 1.0 and percentile(xs, 100) == 5.0
    assert percentile(xs, 90) == pytest.approx(4.6) and percentile([], 50) is None


def test_invoke_bench_writes_consistent_json_and_png(open_server, tmp_path, capsys):
    out_dir = tmp_path / "bench"
    code, out, err = run_task(["bench", "--url", open_server.url, "--concurrency", "1,4", "--num-prompts", "8",
                               "--input-len", "40", "--output-len", "64", "--out", str(out_dir),
                               "--price-per-hour", "2.5"], capsys)
    assert code == 0, out + err
    png = (out_dir / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    data = json.loads((out_dir / "bench.json").read_text())
    assert [lv["concurrency"] for lv in data["levels"]] == [1, 4]

    # the server's own count for the same kind of request, not streamed
    r = httpx.post(open_server.url + "/v1/chat/completions", timeout=30, json={
        "model": open_server.alias, "max_tokens": 64, "messages": [{"role": "user", "content": "hello there"}]})
    usage_tokens = r.json()["usage"]["completion_tokens"]

    for lv in data["levels"]:
        assert lv["completed"] == 8 and lv["failed"] == 0 and lv["not_started"] == 0
        reqs = lv["requests"]
        assert len(reqs) == 8
        for q in reqs:
            assert q["ok"] and 0 < q["ttft"] <= q["ttft_token"] <= q["ttft_content"] <= q["e2e"]
            assert q["choice_chunks"] >= q["token_chunks"] >= 2
            assert q["completion_tokens"] == usage_tokens  # the deterministic model always says the same
            assert q["prompt_tokens"] > 0
            assert q["tpot"] == pytest.approx((q["e2e"] - q["ttft"]) / (q["completion_tokens"] - 1))
        assert lv["output_tokens"] == sum(q["completion_tokens"] for q in reqs)
        assert lv["output_tok_per_s"] == pytest.approx(lv["output_tokens"] / lv["duration_s"])
        assert lv["req_per_s"] == pytest.approx(8 / lv["duration_s"])
        assert lv["no_text_streams"] == 0
        for key in ("ttft_ms", "ttft_token_ms", "ttft_content_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            d = lv[key]
            assert d["p50"] <= d["p90"] <= d["p99"], key
        assert lv["ttft_ms"]["p99"] <= lv["e2e_ms"]["p99"]
        assert lv["goodput_req_per_s"] <= lv["req_per_s"] + 1e-9
        assert lv["client"]["overhead_ms_per_request"] > 0 and lv["client"]["cpu_util"] >= 0
    cmp_ = data["comparison"]
    assert cmp_["expected"] is None and "GPU or backend unknown" in cmp_["note"]
    assert set(cmp_["usd_per_m_output_tokens"]) == {"1", "4"}
    lv1 = data["levels"][0]
    assert cmp_["usd_per_m_output_tokens"]["1"] == pytest.approx(2.5 / (lv1["output_tok_per_s"] * 3600) * 1e6)
    assert "out tok/s" in out and "TTFT" in out


def test_bench_compares_with_the_catalogue_for_the_stack_gpu(keyed_server, fake_pulumi, tmp_path):
    # the stack says: vLLM serving gpt-oss on an H100; the catalogue knows what to expect for 120b
    fake_pulumi("h100", {**stack_outputs(keyed_server.url, keyed_server.alias, TEST_API_KEY)})
    target = resolve_target(stack="h100")
    cfg = BenchConfig(concurrency=[1], num_prompts=3, input_len=16, output_len=32, warmup=False)
    res = run_bench(target, cfg, tmp_path / "b")
    assert res["levels"][0]["completed"] == 3
    # the test server serves the 20b (no catalogue row); judge its real levels as the 120b's
    cmp_ = compare(res["levels"], target, "openai/gpt-oss-120b", cfg)
    assert cmp_["expected"]["single_stream"] == [180, 220]
    assert cmp_["single_stream_verdict"] in {"below", "within", "above"}
    assert (tmp_path / "b" / "bench.png").exists()
    assert TEST_API_KEY not in (tmp_path / "b" / "bench.json").read_text()


def test_bench_counts_failures(keyed_server, tmp_path):
    # no key for a keyed server: every request fails with 401 and the numbers say so
    res = run_bench(resolve_target(url=keyed_server.url, model=keyed_server.alias),
                    BenchConfig(concurrency=[2], num_prompts=4, warmup=False), tmp_path / "f")
    lv = res["levels"][0]
    assert lv["completed"] == 0 and lv["failed"] == 4 and lv["output_tok_per_s"] == 0
    assert any("401" in e for e in lv["errors"])
