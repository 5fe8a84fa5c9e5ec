"""``bench``: an async streaming load generator with the metrics ``vllm bench serve`` and
AIPerf report.

Definitions (per request, from the client's clock), next to ``vllm bench serve``'s
(vllm/benchmarks/lib/endpoint_request_func.py, backend openai-chat, vLLM 0.32):
- TTFT: request sent -> first streamed chunk with a non-empty ``choices`` list, whatever its delta
  holds (vLLM's definition, the same code path). vLLM and SGLang send that chunk with the engine's
  first generated token, so it times prefill plus one decode step even when no text is visible yet.
- TTFT-token (``ttft_token``): -> first chunk carrying text of any kind (reasoning, content or a tool
  call). gpt-oss's harmony header (``<|channel|>analysis<|message|>``) is a few tokens that show
  nothing, so this is a little later than TTFT on a real checkpoint; with random weights, whose
  output the harmony parser mostly hides, it can be the end of the request.
- TTFT-content (``ttft_content``): -> first *content* token (gpt-oss reasons first): what a chat
  user waits for.
- E2E: request sent -> last byte of the stream (vLLM: "latency", to its last choice chunk).
- TPOT: (E2E - TTFT) / (completion_tokens - 1), completion tokens from the server's usage (vLLM:
  the same formula with usage's count), so it holds when the parser shows few deltas. When the
  stream has fewer than two choice chunks (everything in one chunk) the TTFT point is the end and
  TPOT is E2E / completion_tokens instead (``tpot_from_usage`` in the per-request JSON).
- ITL: gaps between successive text-bearing chunks (vLLM's: between choice chunks; the same on a
  real checkpoint streamed token by token).
- A request counts as completed when its stream ends with ``[DONE]`` and no error event, as
  vLLM's does; one whose usage reports tokens but whose stream showed no text (random weights
  behind the harmony parser) is completed and counted in ``no_text_streams``; one with neither
  text nor usage tokens failed.
Per concurrency level: output tok/s and req/s over the level's wall time, p50/p90/p99 of
each latency, and goodput = requests/s that met every SLO (TTFT, TPOT, E2E limits).

The client measures its own cost: time spent decoding SSE and JSON per request and per
chunk, and the process CPU use during the level. A CPU use near one core means the client,
not the server, limits the numbers.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from infra.endpoint.client import EndpointClient, model_ids, stale_connection
from infra.endpoint.deadline import Deadline, async_http_client, earliest, scope
from infra.endpoint.safetext import printable
from infra.endpoint.sse import SSEDecoder, StreamResult, consume, finish
from infra.endpoint.target import Target

WORDS = ("time person year way day thing man world life hand part child eye woman place work week case "
         "point government company number group problem fact river cloud stone light sound music paper "
         "market garden window summer winter story letter engine signal answer question system").split()


@dataclass
class BenchConfig:
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 32, 64])
    input_len: int = 256              # approximate prompt length in words (~tokens)
    output_len: int = 256             # max_tokens per request
    num_prompts: int | None = None    # per level; default max(5 * concurrency, 10)
    slo_ttft_ms: float | None = 2000.0
    slo_tpot_ms: float | None = 100.0
    slo_e2e_ms: float | None = None
    ignore_eos: bool = False          # vLLM / llama.cpp: generate exactly output_len tokens
    request_timeout: float = 600.0    # one request, start to last byte (the warm-up's too)
    level_timeout: float = 1800.0     # no new request starts after this; in-flight ones are cancelled
    deadline: float | None = None     # the whole run; levels not reached by then are not started
    warmup: bool = True
    seed: int = 0
    price_per_hour: float | None = None

    def prompts_for(self, c: int) -> int:
        return self.num_prompts if self.num_prompts else max(5 * c, 10)


@dataclass
class RequestMetrics:
    ok: bool
    error: str | None = None
    ttft: float | None = None          # first choice chunk (vLLM's TTFT)
    ttft_token: float | None = None    # first text-bearing chunk
    ttft_content: float | None = None  # first content chunk
    e2e: float = 0.0
    itl: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    chunks: int = 0
    choice_chunks: int = 0
    token_chunks: int = 0
    client_s: float = 0.0             # time spent in this client's own parsing
    retries: int = 0                  # 1 when a stale keep-alive connection had to be replaced
    cancelled: bool = False           # cut short by the level's (or the run's) deadline
    stale_retry: bool = field(default=False, repr=False)

    @property
    def tpot_from_usage(self) -> bool:
        """The stream had fewer than two choice chunks (everything in one): the TTFT point is the
        end of the request, so TPOT is the whole request over usage's token count."""
        return self.choice_chunks < 2 and bool(self.completion_tokens) and self.completion_tokens >= 2

    @property
    def tpot(self) -> float | None:
        if not self.completion_tokens or self.completion_tokens < 2:
            return None
        if self.tpot_from_usage:
            return self.e2e / self.completion_tokens
        if self.ttft is None:
            return None
        return (self.e2e - self.ttft) / (self.completion_tokens - 1)


def make_prompt(rng: random.Random, n_words: int, idx: int) -> str:
    words = [rng.choice(WORDS) for _ in range(max(1, n_words - 8))]
    return f"Request {idx}: continue this text. " + " ".join(words)


async def one_request(http: httpx.AsyncClient, target: Target, body: dict[str, Any],
                      timeout: float | None = None) -> RequestMetrics:
    """One streamed request, ended by ``timeout`` seconds (start to last byte) or by the
    enclosing deadline scope, whichever is sooner; its failure is a metric, never raised."""
    with scope(Deadline.after(timeout, "request") if timeout is not None else None) as limit:
        m = await _one_request(http, target, body)
        if m.stale_retry:  # a pooled connection the server had closed: nothing was sent to the model
            m = await _one_request(http, target, body)
            m.retries = 1
    if not m.ok and limit is not None and limit.what != "request" and limit.message() in (m.error or ""):
        m.cancelled = True  # the level's or the run's deadline cut it, not its own
    return m


async def _one_request(http: httpx.AsyncClient, target: Target, body: dict[str, Any]) -> RequestMetrics:
    dec, res = SSEDecoder(), StreamResult()
    client_s = 0.0
    t0 = time.perf_counter()
    try:
        async with http.stream("POST", target.base_url + "/chat/completions", json=body,
                               headers={**target.headers(), "Accept": "text/event-stream"}) as resp:
            if resp.status_code != 200:
                head = b""
                async for piece in resp.aiter_bytes():
                    head += piece
                    if len(head) > 4096:
                        break
                return RequestMetrics(False, f"HTTP {resp.status_code}: {printable(head.decode('utf-8', 'replace'), 120)}",
                                      e2e=time.perf_counter() - t0)
            async for text in resp.aiter_text():
                now = time.perf_counter()
                more = consume(dec, res, text, now)
                client_s += time.perf_counter() - now
                if not more:
                    break
            now = time.perf_counter()
            finish(dec, res, now)
            client_s += time.perf_counter() - now
    except (httpx.HTTPError, asyncio.TimeoutError) as exc:
        m = RequestMetrics(False, f"{type(exc).__name__}: {printable(exc, 160)}", e2e=time.perf_counter() - t0)
        m.stale_retry = stale_connection(exc)
        return m
    t_end = time.perf_counter()
    m = RequestMetrics(ok=True, e2e=t_end - t0, chunks=res.chunks, choice_chunks=res.choice_chunks,
                       token_chunks=len(res.token_times), client_s=client_s)
    if res.errors or not res.done:
        m.ok = False
        m.error = "; ".join(printable(e, 160) for e in res.errors[:2]) or "stream ended without [DONE]"
    if res.t_first_chunk is not None:
        m.ttft = res.t_first_chunk - t0
    if res.t_first_token is not None:
        m.ttft_token = res.t_first_token - t0
    if res.t_first_content is not None:
        m.ttft_content = res.t_first_content - t0
    m.itl = [b - a for a, b in zip(res.token_times, res.token_times[1:])]
    if res.usage:
        m.prompt_tokens = res.usage.get("prompt_tokens")
        m.completion_tokens = res.usage.get("completion_tokens")
    else:  # no usage: one token per token-bearing chunk is the best estimate
        m.completion_tokens = len(res.token_times)
    if m.ok and not m.token_chunks and not (res.usage and m.completion_tokens):
        m.ok, m.error = False, "no token in the stream"
    return m


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def dist_ms(values: list[float]) -> dict[str, float | None]:
    ms = [v * 1000.0 for v in values]
    if not ms:
        return {"mean": None, "p50": None, "p90": None, "p99": None}
    return {"mean": sum(ms) / len(ms), "p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99)}


def meets_slo(m: RequestMetrics, cfg: BenchConfig) -> bool:
    if not m.ok:
        return False
    if cfg.slo_ttft_ms is not None and (m.ttft is None or m.ttft * 1000 > cfg.slo_ttft_ms):
        return False
    if cfg.slo_tpot_ms is not None and m.tpot is not None and m.tpot * 1000 > cfg.slo_tpot_ms:
        return False
    if cfg.slo_e2e_ms is not None and m.e2e * 1000 > cfg.slo_e2e_ms:
        return False
    return True


def summarize(c: int, n: int, metrics: list[RequestMetrics], duration: float, cpu_s: float, cfg: BenchConfig) -> dict[str, Any]:
    ok = [m for m in metrics if m.ok]
    out_tok = sum(m.completion_tokens or 0 for m in ok)
    in_tok = sum(m.prompt_tokens or 0 for m in ok)
    chunks = sum(m.chunks for m in metrics)
    client_s = sum(m.client_s for m in metrics)
    dur = max(duration, 1e-9)
    errors: dict[str, int] = {}
    for m in metrics:
        if not m.ok:
            errors[m.error or "?"] = errors.get(m.error or "?", 0) + 1
    return {
        "concurrency": c,
        "num_prompts": n,
        "completed": len(ok),
        "failed": len(metrics) - len(ok),
        "cancelled": sum(m.cancelled for m in metrics),   # counted in `failed` too
        "not_started": n - len(metrics),
        "errors": errors,
        "duration_s": duration,
        "input_tokens": in_tok,
        "output_tokens": out_tok,
        "req_per_s": len(ok) / dur,
        "output_tok_per_s": out_tok / dur,
        "total_tok_per_s": (in_tok + out_tok) / dur,
        "goodput_req_per_s": sum(meets_slo(m, cfg) for m in metrics) / dur,
        "no_text_streams": sum(not m.token_chunks for m in ok),
        "ttft_ms": dist_ms([m.ttft for m in ok if m.ttft is not None]),
        "ttft_token_ms": dist_ms([m.ttft_token for m in ok if m.ttft_token is not None]),
        "ttft_content_ms": dist_ms([m.ttft_content for m in ok if m.ttft_content is not None]),
        "tpot_ms": dist_ms([m.tpot for m in ok if m.tpot is not None]),
        "itl_ms": dist_ms([x for m in ok for x in m.itl]),
        "e2e_ms": dist_ms([m.e2e for m in ok]),
        "client": {
            "overhead_ms_per_request": 1000.0 * client_s / max(1, len(metrics)),
            "overhead_us_per_chunk": 1e6 * client_s / max(1, chunks),
            "cpu_util": cpu_s / dur,  # fraction of one core used by this process
        },
        "requests": [{**{k: v for k, v in asdict(m).items() if k not in ("itl", "stale_retry")},
                      "tpot": m.tpot, "tpot_from_usage": m.tpot_from_usage, "itl_count": len(m.itl)} for m in metrics],
    }


async def run_level(target: Target, model: str, c: int, cfg: BenchConfig,
                    progress: Any = None, task_id: Any = None, run_deadline: Deadline | None = None) -> dict[str, Any]:
    """One concurrency level. It ends by ``level_timeout`` (or the run's deadline): no request
    starts after that, and those in flight are cut and counted as failed and cancelled."""
    n = cfg.prompts_for(c)
    rng = random.Random(cfg.seed * 1_000_003 + c)
    bodies = []
    for i in range(n):
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": make_prompt(rng, cfg.input_len, i)}],
                                "max_tokens": cfg.output_len, "stream": True, "stream_options": {"include_usage": True}}
        if cfg.ignore_eos:
            body["ignore_eos"] = True
        bodies.append(body)
    metrics: list[RequestMetrics] = []
    queue = list(reversed(bodies))
    level = earliest(run_deadline, Deadline.after(cfg.level_timeout, f"concurrency {c} level"))
    assert level is not None
    async with async_http_client(cfg.request_timeout, max_connections=c) as http:
        async def worker() -> None:
            while queue and not level.expired:
                body = queue.pop()
                t_req = time.perf_counter()
                try:
                    m = await one_request(http, target, body, cfg.request_timeout)
                except asyncio.CancelledError:  # the backstop below: still a request that was sent
                    metrics.append(RequestMetrics(False, f"cancelled: {level.message()}", cancelled=True,
                                                  e2e=time.perf_counter() - t_req))
                    raise
                metrics.append(m)
                if progress is not None:
                    progress.advance(task_id)

        cpu0, t0 = time.process_time(), time.perf_counter()
        with scope(level):  # the workers' requests inherit it
            workers = [asyncio.create_task(worker()) for _ in range(min(c, n))]
        try:
            # the requests end themselves at the deadline; this only guards against a stuck task
            await asyncio.wait_for(asyncio.gather(*workers), timeout=max(0.0, level.remaining()) + 5.0)
        except asyncio.TimeoutError:
            pass
        duration, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    return summarize(c, n, metrics, duration, cpu_s, cfg)


def compare(levels: list[dict[str, Any]], target: Target, model: str, cfg: BenchConfig) -> dict[str, Any]:
    """Measured vs the catalogue's expected tok/s for the stack's GPU, and $/M output tokens."""
    expected = None
    note = None
    if target.gpu and target.backend:
        try:
            from infra.catalogue import expected_tok_s
            expected = expected_tok_s(target.gpu, model, target.backend)
        except ImportError as exc:  # the catalogue is optional for a bare --url run
            note = f"catalogue unavailable: {exc}"
        except Exception as exc:  # an unknown GPU/model id is not a benchmark failure
            note = f"catalogue lookup failed: {type(exc).__name__}: {exc}"
        if expected is None and note is None:
            note = f"the catalogue has no expected tok/s for {target.gpu} / {model} / {target.backend}"
    else:
        note = "GPU or backend unknown (use --stack, or --gpu and --backend): no expected tok/s"

    def verdict(value: float | None, rng: Any) -> str | None:
        if value is None or not rng:
            return None
        lo, hi = rng  # either bound may be open (None): "at least 6000 tok/s" is [6000, None]
        if lo is not None and value < lo:
            return "below"
        if hi is not None and value > hi:
            return "above"
        return "within"

    single = next((lv for lv in levels if lv["concurrency"] == 1), None)
    single_decode = None
    if single and single["tpot_ms"]["p50"]:
        single_decode = 1000.0 / single["tpot_ms"]["p50"]
    best = max(levels, key=lambda lv: lv["output_tok_per_s"]) if levels else None
    out: dict[str, Any] = {
        "gpu": target.gpu, "model": model, "backend": target.backend, "expected": expected, "note": note,
        "single_stream_decode_tok_s": single_decode,
        "single_stream_verdict": verdict(single_decode, (expected or {}).get("single_stream")),
        "best_output_tok_s": best["output_tok_per_s"] if best else None,
        "best_concurrency": best["concurrency"] if best else None,
        "batched_verdict": verdict(best["output_tok_per_s"] if best else None, (expected or {}).get("batched")),
    }
    if cfg.price_per_hour is not None:
        out["price_per_hour"] = cfg.price_per_hour
        out["usd_per_m_output_tokens"] = {
            str(lv["concurrency"]): (cfg.price_per_hour / (lv["output_tok_per_s"] * 3600.0) * 1e6
                                     if lv["output_tok_per_s"] > 0 else None)
            for lv in levels}
    return out


async def warm_up(target: Target, model: str, cfg: BenchConfig, run_deadline: Deadline | None = None) -> RequestMetrics:
    """One short request before the levels, ended by ``request_timeout`` like any other."""
    async with async_http_client(cfg.request_timeout, max_connections=1) as http:
        body = {"model": model, "messages": [{"role": "user", "content": "warm up"}], "max_tokens": 16,
                "stream": True, "stream_options": {"include_usage": True}}
        with scope(run_deadline, Deadline.after(cfg.request_timeout, "warm-up request")):
            return await one_request(http, target, body)


async def _run(target: Target, model: str, cfg: BenchConfig, console: Any,
               run_deadline: Deadline | None = None) -> tuple[RequestMetrics | None, list[dict[str, Any]]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.text import Text

    warm = None
    if cfg.warmup:
        warm = await warm_up(target, model, cfg, run_deadline)
        if not warm.ok:
            console.print(Text(f"warm-up request failed ({printable(warm.error)}); going on with the levels",
                               style="yellow"))
    levels = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        for c in cfg.concurrency:
            tid = progress.add_task(f"concurrency {c:>3}", total=cfg.prompts_for(c))
            levels.append(await run_level(target, model, c, cfg, progress, tid, run_deadline))
    return warm, levels


def run_bench(target: Target, cfg: BenchConfig, out_dir: Path | None = None, console: Any = None) -> dict[str, Any]:
    """Run every concurrency level; write ``bench.json`` and ``bench.png`` under ``out_dir``."""
    from rich.console import Console

    console = console or Console(stderr=True)
    run_deadline = Deadline.after(cfg.deadline, "bench run") if cfg.deadline is not None else None
    model = target.model
    if not model:  # BadReply (an httpx.HTTPError) names what is wrong with the listing
        with EndpointClient(target, timeout=min(30.0, cfg.request_timeout), deadline=run_deadline) as client:
            model = model_ids(client.models())[0]
    t0 = time.time()
    extra: dict[str, Any] = {}
    if getattr(cfg, "workload", "random") != "random":  # agentic / trace: infra.endpoint.agentic
        from infra.endpoint.agentic import run_agentic

        extra = run_agentic(target, model, cfg, console, run_deadline)
        warm, levels = extra.pop("warmup"), [extra.pop("level")]
    else:
        warm, levels = asyncio.run(_run(target, model, cfg, console, run_deadline))
    result = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        "target": {"base_url": target.base_url, "model": model, "backend": target.backend, "gpu": target.gpu,
                   "source": target.source},
        "config": {k: v for k, v in asdict(cfg).items()},
        "warmup": None if warm is None else {"ok": warm.ok, "error": warm.error, "e2e_s": warm.e2e},
        "levels": levels,
        "comparison": compare(levels, target, model, cfg),
        **extra,
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "bench.json").write_text(json.dumps(result, indent=2))
        from infra.endpoint.agentic import plot_agentic  # TTFT by turn index
        from infra.endpoint.report import plot_bench

        (plot_agentic if extra else plot_bench)(result, out_dir / "bench.png")
        result["files"] = {"json": str(out_dir / "bench.json"), "png": str(out_dir / "bench.png")}
    return result
