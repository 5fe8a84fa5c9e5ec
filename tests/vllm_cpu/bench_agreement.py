"""Benchmark task: does ``invoke bench`` agree with ``vllm bench serve`` on the same workload?

    python -m tests.vllm_cpu.bench_agreement [--pairs 5] [--concurrency 4] [--out build/bench-agreement]

Starts vLLM (CPU) from the local stack's plan (tests/vllm_cpu/server.py), then runs ``pairs``
paired rounds, alternating which tool goes first, each with the same workload: random prompts of
``--input-len`` tokens (vLLM: random token ids; ours: random words, ~1 token each), exactly
``--output-len`` output tokens (ignore_eos), ``--num-prompts`` requests at ``--concurrency``.
On 2 shared cores single runs swing +-25%, so the report is the median of the per-pair ratios
(ours / vLLM's) for output tok/s and request throughput; goal: within 5% (0.95-1.05). TTFT and
TPOT medians (the same definitions as vLLM's, see infra/endpoint/bench.py) are reported beside them.
The load generator must not take CPU from the server it measures (on 2 cores a client that
tokenizes and parses a stream slows the CPU engine it is timing): with >= 2 CPUs the server is pinned
to the last one and both clients to the others, and each client's CPU seconds are reported.
Writes ``agreement.json`` and prints a table. A benchmark, not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import time
from pathlib import Path

from infra.endpoint.bench import BenchConfig, run_bench
from infra.endpoint.target import resolve_target
from tests.vllm_cpu import venv as vv
from tests.vllm_cpu.server import ensure_model, make_server, say


def ours(srv, args, out: Path) -> dict:
    cfg = BenchConfig(concurrency=[args.concurrency], input_len=args.input_len, output_len=args.output_len,
                      num_prompts=args.num_prompts, ignore_eos=True, warmup=True, slo_ttft_ms=None, slo_tpot_ms=None)
    from rich.console import Console

    lv = run_bench(resolve_target(url=srv.url, model=srv.alias), cfg, None, Console(stderr=True, quiet=True))["levels"][0]
    return {"output_tok_s": lv["output_tok_per_s"], "req_s": lv["req_per_s"], "completed": lv["completed"],
            "tpot_p50_ms": lv["tpot_ms"]["p50"], "ttft_p50_ms": lv["ttft_ms"]["p50"],
            "input_tokens": lv["input_tokens"], "output_tokens": lv["output_tokens"],
            "client_cpu_s": lv["client"]["cpu_util"] * lv["duration_s"]}


def vllms(srv, args, out: Path, i: int) -> dict:
    snapshot = next((ensure_model(srv.venv) / "huggingface" / "hub" / "models--openai--gpt-oss-20b"
                     / "snapshots").iterdir())
    name = f"vllm-{i}.json"
    cmd = [str(vv.vllm_bin(srv.venv)), "bench", "serve", "--backend", "openai-chat", "--base-url", srv.url,
           "--endpoint", "/v1/chat/completions", "--model", srv.alias, "--tokenizer", str(snapshot),
           "--dataset-name", "random", "--random-input-len", str(args.input_len),
           "--random-output-len", str(args.output_len), "--num-prompts", str(args.num_prompts),
           "--max-concurrency", str(args.concurrency), "--ignore-eos", "--num-warmups", "1",
           "--disable-tqdm", "--save-result", "--result-dir", str(out), "--result-filename", name]
    env = vv.server_env(srv.venv)
    env["HF_HUB_OFFLINE"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with (out / f"vllm-{i}.log").open("w") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=900)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = json.loads((out / name).read_text())
    return {"output_tok_s": r["output_throughput"], "req_s": r["request_throughput"], "completed": r["completed"],
            "tpot_p50_ms": r.get("median_tpot_ms"), "ttft_p50_ms": r.get("median_ttft_ms"),
            "input_tokens": r.get("total_input_tokens"), "output_tokens": r.get("total_output_tokens"),
            # the whole process, its start-up and warm-up included (not only the timed part)
            "client_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="invoke bench vs vllm bench serve, paired alternating runs")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--num-prompts", type=int, default=16)
    ap.add_argument("--input-len", type=int, default=64)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("build/bench-agreement"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cpus = sorted(os.sched_getaffinity(0))
    srv = make_server(args.out / "server")
    if len(cpus) >= 2:  # server on the last CPU, the load generators (this process, its children) on the rest
        srv.cpus = frozenset(cpus[-1:])
        os.sched_setaffinity(0, set(cpus[:-1]))
        say(f"server pinned to CPU {cpus[-1]}, clients to CPU(s) {','.join(map(str, cpus[:-1]))}")
    srv.start()
    pairs = []
    try:
        for i in range(args.pairs):
            order = ("ours", "vllm") if i % 2 == 0 else ("vllm", "ours")
            got = {}
            for who in order:
                t0 = time.monotonic()
                got[who] = ours(srv, args, args.out) if who == "ours" else vllms(srv, args, args.out, i)
                say(f"pair {i + 1}/{args.pairs} {who}: {got[who]['output_tok_s']:.1f} tok/s, "
                    f"{got[who]['req_s']:.3f} req/s ({time.monotonic() - t0:.0f}s)")
            pairs.append({"order": order, **got,
                          "ratio_output_tok_s": got["ours"]["output_tok_s"] / got["vllm"]["output_tok_s"],
                          "ratio_req_s": got["ours"]["req_s"] / got["vllm"]["req_s"],
                          **{f"ratio_{k}": _ratio(got["ours"][k], got["vllm"][k]) for k in ("ttft_p50_ms", "tpot_p50_ms")}})
    finally:
        srv.stop()
    med = {k: statistics.median(vals) if (vals := [p[k] for p in pairs if p[k] is not None]) else None
           for k in ("ratio_output_tok_s", "ratio_req_s", "ratio_ttft_p50_ms", "ratio_tpot_p50_ms")}
    # the goal is on throughput (what the two tools must agree on); latency ratios are reported beside it
    report = {"workload": vars(args) | {"out": str(args.out)}, "pinning": {"server": sorted(srv.cpus or []),
              "clients": sorted(os.sched_getaffinity(0))}, "pairs": pairs, "median": med, "goal": [0.95, 1.05],
              "within_goal": all(0.95 <= med[k] <= 1.05 for k in ("ratio_output_tok_s", "ratio_req_s"))}
    (args.out / "agreement.json").write_text(json.dumps(report, indent=2))
    print("| pair | order | ours tok/s | vLLM tok/s | ratio | ours req/s | vLLM req/s | ratio "
          "| ours / vLLM in tok | ours / vLLM TTFT p50 ms | ours / vLLM TPOT p50 ms | client CPU s ours / vLLM |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for i, p in enumerate(pairs, 1):
        o, v = p["ours"], p["vllm"]
        print(f"| {i} | {'/'.join(p['order'])} | {o['output_tok_s']:.1f} | {v['output_tok_s']:.1f} | "
              f"{p['ratio_output_tok_s']:.3f} | {o['req_s']:.3f} | {v['req_s']:.3f} | {p['ratio_req_s']:.3f} | "
              f"{o['input_tokens']} / {v['input_tokens']} | {o['ttft_p50_ms'] or 0:.0f} / {v['ttft_p50_ms'] or 0:.0f} | "
              f"{o['tpot_p50_ms'] or 0:.1f} / {v['tpot_p50_ms'] or 0:.1f} | "
              f"{o['client_cpu_s']:.1f} / {v['client_cpu_s']:.1f} |")
    print(f"median ratio: output tok/s {med['ratio_output_tok_s']:.3f}, req/s {med['ratio_req_s']:.3f} "
          f"(goal 0.95-1.05: {'met' if report['within_goal'] else 'NOT met'}); TTFT p50 "
          f"{_fmt(med['ratio_ttft_p50_ms'])}, TPOT p50 {_fmt(med['ratio_tpot_p50_ms'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
