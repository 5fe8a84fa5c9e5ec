"""Start-up self-check: the plan's predicted memory figures against the engine's own accounting.

While the engine starts, the progress monitor (infra.launcher.progress, SHOW_LOADING_PROGRESS=true)
hands every log line to `SelfCheck.feed`; when the engine is ready (or dies first) it prints
`SelfCheck.report()`: a predicted-vs-logged table, with a warning for each figure more than 5% off.

    [SELF-CHECK] the plan's memory fit vs vLLM's own start-up log
    figure                  | predicted | engine logged |    diff | check | from the engine's log
    ------------------------+-----------+---------------+---------+-------+----------------------------
    weights (GiB)           |     60.80 |         61.43 |   +1.0% | ok    | "Model loading took"
    KV cache tokens         | 1,650,000 |     1,607,859 |   -2.6% | ok    | "GPU KV cache size"
    full-length sequences   |    14.00x |        12.27x |  -12.4% | WARN  | "Maximum concurrency"
    ...
    [SELF-CHECK] warning: full-length sequences: the plan predicted 14.00x, the engine logged 12.27x (...)

Where the figures come from (each engine's own start-up lines; the fixtures in
tests/fixtures/engine-logs/ are real ones from vLLM 0.26 and SGLang 0.5.15 on an H200):

  key                               vLLM                                   SGLang
  weights_gib                       "Model loading took X GiB"             "Load weight end ... mem usage=X GB"
  kv_cache_gib                      "Available KV cache memory: X GiB"     "SWAKVPool mem usage: X GB", else the
                                                                           pools' K+V sizes ("KV Cache is allocated")
  kv_tokens                         "GPU KV cache size: N tokens"          "max_total_num_tokens=N" (the full pool)
  max_concurrency_at_max_model_len  "Maximum concurrency for L tokens      derived: max_total_num_tokens / context_len
                                    per request: Xx"
  activation_gib                    "X GiB for peak activation"            (not logged)
  cuda_graph_gib                    "Graph capturing finished ... took X"  sum of "Capture ... cuda graph end ...
                                                                           mem usage=X GB"
  non_torch_gib                     "X GiB for non-torch memory"           (not logged)
  budget_gib                        "Desired GPU memory utilization is     (not logged)
                                    (f, X GiB)"
  fits                              Maximum concurrency >= 1, or an        max_total_num_tokens >= context_len, or
                                    out-of-memory refusal                  "Not enough memory"

SGLang prints GiB and calls them "GB". Memory figures are per GPU as the engine logs them (with tensor
parallelism, lines from ranks other than 0 are skipped); token counts are per engine.

Why the progress monitor: the launcher exec's the engine so that it keeps PID 1 and gets `docker stop`'s
signals; once exec'ed, nothing of the launcher is left to read the engine's log. Only with
SHOW_LOADING_PROGRESS=true is there a reader, the forked monitor that already passes every byte of the
engine's output through pipes; the self-check rides on it. Without it the engine writes straight to the
container's stdout and the self-check does not run (the images README says so).

Robustness: lines are cut at MAX_LINE_CHARS before matching, every pattern reads a bounded window (so a
search is linear in the line), anything unparsable is ignored, and neither `feed` nor `report` ever
raises (an exception in the monitor would close the engine's pipes).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

# launch.json `fit` keys (infra/fit.py writes them), in the order the table shows them.
FIT_KEYS = ("weights_gib", "kv_cache_gib", "kv_tokens", "max_concurrency_at_max_model_len", "activation_gib",
            "cuda_graph_gib", "non_torch_gib", "budget_gib", "fits")
# Compared as well when both sides have it: the context the figures above assume.
CONTEXT_KEY = "max_model_len"
TOLERANCE = 0.05  # warn above 5% relative difference
MAX_LINE_CHARS = 4096  # the figures sit in lines < 1 KiB; the engines' longest lines (arg dumps) are ~14 KiB
_RANK_PREFIX_CHARS = 48  # "(Worker_TP1 pid=12) ..." / "[2026-07-01 15:19:41 TP1] ...": the tag is near the start

# Every quantifier is bounded, so each match attempt reads a bounded window and a search is linear in the line
# (an unbounded `\d[\d,]*` before " ?GiB" re-read a digit run from each of its digits: quadratic). A figure
# starts where no digit, comma or point precedes it, and is at most 25 digits/commas and 12 decimals; the gaps
# between a line's marker and its figure are at most 512 characters (the engines' are < 110).
_NUM = r"(?<![\d,.])(-?\d[\d,]{0,24}(?:\.\d{1,12})?)"
_GAP = ".{0,512}?"
_SECS = r"[\d.]{1,16}"
_RANK_DIGITS = r"\d{1,6}"
_OTHER_RANK = re.compile(r"(?<![A-Za-z])TP(" + _RANK_DIGITS + r")(?!\d)")


@dataclass(frozen=True)
class Rule:
    """A log line the engine writes and the raw figures its groups carry."""

    pattern: re.Pattern[str]
    keys: tuple[str, ...]  # one raw figure per group, None-free
    add: bool = False  # sum over matching lines (SGLang's two graph captures, its KV pools) instead of the first


def _rule(pattern: str, *keys: str, add: bool = False) -> Rule:
    return Rule(re.compile(pattern, re.IGNORECASE), keys, add)


VLLM_RULES = (
    _rule(r"Model loading took " + _NUM + r" ?GiB", "weights_gib"),
    _rule(r"Available KV cache memory: " + _NUM + r" ?GiB", "kv_cache_gib"),
    _rule(r"GPU KV cache size: " + _NUM + r" tokens", "kv_tokens"),
    _rule(r"Maximum concurrency for " + _NUM + r" tokens per request: " + _NUM + r" ?x",
          "max_model_len", "max_concurrency_at_max_model_len"),
    _rule(r"Graph capturing finished in " + _SECS + r" secs?, took " + _NUM + r" ?GiB", "cuda_graph_gib"),
    # The summary line after graph capture: "Free memory on device (139.29/139.8 GiB) on startup. Desired GPU
    # memory utilization is (0.9, 125.82 GiB). Actual usage is 61.43 GiB for weight, 1.17 GiB for peak
    # activation, 0.24 GiB for non-torch memory, and 1.0 GiB for CUDAGraph memory. ..."
    _rule(r"Free memory on device \(" + _NUM + r"/" + _NUM + r" ?GiB\)", "free_at_start_gib", "torch_total_gib"),
    _rule(r"Desired GPU memory utilization is \(" + _NUM + r", " + _NUM + r" ?GiB\)",
          "gpu_memory_utilization", "budget_gib"),
    _rule(_NUM + r" ?GiB for weight\b", "summary_weights_gib"),
    _rule(_NUM + r" ?GiB for peak activation", "activation_gib"),
    _rule(_NUM + r" ?GiB for non-torch memory", "non_torch_gib"),
    _rule(_NUM + r" ?GiB for CUDAGraph memory", "summary_cuda_graph_gib"),
)
SGLANG_RULES = (
    _rule(r"Load weight end\." + _GAP + r"mem usage=" + _NUM + r" ?GB", "weights_gib"),
    _rule(r"Load weight begin\." + _GAP + r"avail mem=" + _NUM + r" ?GB", "free_at_start_gib"),
    _rule(r"full_layer_tokens=" + _NUM + r", swa_layer_tokens=" + _NUM, "full_pool_tokens", "swa_kv_tokens"),
    _rule(r"KV Cache is allocated\." + _GAP + r"#tokens: " + _NUM, "pool_tokens", add=True),
    _rule(r"KV Cache is allocated\." + _GAP + r"K size: " + _NUM + r" ?GB, V size: " + _NUM + r" ?GB",
          "pool_k_gib", "pool_v_gib", add=True),
    _rule(r"SWAKVPool mem usage: " + _NUM + r" ?GB", "swa_pool_gib"),
    _rule(r"Capture .{0,40}?cuda graph end\." + _GAP + r"mem usage=" + _NUM + r" ?GB", "cuda_graph_gib", add=True),
    _rule(r"max_total_num_tokens=" + _NUM, "kv_tokens"),
    _rule(r"max_total_num_tokens=" + _GAP + r"context_len=" + _NUM, "max_model_len"),
    _rule(r"max_total_num_tokens=" + _GAP + r"available_gpu_mem=" + _NUM + r" ?GB", "free_after_start_gib"),
)
RULES = {"vllm": VLLM_RULES, "sglang": SGLANG_RULES}

# The engines' own words when the plan does not fit (vLLM kv_cache_utils / gpu_worker, SGLang's pool sizing, torch).
_NO_FIT = re.compile(
    r"KV cache is needed, which is larger than the available KV cache memory|"
    r"Free memory on device .{0,60}? is less than desired GPU memory utilization|"
    r"Not enough memory\. Please try to increase --mem-fraction-static|"
    r"CUDA out of memory\. Tried to allocate", re.IGNORECASE)

# vLLM 0.26: "Directly load AOT compilation from path ..." / "Directly load the compiled graph(s) for ...".
_COMPILE_CACHE_HIT = re.compile(r"Directly load (?:AOT compilation|the compiled graph)")
# launch.json fit.warm_start (infra/fit.py): the figures of a vLLM start that hits its compile cache.
WARM_KEY = "warm_start"

LABELS = {
    "weights_gib": "weights (GiB)", "kv_cache_gib": "KV cache (GiB)", "kv_tokens": "KV cache tokens",
    "max_concurrency_at_max_model_len": "full-length sequences", "activation_gib": "peak activation (GiB)",
    "cuda_graph_gib": "CUDA graphs (GiB)", "non_torch_gib": "non-torch (GiB)", "budget_gib": "memory budget (GiB)",
    "fits": "fits", CONTEXT_KEY: "context (tokens)",
    "swa_kv_tokens": "sliding-window pool tokens", "free_at_start_gib": "free at start (GiB)",
    "torch_total_gib": "memory torch sees (GiB)", "free_after_start_gib": "free after start (GiB)",
}
SOURCES = {
    "vllm": {
        "weights_gib": '"Model loading took"', "kv_cache_gib": '"Available KV cache memory"',
        "kv_tokens": '"GPU KV cache size"', "max_concurrency_at_max_model_len": '"Maximum concurrency"',
        CONTEXT_KEY: '"Maximum concurrency for N tokens"', "activation_gib": '"for peak activation"',
        "cuda_graph_gib": '"Graph capturing finished"', "non_torch_gib": '"for non-torch memory"',
        "budget_gib": '"Desired GPU memory utilization"', "fits": "concurrency >= 1, no OOM",
        "free_at_start_gib": '"Free memory on device"', "torch_total_gib": '"Free memory on device"',
    },
    "sglang": {
        "weights_gib": '"Load weight end ... mem usage"', "kv_cache_gib": '"SWAKVPool mem usage" / K+V sizes',
        "kv_tokens": '"max_total_num_tokens"', "max_concurrency_at_max_model_len": "tokens / context_len",
        CONTEXT_KEY: '"context_len"', "cuda_graph_gib": '"Capture ... cuda graph end" (sum)',
        "fits": "tokens >= context_len, no OOM", "swa_kv_tokens": '"swa_layer_tokens"',
        "free_at_start_gib": '"Load weight begin ... avail mem"', "free_after_start_gib": '"available_gpu_mem"',
    },
}
INT_KEYS = {"kv_tokens", CONTEXT_KEY, "swa_kv_tokens"}
EXTRA_KEYS = ("swa_kv_tokens", "torch_total_gib", "free_at_start_gib", "free_after_start_gib")


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class StartupLog:
    """The engine's start-up figures, from its log lines (fed one at a time, in order)."""

    def __init__(self, backend: str):
        self.backend = backend
        self.rules = RULES.get(backend, ())
        self.raw: dict[str, float] = {}
        self.no_fit = False
        self.compile_cache_hit = False  # vLLM loaded torch.compile's artifacts: a warm start
        self.lines = 0

    def feed(self, line: str) -> None:
        try:
            self._feed(line)
        except Exception:  # noqa: BLE001  a parser bug must never take the engine's log reader down
            pass

    def _feed(self, line: str) -> None:
        self.lines += 1
        line = line[:MAX_LINE_CHARS]
        rank = _OTHER_RANK.search(line[:_RANK_PREFIX_CHARS])
        if rank and rank.group(1) != "0":
            return  # the same figures from another tensor-parallel rank
        for rule in self.rules:
            m = rule.pattern.search(line)
            if not m:
                continue
            for key, text in zip(rule.keys, m.groups()):
                value = _number(text)
                if value is None:
                    continue
                if rule.add:
                    self.raw[key] = self.raw.get(key, 0.0) + value
                else:
                    self.raw.setdefault(key, value)
        if _NO_FIT.search(line):
            self.no_fit = True
        if self.backend == "vllm" and _COMPILE_CACHE_HIT.search(line):
            self.compile_cache_hit = True

    def feed_text(self, text: str) -> None:
        """A whole log: lines end in \\n, tqdm bars in \\r (as the monitor splits them)."""
        for line in re.split(r"[\r\n]", text):
            if line:
                self.feed(line)

    def actual(self) -> dict[str, Any]:
        """FIT_KEYS (and extras) the log gave, resolved: first choice, then the engine's other lines."""
        raw = self.raw
        out: dict[str, Any] = {}

        def first(*names: str) -> float | None:
            return next((raw[n] for n in names if n in raw), None)

        if self.backend == "vllm":
            picks = {"weights_gib": first("weights_gib", "summary_weights_gib"),
                     "cuda_graph_gib": first("cuda_graph_gib", "summary_cuda_graph_gib")}
            for k in ("kv_cache_gib", "kv_tokens", "max_concurrency_at_max_model_len", "activation_gib",
                      "non_torch_gib", "budget_gib", CONTEXT_KEY, "free_at_start_gib", "torch_total_gib"):
                picks[k] = raw.get(k)
        else:
            kv_gib = raw.get("swa_pool_gib")
            if kv_gib is None and "pool_k_gib" in raw:
                kv_gib = raw["pool_k_gib"] + raw.get("pool_v_gib", 0.0)
            tokens = first("kv_tokens", "full_pool_tokens")
            if tokens is None and "pool_tokens" in raw and "swa_kv_tokens" not in raw:
                tokens = raw["pool_tokens"]  # one pool (no sliding-window pool): its size is the total
            picks = {"weights_gib": raw.get("weights_gib"), "kv_cache_gib": kv_gib, "kv_tokens": tokens,
                     "cuda_graph_gib": raw.get("cuda_graph_gib"), CONTEXT_KEY: raw.get(CONTEXT_KEY)}
            if tokens is not None and raw.get(CONTEXT_KEY):
                picks["max_concurrency_at_max_model_len"] = tokens / raw[CONTEXT_KEY]
            for k in ("swa_kv_tokens", "free_at_start_gib", "free_after_start_gib"):
                picks[k] = raw.get(k)
        for k, v in picks.items():
            if v is not None:
                out[k] = int(v) if k in INT_KEYS else round(v, 4)
        conc = out.get("max_concurrency_at_max_model_len")
        if self.no_fit:
            out["fits"] = False
        elif conc is not None:
            out["fits"] = conc >= 1.0
        return out


# ----------------------------------------------------------------------------- comparison

@dataclass(frozen=True)
class Row:
    key: str
    predicted: Any  # None: the plan has no such figure
    actual: Any  # None: the engine did not log it
    diff: float | None  # relative (actual - predicted) / predicted
    warn: bool

    @property
    def compared(self) -> bool:
        return self.predicted is not None and self.actual is not None


def _valid_prediction(key: str, value: Any) -> Any:
    """A prediction as launch.json holds it, or None (missing, or not the right type: compared as missing)."""
    if key == "fits":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def compare(predicted: Mapping[str, Any] | None, actual: Mapping[str, Any]) -> list[Row]:
    """One row per figure either side has; only figures both sides have are compared."""
    pred = {k: _valid_prediction(k, (predicted or {}).get(k)) for k in (*FIT_KEYS, CONTEXT_KEY)}
    rows = []
    for key in (*FIT_KEYS, CONTEXT_KEY, *EXTRA_KEYS):
        p, a = pred.get(key), actual.get(key)
        if p is None and a is None:
            continue
        diff, warn = None, False
        if p is not None and a is not None:
            if key == "fits":
                warn = p != a
            elif key == CONTEXT_KEY:
                warn = p != a  # the engine ran with another context: the other figures assume the plan's
            else:
                diff = (a - p) / p if p else (0.0 if a == 0 else math.inf)
                warn = abs(diff) > TOLERANCE
        rows.append(Row(key, p, a, diff, warn))
    return rows


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if key in INT_KEYS:
        return f"{int(value):,}"
    if key == "max_concurrency_at_max_model_len":
        return f"{value:.2f}x"
    return f"{value:.2f}"


def _fmt_diff(row: Row) -> str:
    if row.diff is None:
        return "differs" if row.warn else ("same" if row.compared else "")
    return "inf" if math.isinf(row.diff) else f"{row.diff:+.1%}"


@dataclass
class SelfCheck:
    """The plan's `fit` (launch.json) and the engine's start-up log, compared once the engine is up."""

    backend: str
    predicted: dict[str, Any] | None  # None: launch.json has no `fit` object
    log: StartupLog

    @classmethod
    def for_plan(cls, backend: str, plan: Any) -> "SelfCheck":
        """From a LaunchPlan: its launch.json `fit` object and `max_model_len` setting (missing = no prediction)."""
        predicted = None
        try:
            fit = plan.to_launch_json().get("fit")
            if isinstance(fit, Mapping):
                predicted = {k: fit[k] for k in (*FIT_KEYS, WARM_KEY) if k in fit}
                if plan.settings.get(CONTEXT_KEY) is not None:
                    predicted[CONTEXT_KEY] = plan.settings[CONTEXT_KEY]
        except Exception:  # noqa: BLE001  no prediction rather than no engine
            predicted = None
        return cls(backend, predicted, StartupLog(backend))

    def feed(self, line: str) -> None:
        self.log.feed(line)

    def _prediction(self) -> dict[str, Any] | None:
        """The plan's first-start figures, or its warm-start ones when the engine loaded its compile cache."""
        if self.predicted is None:
            return None
        warm = self.predicted.get(WARM_KEY)
        if self.log.compile_cache_hit and isinstance(warm, Mapping):
            return {**self.predicted, **{k: v for k, v in warm.items() if k in FIT_KEYS}}
        return self.predicted

    def rows(self) -> list[Row]:
        return compare(self._prediction(), self.log.actual())

    def warnings(self) -> list[str]:
        out = []
        for r in self.rows():
            if r.warn:
                how = f"{_fmt_diff(r)} off" if r.diff is not None else "differs"
                out.append(f"{LABELS[r.key]}: the plan predicted {_fmt(r.key, r.predicted)}, the engine logged "
                           f"{_fmt(r.key, r.actual)} ({how}; the warning threshold is {TOLERANCE:.0%})")
        return out

    def report(self) -> str:
        """The table and its warnings, ready to print; never raises."""
        try:
            return self._report()
        except Exception as exc:  # noqa: BLE001
            return f"[SELF-CHECK] could not build the report ({type(exc).__name__}); the engine is unaffected"

    def _report(self) -> str:
        rows = self.rows()
        engine = {"vllm": "vLLM", "sglang": "SGLang"}.get(self.backend, self.backend)
        head = f"[SELF-CHECK] the plan's memory fit vs {engine}'s own start-up log"
        notes = []
        if self.predicted is None:
            notes.append("launch.json has no `fit` object: nothing to compare, the engine's figures only")
        if not any(r.actual is not None for r in rows):
            notes.append(f"none of {engine}'s memory lines were seen in {self.log.lines} log lines "
                         "(another engine version?): nothing to compare")
        if self.log.compile_cache_hit and isinstance((self.predicted or {}).get(WARM_KEY), Mapping):
            notes.append("vLLM loaded its torch.compile cache (a warm start): compared with the plan's warm-start "
                         "figures (launch.json fit.warm_start)")
        warns = self.warnings()
        if self.predicted is not None and not warns and any(r.compared for r in rows):
            notes.append(f"every compared figure is within {TOLERANCE:.0%} of the plan")
        table = _render(rows, self.backend) if rows else ""
        lines = [head, *([table] if table else []), *(f"[SELF-CHECK] note: {n}" for n in notes),
                 *(f"[SELF-CHECK] warning: {w}" for w in warns)]
        return "\n".join(lines)


def _cells(rows: Iterable[Row], backend: str) -> list[list[str]]:
    src = SOURCES.get(backend, {})
    return [[LABELS[r.key], _fmt(r.key, r.predicted), _fmt(r.key, r.actual), _fmt_diff(r),
             "WARN" if r.warn else ("ok" if r.compared else ""), src.get(r.key, "")] for r in rows]


HEADERS = ["figure", "predicted", "engine logged", "diff", "check", "from the engine's log"]


def _render(rows: list[Row], backend: str) -> str:
    cells = _cells(rows, backend)
    try:
        import io

        from rich import box
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:  # the engine images need not ship rich: plain columns then
        return _render_plain(cells)
    table = Table(box=box.ASCII2, show_edge=False, pad_edge=False)
    for i, h in enumerate(HEADERS):
        table.add_column(h, justify="right" if i in (1, 2, 3) else "left", no_wrap=i < 5)
    for row in cells:
        table.add_row(*(escape(c) for c in row), style="bold" if row[4] == "WARN" else None)
    buf = io.StringIO()
    Console(file=buf, width=160, color_system=None, force_terminal=False, highlight=False).print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines())


def _render_plain(cells: list[list[str]]) -> str:
    all_rows = [HEADERS, *cells]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(HEADERS))]
    out = []
    for r in all_rows:
        out.append("  ".join(c.rjust(w) if i in (1, 2, 3) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(out)


def parse_log(backend: str, text: str) -> dict[str, Any]:
    """The figures in a whole start-up log (tests, and a captured log read by hand)."""
    log = StartupLog(backend)
    log.feed_text(text)
    return log.actual()
