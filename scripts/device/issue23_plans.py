"""Issue 23's plans, rendered here (the device has no project dependencies) for both lent cards.

    .venv/bin/python scripts/device/issue23_plans.py OUTDIR

For each card (h100, h200) and plan it writes OUTDIR/<card>-<plan>.yaml (the engine's --config file,
exactly as the stack renders it), OUTDIR/<card>-<plan>.args (the --no-* flags the plan puts on the
command line, one per line) and OUTDIR/<card>-<plan>.fit.json (the plan's predicted figures). Plans:
  plan        the card's stack unchanged (h100-vllm / h200-vllm)
  k8s32k      a Kubernetes-style plan at 32,768 (k8s-h200x8-vllm-tp1's settings: 8,192 batched tokens)
  throughput  the card's stack with profile: throughput
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from infra.plan import FitError, build_plan
from infra.spec import StackSpec
from infra.stackfile import load_stack

STACKS = {"h100": "h100-vllm", "h200": "h200-vllm"}
K8S = "k8s-h200x8-vllm-tp1"


def _spec(stack: str, **over) -> StackSpec:
    data = load_stack(stack).model_dump()
    data.update(over)
    return StackSpec.model_validate(data)


def plans(card: str) -> dict[str, StackSpec]:
    base = load_stack(STACKS[card])
    k8s = load_stack(K8S)
    return {
        "plan": base,
        # the K8s stack's context and batched tokens on this card (its own gpu preset picks the rest)
        "k8s32k": _spec(STACKS[card], max_model_len=k8s.max_model_len or 32768,
                        max_num_batched_tokens=build_plan(k8s).settings["max_num_batched_tokens"]),
        "throughput": _spec(STACKS[card], profile="throughput"),
    }


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for card in STACKS:
        for name, spec in plans(card).items():
            try:
                p = build_plan(spec)
            except FitError as exc:  # recorded, not fatal: the run shows whether the engine agrees
                (out / f"{card}-{name}.refused.txt").write_text(str(exc) + "\n")
                print(f"{card}-{name}: refused by the fit: {exc}")
                continue
            (out / f"{card}-{name}.yaml").write_text(p.files["vllm.yaml"])
            (out / f"{card}-{name}.args").write_text("".join(f"{a}\n" for a in p.argv if a.startswith("--no-")))
            (out / f"{card}-{name}.fit.json").write_text(json.dumps(
                {"settings": p.settings, "fit": p.fit_figures, "fit_summary": p.fit, "notes": p.notes}, indent=1))
            f = p.fit_figures
            print(f"{card}-{name}: max_model_len {p.settings['max_model_len']}, batched "
                  f"{p.settings['max_num_batched_tokens']}, predicted KV {f['kv_cache_gib']} GiB = "
                  f"{f['kv_tokens']:,} tokens, {f['max_concurrency_at_max_model_len']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".dev23/plans")))
