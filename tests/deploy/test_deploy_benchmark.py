"""Benchmark: the whole program for every stack in stacks/ under the mock engine (goal < 10 s in total).

The figure is pytest-benchmark's table (min/mean/max per round of every stack), never asserted: a
loaded CI machine would fail a timed assert for nothing. What is asserted is what the runs produced."""
from __future__ import annotations

from pulumi_harness import STACKS, run_stack

GOAL_SECONDS = 10.0  # for a reader of the benchmark table; a regression shows there, it fails nothing


def test_benchmark_all_stacks_under_mocks(benchmark):
    runs = benchmark.pedantic(lambda: [run_stack(name) for name in STACKS], rounds=3, iterations=1, warmup_rounds=0)
    assert [r.stack for r in runs] == STACKS
    assert all(len(r.resources) >= 3 for r in runs)
    benchmark.extra_info.update(stacks=len(STACKS), goal_s=GOAL_SECONDS)
