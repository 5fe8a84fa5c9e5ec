"""``bench --workload agentic|trace``: conversations that grow turn by turn, the way agents use an
endpoint, with the engine's own prefix-cache hit rate over the run.

agentic: ``sessions`` conversations run at once, ``turns`` requests each. Every request sends the
whole conversation so far: a system prompt and tool definitions (the same for every session, as one
agent's are), the session's task, then per earlier turn the agent's tool call and the tool's result
(``tool_result_len`` words). Between turns the agent "thinks" for ``think_time`` seconds (x0.5-1.5,
seeded). The history's assistant turns are the scripted tool calls, not the model's replies, so the
prompts are the same from run to run and from engine to engine for one seed: two engines are
compared on one token sequence.

trace: a JSONL file, one request per line, replayed: ``{"session_id": "a", "timestamp": 0.0,
"messages": [...], "max_tokens": 128}`` (``messages``: OpenAI chat messages; instead of them,
``input_len``: a prompt of that many words; ``timestamp``: seconds, from any origin). A request
starts at its timestamp (scaled by ``speed``), and not before its session's previous request ended.

Accounting as in :mod:`infra.endpoint.bench`: one request deadline each, the run's ``level_timeout``
and ``deadline`` (no request starts after them, those in flight are cut and counted as failed and
cancelled), requests never started counted as ``not_started``. The result has the bench's shape
(one level: the whole run) plus ``agentic``: per-turn latency and the prefix cache's hit rate.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.endpoint.bench import WORDS, BenchConfig, RequestMetrics, dist_ms, one_request, summarize, warm_up
from infra.endpoint.deadline import Deadline, async_http_client, earliest, scope
from infra.endpoint.prefixcache import hit_rate, metrics_url_of, scrape
from infra.endpoint.safetext import printable
from infra.endpoint.target import Target

MAX_TRACE_LINES = 100_000
MAX_TRACE_LINE_CHARS = 1 << 20
MAX_SESSION_ID = 128
# What one run may build before its first request (every body exists up front): generated prompt words
# (about 7 bytes each) and, for the agentic workload, message slots (each turn holds the whole history).
MAX_GENERATED_WORDS = 50_000_000
MAX_HISTORY_SLOTS = 20_000_000
SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "search_files",
        "description": "Search the repository for a pattern and return the matching lines.",
        "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}},
                       "required": ["pattern"], "additionalProperties": False},
    },
}
READ_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file of the repository.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"],
                       "additionalProperties": False},
    },
}
AGENT_TOOLS = [SEARCH_TOOL, READ_TOOL]


class TraceError(ValueError):
    """A trace line that cannot be replayed (the message names the line and the field)."""


@dataclass
class AgenticConfig(BenchConfig):
    workload: str = "agentic"          # or "trace"
    sessions: int = 8
    turns: int = 6
    system_len: int = 800              # words of the shared system prompt
    task_len: int = 60                 # words of each session's task
    tool_result_len: int = 400         # words of each tool result
    think_time: float = 1.0            # seconds between a reply and the next turn (x0.5-1.5)
    trace: str | None = None           # the JSONL file for workload "trace"
    speed: float = 1.0                 # trace timestamps are divided by this
    metrics_urls: list[str] = field(default_factory=list)  # default: the target's own /metrics

    def __post_init__(self) -> None:
        self.concurrency = [self.sessions]


@dataclass
class Turn:
    session: str
    index: int
    body: dict[str, Any]
    at: float = 0.0       # earliest start, seconds after the run's start
    think: float = 0.0    # seconds after the session's previous request ended


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, n)))


def _body(model: str, messages: list[dict[str, Any]], max_tokens: int, cfg: BenchConfig,
          tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True,
                            "stream_options": {"include_usage": True}}
    if tools:
        body["tools"] = tools
    if cfg.ignore_eos:
        body["ignore_eos"] = True
    return body


def agentic_sessions(model: str, cfg: AgenticConfig) -> list[list[Turn]]:
    """The scripted conversations (deterministic from ``cfg.seed``)."""
    words = cfg.system_len + cfg.sessions * (cfg.task_len + cfg.turns * cfg.tool_result_len)
    slots = cfg.sessions * cfg.turns * (cfg.turns + 1)  # turn t's body lists 2 + 2t messages
    if words > MAX_GENERATED_WORDS or slots > MAX_HISTORY_SLOTS:
        raise TraceError(f"--sessions {cfg.sessions} x --turns {cfg.turns} (tool results of {cfg.tool_result_len} "
                         f"words) is too large a workload to build up front ({words:,} words, {slots:,} history "
                         f"slots; at most {MAX_GENERATED_WORDS:,} and {MAX_HISTORY_SLOTS:,}): fewer sessions or turns")
    rng = random.Random(cfg.seed)
    system = (f"You are a coding agent (run {cfg.seed}). Use the tools to inspect the repository, then answer. "
              + _words(rng, cfg.system_len))
    sessions = []
    for s in range(cfg.sessions):
        sid = f"s{s}"
        messages: list[dict[str, Any]] = [{"role": "system", "content": system},
                                          {"role": "user", "content": f"Task {s}: " + _words(rng, cfg.task_len)}]
        turns = []
        for t in range(cfg.turns):
            think = cfg.think_time * rng.uniform(0.5, 1.5)
            at = rng.uniform(0, cfg.think_time) if t == 0 else 0.0  # sessions do not all start at once
            turns.append(Turn(sid, t, _body(model, list(messages), cfg.output_len, cfg, AGENT_TOOLS),
                              at=at, think=0.0 if t == 0 else think))
            tool = rng.choice(AGENT_TOOLS)["function"]["name"]
            args = {"pattern": rng.choice(WORDS)} if tool == "search_files" else {"path": f"src/{rng.choice(WORDS)}.py"}
            call_id = f"call_{sid}_{t}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": tool, "arguments": json.dumps(args)}}]})
            messages.append({"role": "tool", "tool_call_id": call_id, "content": _words(rng, cfg.tool_result_len)})
        sessions.append(turns)
    return sessions


def _field(rec: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = rec.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TraceError(f"{where}: field {name!r} is {type(value).__name__}, expected "
                         f"{getattr(kind, '__name__', 'number')}; fix the trace (format: README, 'Agent workloads')")
    return value


def trace_sessions(path: Path, model: str, cfg: AgenticConfig) -> list[list[Turn]]:
    """The trace's requests grouped by session, each session in timestamp order."""
    rng = random.Random(cfg.seed)
    rows: list[tuple[float, int, str, dict[str, Any]]] = []
    generated = 0  # input_len words made up for this trace, all held until the run
    try:
        fh = path.open("r", encoding="utf-8", errors="strict")
    except OSError as exc:
        raise TraceError(f"--trace {str(path)!r}: {exc.strerror or exc}") from None
    with fh:
        for n, line in enumerate(iter(lambda: fh.readline(MAX_TRACE_LINE_CHARS + 1), ""), start=1):
            where = f"--trace {path.name} line {n}"
            if n > MAX_TRACE_LINES:
                raise TraceError(f"--trace {path.name}: more than {MAX_TRACE_LINES} lines; split the trace")
            if len(line) > MAX_TRACE_LINE_CHARS:
                raise TraceError(f"{where}: longer than {MAX_TRACE_LINE_CHARS} characters")
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceError(f"{where}: not JSON ({exc.msg}); one JSON object per line") from None
            if not isinstance(rec, dict):
                raise TraceError(f"{where}: a JSON object per line is expected")
            sid = _field(rec, "session_id", (str, int), where)
            sid = str(sid)
            if not sid or len(sid) > MAX_SESSION_ID:
                raise TraceError(f"{where}: field 'session_id' must be 1-{MAX_SESSION_ID} characters")
            ts = float(_field(rec, "timestamp", (int, float), where))
            if not (ts == ts and abs(ts) < 1e12):
                raise TraceError(f"{where}: field 'timestamp' {ts!r} is not a time in seconds")
            max_tokens = rec.get("max_tokens", cfg.output_len)
            if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= 1_000_000:
                raise TraceError(f"{where}: field 'max_tokens' {max_tokens!r} must be an integer 1-1000000")
            if "messages" in rec:
                messages = _field(rec, "messages", list, where)
                if not messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
                    raise TraceError(f"{where}: field 'messages' must be a non-empty list of {{'role': ..., ...}} objects")
            else:
                words = _field(rec, "input_len", int, where)
                if not 1 <= words <= 1_000_000:
                    raise TraceError(f"{where}: field 'input_len' {words} must be 1-1000000 (or give 'messages')")
                generated += words
                if generated > MAX_GENERATED_WORDS:
                    raise TraceError(f"{where}: the trace's input_len words add up to more than "
                                     f"{MAX_GENERATED_WORDS:,}; split the trace")
                messages = [{"role": "user", "content": _words(rng, words)}]
            tools = rec.get("tools")
            if tools is not None and not isinstance(tools, list):
                raise TraceError(f"{where}: field 'tools' must be a list")
            rows.append((ts, n, sid, _body(model, messages, max_tokens, cfg, tools)))
    if not rows:
        raise TraceError(f"--trace {path.name}: no request in the file")
    t0 = min(r[0] for r in rows)
    by_session: dict[str, list[Turn]] = {}
    for ts, _, sid, body in sorted(rows):
        turns = by_session.setdefault(sid, [])
        turns.append(Turn(sid, len(turns), body, at=(ts - t0) / cfg.speed))
    return list(by_session.values())


async def run_sessions(target: Target, sessions: list[list[Turn]], cfg: AgenticConfig, progress: Any = None,
                       task_id: Any = None, run_deadline: Deadline | None = None
                       ) -> tuple[list[tuple[Turn, RequestMetrics]], float, float]:
    """Every session as its own task; returns (turn, metrics) in completion order, wall and CPU seconds."""
    done: list[tuple[Turn, RequestMetrics]] = []
    limit = earliest(run_deadline, Deadline.after(cfg.level_timeout, "agentic run"))
    assert limit is not None
    width = max(1, sum(1 for s in sessions if s))
    async with async_http_client(cfg.request_timeout, max_connections=min(width, 1024)) as http:
        t0 = time.perf_counter()

        async def session(turns: list[Turn]) -> None:
            prev_end = t0
            for turn in turns:
                start = max(t0 + turn.at, prev_end + turn.think)
                wait = start - time.perf_counter()
                if wait > 0:
                    if wait >= limit.remaining():
                        return
                    await asyncio.sleep(wait)
                if limit.expired:
                    return
                t_req = time.perf_counter()
                try:
                    m = await one_request(http, target, turn.body, cfg.request_timeout)
                except asyncio.CancelledError:  # the backstop below: still a request that was sent
                    done.append((turn, RequestMetrics(False, f"cancelled: {limit.message()}", cancelled=True,
                                                      e2e=time.perf_counter() - t_req)))
                    raise
                done.append((turn, m))
                prev_end = time.perf_counter()
                if progress is not None:
                    progress.advance(task_id)
                if not m.ok:  # an agent cannot go on without the reply
                    return

        cpu0 = time.process_time()
        with scope(limit):
            tasks = [asyncio.create_task(session(s)) for s in sessions if s]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=max(0.0, limit.remaining()) + 5.0)
        except asyncio.TimeoutError:
            pass
        return done, time.perf_counter() - t0, time.process_time() - cpu0


def by_turn(done: list[tuple[Turn, RequestMetrics]]) -> list[dict[str, Any]]:
    out = []
    for idx in sorted({t.index for t, _ in done}):
        ms = [m for t, m in done if t.index == idx]
        ok = [m for m in ms if m.ok]
        out.append({
            "turn": idx, "requests": len(ms), "completed": len(ok),
            "prompt_tokens_mean": (sum(m.prompt_tokens or 0 for m in ok) / len(ok)) if ok else None,
            "ttft_ms": dist_ms([m.ttft for m in ok if m.ttft is not None]),
            "tpot_ms": dist_ms([m.tpot for m in ok if m.tpot is not None]),
            "e2e_ms": dist_ms([m.e2e for m in ok]),
        })
    return out


def run_agentic(target: Target, model: str, cfg: AgenticConfig, console: Any,
                run_deadline: Deadline | None = None) -> dict[str, Any]:
    """The workload, between two reads of the engines' /metrics; the bench's level shape + ``agentic``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.text import Text

    if cfg.workload == "trace":
        if not cfg.trace:
            raise TraceError("--workload trace needs --trace FILE (JSONL, one request per line)")
        sessions = trace_sessions(Path(cfg.trace), model, cfg)
    else:
        sessions = agentic_sessions(model, cfg)
    total = sum(len(s) for s in sessions)
    cfg.concurrency = [len(sessions)]  # a trace's sessions, for the JSON's config
    warm = None
    if cfg.warmup:
        warm = asyncio.run(warm_up(target, model, cfg, run_deadline))
        if not warm.ok:
            console.print(Text(f"warm-up request failed ({printable(warm.error)}); going on", style="yellow"))
    urls = cfg.metrics_urls or [metrics_url_of(target)]
    before = [scrape(target, u) for u in urls]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        tid = progress.add_task(f"{cfg.workload}: {len(sessions)} sessions", total=total)
        done, duration, cpu_s = asyncio.run(run_sessions(target, sessions, cfg, progress, tid, run_deadline))
    after = [scrape(target, u) for u in urls]
    level = summarize(len(sessions), total, [m for _, m in done], duration, cpu_s, cfg)
    for rec, (turn, _) in zip(level["requests"], done):
        rec.update(session=turn.session, turn=turn.index)
    caches = [hit_rate(b, a) for b, a in zip(before, after)]
    q = sum(c["queried_tokens"] or 0 for c in caches)
    h = sum(c["hit_tokens"] or 0 for c in caches)
    partial = [c["url"] for c in caches if c["queried_tokens"] is None]
    return {"warmup": warm, "level": level, "agentic": {
        "workload": cfg.workload, "sessions": len(sessions), "requests": total,
        "by_turn": by_turn(done),
        "prefix_cache": {"per_endpoint": caches, "queried_tokens": q, "hit_tokens": h,
                         "hit_rate": (h / q) if q > 0 else None,
                         # the total leaves these out (no counters, or a restart between the reads)
                         **({"partial": True, "left_out": partial} if partial and len(partial) < len(caches) else {})},
    }}


def plot_agentic(result: dict[str, Any], path: Path) -> Path:
    """TTFT (p50, p90) and prompt tokens by turn index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["agentic"]["by_turn"]
    turns = [r["turn"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for q, style in (("p50", "o-"), ("p90", "x:")):
        ax.plot(turns, [r["ttft_ms"][q] if r["ttft_ms"][q] is not None else float("nan") for r in rows],
                style, label=f"TTFT {q}")
    ax.set_xticks(turns)
    ax.set_xlabel("turn index")
    ax.set_ylabel("TTFT ms")
    ax.grid(True, alpha=0.3)
    axb = ax.twinx()
    axb.plot(turns, [r["prompt_tokens_mean"] if r["prompt_tokens_mean"] is not None else float("nan") for r in rows],
             "s--", color="tab:gray", label="prompt tokens (mean)")
    axb.set_ylabel("prompt tokens")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = axb.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize="small")
    rate = result["agentic"]["prefix_cache"]["hit_rate"]
    ax.set_title(f"{result['agentic']['workload']}: TTFT by turn; prefix-cache hit rate "
                 + (f"{rate * 100:.1f}%" if rate is not None else "n/a"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def agentic_table(result: dict[str, Any]) -> Any:
    """Per turn: requests, prompt tokens, TTFT and E2E; the caption gives the prefix-cache hit rate(s)."""
    from rich.table import Table
    from rich.text import Text

    from infra.endpoint.safetext import plain

    a = result["agentic"]
    table = Table(title=f"{a['workload']}: {a['sessions']} sessions, {a['requests']} requests")
    for col in ("turn", "ok/n", "prompt tok", "TTFT p50/p90 ms", "E2E p50/p90 ms"):
        table.add_column(col, justify="right")

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    for r in a["by_turn"]:
        table.add_row(str(r["turn"]), f"{r['completed']}/{r['requests']}", f(r["prompt_tokens_mean"]),
                      f"{f(r['ttft_ms']['p50'])}/{f(r['ttft_ms']['p90'])}", f"{f(r['e2e_ms']['p50'])}/{f(r['e2e_ms']['p90'])}")
    parts: list[Any] = []
    for c in a["prefix_cache"]["per_endpoint"]:
        rate = "n/a" if c["hit_rate"] is None else f"{c['hit_rate'] * 100:.1f}%"
        parts += [plain(c["url"]), f": prefix-cache hit rate {rate}",
                  *(["  (", plain(c["note"]), ")"] if c.get("note") else []), "\n"]
    table.caption = Text.assemble(*parts) if parts else None
    return table
