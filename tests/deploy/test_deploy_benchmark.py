"""Benchmark: the whole program for every stack in stacks/ (whose target is implemented) under
the mock engine (goal < 10 s in total)."""
from __future__ import annotations

import time

from deploy_harness import STACKS, implemented, run_stack

GOAL_SECONDS = 10.0


def test_benchmark_all_stacks_under_mocks(benchmark):
    durations: list[float] = []
    stacks = [name for name in STACKS if implemented(name)]

    def all_stacks():
        start = time.perf_counter()
        runs = [run_stack(name) for name in stacks]
        durations.append(time.perf_counter() - start)
        return runs

    runs = benchmark.pedantic(all_stacks, rounds=3, iterations=1, warmup_rounds=0)
    assert [r.stack for r in runs] == stacks
    assert all(len(r.resources) >= 3 for r in runs)
    benchmark.extra_info.update(stacks=len(stacks), worst_round_s=round(max(durations), 3))
    assert max(durations) < GOAL_SECONDS, f"{len(stacks)} stacks took {max(durations):.2f} s"
