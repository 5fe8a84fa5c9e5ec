"""Rich tables for people, and the matplotlib plot of a benchmark (Agg backend).

Every value that came from the server or the stack (URLs, model ids, check details, notes)
enters a table as :func:`~infra.endpoint.safetext.plain` text, never as markup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from infra.endpoint.checks import FAIL, PASS, SmokeReport
from infra.endpoint.safetext import plain, printable

_STYLE = {PASS: "[green]pass[/]", FAIL: "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}


def smoke_table(report: SmokeReport) -> Table:
    t = report.target
    title = Text.assemble("smoke test: ", plain(t["base_url"]), "  model ", plain(t.get("model") or "?"),
                          "  (", plain(t["source"]), ")")
    table = Table(title=title, show_lines=False)
    table.add_column("check", style="bold")
    table.add_column("result")
    table.add_column("s", justify="right")
    table.add_column("detail", overflow="fold")
    for c in report.checks:
        table.add_row(c.name, _STYLE.get(c.status, c.status), f"{c.seconds:.2f}", plain(c.detail, 400))
    passed = sum(c.status == PASS for c in report.checks)
    failed = sum(c.status == FAIL for c in report.checks)
    skipped = len(report.checks) - passed - failed
    table.caption = f"{passed} passed, {failed} failed, {skipped} skipped in {report.seconds:.2f}s"
    return table


# The report's view of the checks by what they prove, each with the API it speaks, so that a Chat
# Completions check and its Responses counterpart sit side by side: (feature, [(check, API)]).
API_VIEW: list[tuple[str, list[tuple[str, str]]]] = [
    ("endpoint", [("health", "GET /health"), ("models", "GET /v1/models"), ("auth", "chat")]),
    ("text", [("chat", "chat"), ("reasoning", "chat"), ("responses", "responses")]),
    ("stream", [("stream", "chat"), ("responses_stream", "responses")]),
    ("tool call", [("tool_call", "chat"), ("tool_call_stream", "chat"), ("tool_choice_required", "chat"),
                   ("responses_tool_call", "responses")]),
    ("tool loop", [("tool_loop", "chat"), ("responses_tool_loop", "responses")]),
    ("structured output", [("structured_output", "chat"), ("structured_output", "responses")]),
    ("answer", [("answer", "chat"), ("answer", "responses")]),
    ("built-in tools", [("builtin_python", "responses")]),
    ("load", [("concurrency", "chat")]),
    ("harmony", [("no_harmony_leak", "every field seen")]),
]


def api_table(report: SmokeReport) -> Table:
    """``smoke-test --report``: check, API, result, time, the two APIs side by side per feature. A check
    speaking both APIs (structured_output, answer) has one row per API when it says how each went, else
    (it failed before) one row for both."""
    table = Table(title="smoke test by API: Chat Completions (chat) and Responses (responses)")
    for col in ("feature", "check", "API", "result", "s"):
        table.add_column(col, justify="right" if col == "s" else "left", style="bold" if col == "check" else None)
    by, listed = report.by_name(), set()
    for feature, rows in API_VIEW:
        label = feature
        for name, api in rows:
            c = by.get(name)
            if c is None or (name, "*") in listed:
                continue
            per_api = (c.data.get("apis") or {}).get(api)
            if per_api:
                status, secs = per_api["status"], per_api["seconds"]
            else:
                status, secs = c.status, c.seconds
                if sum(n == name for n, _ in rows) > 1:
                    api = "chat+responses"
                    listed.add((name, "*"))
            listed.add(name)
            table.add_row(label, name, api, _STYLE.get(status, status), f"{secs:.2f}")
            label = ""
    for c in report.checks:
        if c.name not in listed:
            table.add_row("", c.name, "?", _STYLE.get(c.status, c.status), f"{c.seconds:.2f}")
    return table


def _f(x: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def bench_table(result: dict[str, Any]) -> Table:
    t = result["target"]
    table = Table(title=Text.assemble("bench: ", plain(t["base_url"]), "  model ", plain(t["model"]),
                                      "  gpu ", plain(t.get("gpu") or "?")))
    for col in ("conc", "ok/n", "req/s", "out tok/s", "goodput r/s", "TTFT p50/p99 ms", "TTFT content p50 ms",
                "TPOT p50/p99 ms", "ITL p50/p99 ms", "E2E p50/p90/p99 ms", "client ms/req", "client CPU"):
        table.add_column(col, justify="right")
    for lv in result["levels"]:
        cl = lv["client"]
        table.add_row(
            str(lv["concurrency"]), f"{lv['completed']}/{lv['num_prompts']}", _f(lv["req_per_s"], "{:.2f}"),
            _f(lv["output_tok_per_s"]), _f(lv["goodput_req_per_s"], "{:.2f}"),
            f"{_f(lv['ttft_ms']['p50'])}/{_f(lv['ttft_ms']['p99'])}", _f(lv["ttft_content_ms"]["p50"]),
            f"{_f(lv['tpot_ms']['p50'], '{:.2f}')}/{_f(lv['tpot_ms']['p99'], '{:.2f}')}",
            f"{_f(lv['itl_ms']['p50'], '{:.2f}')}/{_f(lv['itl_ms']['p99'], '{:.2f}')}",
            f"{_f(lv['e2e_ms']['p50'], '{:.0f}')}/{_f(lv['e2e_ms']['p90'], '{:.0f}')}/{_f(lv['e2e_ms']['p99'], '{:.0f}')}",
            _f(cl["overhead_ms_per_request"], "{:.2f}"),
            ("[bold red]" if cl["cpu_util"] > 0.8 else "") + f"{cl['cpu_util'] * 100:.0f}%",
        )
    notes = []
    if any(lv["client"]["cpu_util"] > 0.8 for lv in result["levels"]):
        notes.append("client CPU > 80% of a core: the client may be the limit at those levels")
    if any(lv["failed"] for lv in result["levels"]):
        notes.append("some requests failed: see `errors` in the JSON")
    table.caption = "; ".join(notes) or None
    return table


def comparison_table(result: dict[str, Any]) -> Table:
    cmp_ = result["comparison"]
    exp = cmp_.get("expected") or {}
    table = Table(title=Text.assemble("against the catalogue",
                                      *((" (", plain(exp["source"]), ")") if exp.get("source") else ())))
    table.add_column("what")
    table.add_column("measured", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("verdict")

    def rng(r: Any) -> str:
        if not r:
            return "-"
        lo, hi = r
        return f">= {lo}" if hi is None else f"<= {hi}" if lo is None else f"{lo}-{hi}"

    table.add_row("single-stream decode tok/s", _f(cmp_.get("single_stream_decode_tok_s")),
                  rng(exp.get("single_stream")), cmp_.get("single_stream_verdict") or "-")
    table.add_row(f"best output tok/s (conc {cmp_.get('best_concurrency')})", _f(cmp_.get("best_output_tok_s")),
                  rng(exp.get("batched")), cmp_.get("batched_verdict") or "-")
    for c, usd in (cmp_.get("usd_per_m_output_tokens") or {}).items():
        table.add_row(f"$/M output tokens at conc {c} (${cmp_['price_per_hour']}/h)", _f(usd, "{:.3f}"), "-", "")
    if cmp_.get("note"):
        table.caption = plain(cmp_["note"], 400)
    return table


def plot_bench(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = result["levels"]
    conc = [lv["concurrency"] for lv in levels]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax1.plot(conc, [lv["output_tok_per_s"] for lv in levels], "o-", label="output tok/s")
    exp = (result.get("comparison") or {}).get("expected") or {}
    for key, color in (("single_stream", "tab:purple"), ("batched", "green")):
        lo, hi = exp.get(key) or (None, None)
        label = f"expected {key.replace('_', '-')} tok/s"
        if lo is not None and hi is not None:
            ax1.axhspan(lo, hi, alpha=0.15, color=color, label=label)
        elif lo is not None or hi is not None:
            ax1.axhline(lo if lo is not None else hi, color=color, ls="--", label=label + " (bound)")
    ax1.set_xlabel("concurrency")
    ax1.set_ylabel("output tokens / s")
    ax1b = ax1.twinx()
    ax1b.plot(conc, [lv["req_per_s"] for lv in levels], "s--", color="tab:orange", label="req/s")
    ax1b.set_ylabel("requests / s")
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax1b.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, loc="upper left")
    ax1.set_title("throughput")
    for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("e2e_ms", "E2E")):
        for q, style in (("p50", "o-"), ("p99", "x:")):
            ys = [lv[key][q] for lv in levels]
            if any(y is not None for y in ys):
                ax2.plot(conc, [y if y is not None else float("nan") for y in ys], style, label=f"{label} {q}")
    ax2.set_xlabel("concurrency")
    ax2.set_ylabel("ms")
    if all((lv["e2e_ms"]["p50"] or 0) > 0 for lv in levels):
        ax2.set_yscale("log")
    ax2.set_title("latency")
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize="small")
    for ax in (ax1, ax2):
        if len(conc) > 1 and max(conc) / max(min(conc), 1) >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(conc)
        ax.set_xticklabels([str(c) for c in conc])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
    t = result["target"]
    return save_plot(fig, path, f"{t['model']} on {t.get('gpu') or '?'} ({t.get('backend') or '?'}) - {t['base_url']}")


def save_plot(fig: Any, path: Path, title: str, width: int = 160) -> Path:
    """Title (server text, shown literally), lay out, write the PNG, free the figure."""
    import matplotlib.pyplot as plt

    fig.suptitle(printable(title, width).replace("$", r"\$"), fontsize=10 if width > 120 else 9)  # no mathtext
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
