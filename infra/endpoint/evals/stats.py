"""The recipe's accuracy panel and the gate.

The score is k right out of n = examples x repeats requests. Its 95% interval is Wilson's score
interval for a binomial proportion (it stays inside [0, 1] and keeps close to 95% coverage for the
small n of a quick check, where the normal "Wald" interval does not). Treating repeats of one
question as independent trials is what "binomial over examples x repeats" means; it makes the
interval narrower than the spread over fresh questions would be, so use many examples for a
verdict you rely on.
The gate fails when the panel value lies above the interval: a score that low is unlikely (< 2.5%)
for a deployment as good as the recipe's. A panel value below the interval passes (better than
the panel is no defect).
"""

from __future__ import annotations

import math
import re

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile

# The vLLM gpt-oss recipe (docs.vllm.ai recipes, "GPT OSS": "Accuracy Evaluation Panels"), measured
# with gpt_oss.evals without tools: percent right by model size, eval and reasoning effort.
PANEL: dict[str, dict[str, dict[str, float]]] = {
    "120b": {"gpqa": {"low": 65.3, "medium": 72.4, "high": 79.4},
             "aime25": {"low": 51.2, "medium": 79.6, "high": 93.0}},
    "20b": {"gpqa": {"low": 56.8, "medium": 67.5, "high": 70.9},
            "aime25": {"low": 38.8, "medium": 75.0, "high": 85.8}},
}
EVALS = ("gpqa", "aime25")
EFFORTS = ("low", "medium", "high")


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (n >= 1)."""
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # rounding never leaves p outside


def panel_size(model: str) -> str | None:
    """``20b`` or ``120b`` from a served model id (``openai/gpt-oss-120b``, ``gpt-oss-20b-fp8``...)."""
    m = re.search(r"(?<!\d)(20|120)b(?![a-z0-9])", model.lower())
    return f"{m.group(1)}b" if m else None


def gate(k: int, n: int, panel_percent: float | None) -> dict:
    """The verdict: ``pass`` / ``fail`` (panel above the interval) / ``no-panel``."""
    lo, hi = wilson(k, n)
    out = {"right": k, "n": n, "score": k / n, "interval95": [lo, hi], "interval": "wilson",
           "panel": None if panel_percent is None else panel_percent / 100.0}
    if panel_percent is None:
        out["verdict"] = "no-panel"
    else:
        out["verdict"] = "fail" if panel_percent / 100.0 > hi else "pass"
    return out
