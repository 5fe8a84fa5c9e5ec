"""`invoke smoke-test | wait-ready | bench | eval`: prove a deployed endpoint works.

Where the endpoint is: `--stack NAME` (reads `pulumi stack output --json --show-secrets`;
URL, model, API key, GPU, backend and the logs command come from the outputs) or `--url URL`
(with `--api-key-env VAR` naming the environment variable that holds the key).

Defaults can be set in the invoke configuration under `endpoint:` (e.g. `invoke.yaml`):
    endpoint:
      api_key_env: GPTOSS_API_KEY
      smoke: {turns: 2, concurrency: 4, max_tokens: 512, timeout: 120, deadline: 600}
      wait_ready: {timeout: 900, interval: 2}
      bench: {concurrency: "1,8,32,64", input_len: 256, output_len: 256, out: build/bench,
              slo_ttft_ms: 2000, slo_tpot_ms: 100, price_per_hour: null, deadline: null}
      eval: {concurrency: 64, request_timeout: 1800, deadline: 3600, retries: 2, out: build/eval}
Command-line options win over the configuration.

Every task ends by its deadlines whatever the server does (a server that drips a byte a second
or streams for ever included): each request by its own timeout, start to last byte, and the
task by its overall one. Text from the server or the stack is printed literally
(:mod:`infra.endpoint.safetext`), never as rich markup.
"""

from __future__ import annotations

import json as _json
import time
from pathlib import Path
from typing import Any

from invoke import Collection
from invoke.exceptions import Exit

from infra.tasks import task

WHERE_HELP = {
    "stack": "read URL, model, API key, GPU from this Pulumi stack's outputs",
    "url": "base URL of the endpoint (http://host:port or .../v1); loopback-only servers work too",
    "api_key_env": "name of the environment variable that holds the API key (the key itself is never printed)",
    "model": "expected served model id (default: the stack's `model`, else the first listed)",
}

AGENTIC_HELP = {
    "workload": "random (default: independent single-turn prompts), agentic (growing multi-turn tool-use "
                "conversations) or trace (replay --trace FILE)",
    "sessions": "agentic: conversations run at once (default 8)",
    "turns": "agentic: requests per conversation (default 6)",
    "system_len": "agentic: words of the shared system prompt (default 800)",
    "tool_result_len": "agentic: words of each tool result fed back (default 400)",
    "think_time": "agentic: seconds between a reply and the next turn, x0.5-1.5 seeded (default 1.0)",
    "trace": "trace: JSONL file, one request per line: session_id, timestamp (s), messages or input_len, max_tokens",
    "speed": "trace: replay this many times faster than recorded (default 1.0)",
    "metrics_url": "agentic/trace: comma-separated engine /metrics URLs to read the prefix-cache hit rate from "
                   "(default: the endpoint's own /metrics; behind a router name each engine's)",
    "seed": "seed of the generated prompts (default 0)",
}


def _check_names() -> list[str]:
    from infra.endpoint.checks import CHECK_NAMES

    return CHECK_NAMES


def _conf(c: Any, section: str | None, key: str, default: Any) -> Any:
    """`endpoint.<section>.<key>` (or `endpoint.<key>`) from the invoke config, else default."""
    try:
        root = c.config.get("endpoint") or {}
    except AttributeError:
        return default
    node = (root.get(section) or {}) if section else root
    value = node.get(key) if hasattr(node, "get") else None
    return default if value is None else value


def _target(c: Any, stack: str | None, url: str | None, api_key_env: str | None, model: str | None, **extra: Any):
    from infra.endpoint.target import TargetError, resolve_target

    try:
        return resolve_target(stack=stack, url=url, model=model,
                              api_key_env=api_key_env or _conf(c, None, "api_key_env", None), **extra)
    except TargetError as exc:
        raise Exit(str(exc), code=exc.code) from None


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:  # logs and CI: wide enough that the tables do not wrap
        console = Console(stderr=stderr, width=160)
    return console


@task(help={**WHERE_HELP,
            "json": "also write the machine-readable report to this path",
            "turns": "tool_loop: most tool-call rounds before a final answer is required (default 2)",
            "concurrency": "concurrency check: parallel chats (default 4)",
            "max_tokens": "max_tokens per request (gpt-oss reasons first; default 512)",
            "timeout": "seconds per request, start to last byte (default 120)",
            "deadline": "seconds for the whole smoke test; checks not started by then fail (default 600)",
            "only": "comma-separated check names to run (default: all): " + ", ".join(_check_names()),
            "report": "also print the checks by API: Chat Completions and Responses side by side (check, API, "
                      "result, time)",
            "max_model_len": "context (tokens) /v1/models must offer at least (default: the stack's planned "
                             "max_model_len with --stack; not checked with --url)"})
def smoke_test(c, stack=None, url=None, api_key_env=None, model=None, json=None, turns=None, concurrency=None,
               max_tokens=None, timeout=None, deadline=None, only=None, max_model_len=None, report=False):
    """Run the named endpoint checks; a table for people, --json for machines; non-zero on any failure."""
    from rich.text import Text

    from infra.endpoint.checks import SmokeConfig, run_checks
    from infra.endpoint.report import api_table, smoke_table
    from infra.endpoint.safetext import plain
    from infra.endpoint.target import TargetError, parse_max_model_len

    target = _target(c, stack, url, api_key_env, model)
    try:
        want_context = parse_max_model_len(max_model_len, "--max-model-len")
    except TargetError as exc:
        raise Exit(str(exc), code=2) from None
    cfg = SmokeConfig(
        turns=int(turns or _conf(c, "smoke", "turns", 2)),
        concurrency=int(concurrency or _conf(c, "smoke", "concurrency", 4)),
        max_tokens=int(max_tokens or _conf(c, "smoke", "max_tokens", 512)),
        timeout=float(timeout or _conf(c, "smoke", "timeout", 120.0)),
        deadline=float(deadline or _conf(c, "smoke", "deadline", 600.0)),
        only=tuple(x.strip() for x in (only or "").split(",") if x.strip()),
        max_model_len=want_context or target.max_model_len,
    )
    out, err = _console(), _console(stderr=True)
    try:
        where = plain(target.base_url)
        with err.status(Text.assemble("smoke test against ", where, " ...")) as status:
            def progress(res):
                mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]"}.get(res.status, "[yellow]skip[/]")
                err.print(f"  {res.name:<20} {mark}  {res.seconds:.2f}s", highlight=False)
                status.update(Text.assemble("smoke test against ", where, f": {res.name} done"))

            result = run_checks(target, cfg, on_result=progress)
    except ValueError as exc:  # an unknown --only name
        raise Exit(str(exc), code=2) from None
    out.print(smoke_table(result))
    if report:
        out.print(api_table(result))
    if json:
        path = Path(json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_json.dumps(result.to_json(), indent=2))
        err.print(f"JSON report: {path}")
    if result.stopped:
        raise Exit(f"smoke test stopped after health: {result.stopped}; start the server (or the tunnel) "
                   "or fix the URL; `invoke wait-ready --url URL` waits for one", code=1)
    if not result.passed:
        failed = [r.name for r in result.checks if r.status == "fail"]
        raise Exit(f"smoke test failed: {', '.join(failed)}", code=1)


@task(help={**WHERE_HELP, "timeout": "give up after this many seconds (default 900)",
            "interval": "seconds between polls (default 2)",
            "log_lines": "log lines to show on timeout (default 40)"})
def wait_ready(c, stack=None, url=None, api_key_env=None, model=None, timeout=None, interval=None, log_lines=None):
    """Poll /health then /v1/models until the model is served; on timeout show recent logs and fail."""
    from rich.text import Text

    from infra.endpoint.ready import recent_logs, wait_ready as _wait
    from infra.endpoint.safetext import plain

    target = _target(c, stack, url, api_key_env, model)
    timeout = float(timeout if timeout is not None else _conf(c, "wait_ready", "timeout", 900.0))
    interval = float(interval if interval is not None else _conf(c, "wait_ready", "interval", 2.0))
    err = _console(stderr=True)
    res = _wait(target, timeout=timeout, interval=interval, console=err)
    if res.ready:
        return
    err.print(Text.assemble(("not ready", "bold red"), f" after {res.seconds:.1f}s (phase {res.phase}; last: ",
                            plain(res.last), ")"))
    lines = recent_logs(target.logs_command, int(log_lines or 40), secrets=(target.api_key,))
    if lines is None:
        err.print("(this target gives no logs command; check the server's own logs)")
    else:
        shown = " ".join(target.logs_command or [])
        if target.api_key:
            shown = shown.replace(target.api_key, "***")
        err.rule(Text.assemble(f"last {len(lines)} log lines (", plain(shown), ")"))
        for line in lines:
            err.print(plain(line, 2000), highlight=False)
    raise Exit(f"endpoint not ready within {timeout:.0f}s", code=1)


@task(help={**WHERE_HELP,
            "concurrency": "comma-separated concurrency levels (default 1,8,32,64)",
            "input_len": "prompt length in words, about tokens (default 256)",
            "output_len": "max_tokens per request (default 256)",
            "num_prompts": "requests per level (default max(5 x concurrency, 10))",
            "out": "output directory for bench.json and bench.png (default build/bench/<time>)",
            "gpu": "GPU id for the catalogue comparison (default: the stack's `gpu`)",
            "backend": "vllm or sglang, for the catalogue comparison (default: the stack's `backend`)",
            "price_per_hour": "what the GPU(s) cost in $/hour, to report $ per million output tokens",
            "slo_ttft_ms": "goodput SLO: TTFT limit in ms (default 2000)",
            "slo_tpot_ms": "goodput SLO: TPOT limit in ms (default 100)",
            "slo_e2e_ms": "goodput SLO: end-to-end limit in ms (default none)",
            "ignore_eos": "ask the server to generate exactly output_len tokens (vLLM, llama.cpp)",
            "request_timeout": "seconds per request (and the warm-up), start to last byte (default 600)",
            "level_timeout": "seconds per concurrency level: then no new request starts and those in flight "
                             "are cancelled (default 1800)",
            "deadline": "seconds for the whole run, warm-up included; levels not reached are not started "
                        "(default: none beyond the per-level limits)",
            **AGENTIC_HELP},
      # Many options: invoke's automatic one-letter flags run out and it prints a bogus `--=` flag.
      auto_shortflags=False)
def bench(c, stack=None, url=None, api_key_env=None, model=None, concurrency=None, input_len=None, output_len=None,
          num_prompts=None, out=None, gpu=None, backend=None, price_per_hour=None, slo_ttft_ms=None,
          slo_tpot_ms=None, slo_e2e_ms=None, ignore_eos=False, request_timeout=None, level_timeout=None,
          deadline=None, workload=None, sessions=None, turns=None, system_len=None, tool_result_len=None,
          think_time=None, trace=None, speed=None, metrics_url=None, seed=None):
    """Streaming load test: TTFT/TPOT/ITL/E2E percentiles, tok/s, goodput; JSON + PNG; catalogue comparison.
    `--workload agentic` (growing multi-turn conversations) or `trace` adds per-turn TTFT and the engine's
    prefix-cache hit rate."""
    from rich.text import Text

    from infra.endpoint.agentic import AgenticConfig, TraceError
    from infra.endpoint.bench import BenchConfig, run_bench
    from infra.endpoint.report import bench_table, comparison_table
    from infra.endpoint.safetext import plain, printable

    target = _target(c, stack, url, api_key_env, model, gpu=gpu, backend=backend)

    def num(name, value, default, conv=float):
        v = value if value is not None else _conf(c, "bench", name, default)
        return None if v is None else _number(name, v, conv)

    levels = str(concurrency or _conf(c, "bench", "concurrency", "1,8,32,64"))
    try:
        conc = [int(x) for x in levels.split(",") if x.strip()]
    except ValueError:
        raise Exit(f"--concurrency {levels!r}: expected comma-separated integers", code=2) from None
    if not conc or min(conc) < 1:
        raise Exit("--concurrency needs at least one level >= 1", code=2)
    kind = str(workload or _conf(c, "bench", "workload", "random"))
    if kind not in ("random", "agentic", "trace"):
        raise Exit(f"--workload {kind!r}: expected random, agentic or trace", code=2)
    agentic = {} if kind == "random" else _agentic_options(c, num, kind, sessions, turns, system_len,
                                                          tool_result_len, think_time, trace, speed, metrics_url)
    cfg = (AgenticConfig if agentic else BenchConfig)(
        **agentic,
        seed=num("seed", seed, 0, int),
        concurrency=conc,
        input_len=num("input_len", input_len, 256, int),
        output_len=num("output_len", output_len, 256, int),
        num_prompts=num("num_prompts", num_prompts, None, int),
        slo_ttft_ms=num("slo_ttft_ms", slo_ttft_ms, 2000.0),
        slo_tpot_ms=num("slo_tpot_ms", slo_tpot_ms, 100.0),
        slo_e2e_ms=num("slo_e2e_ms", slo_e2e_ms, None),
        ignore_eos=bool(ignore_eos or _conf(c, "bench", "ignore_eos", False)),
        request_timeout=num("request_timeout", request_timeout, 600.0),
        level_timeout=num("level_timeout", level_timeout, 1800.0),
        deadline=num("deadline", deadline, None),
        price_per_hour=num("price_per_hour", price_per_hour, None),
    )
    out_dir = Path(out or Path(_conf(c, "bench", "out", "build/bench")) / time.strftime("%Y%m%d-%H%M%S"))
    import httpx

    try:
        result = run_bench(target, cfg, out_dir, console=_console(stderr=True))
    except httpx.HTTPError as exc:  # listing the models to find the one to use: unreachable, bad reply, deadline
        raise Exit(f"bench: {type(exc).__name__}: {printable(exc)}", code=1) from None
    except TraceError as exc:
        raise Exit(f"bench: {printable(exc, 400)}", code=2) from None
    console = _console()
    console.print(bench_table(result))
    console.print(comparison_table(result))
    if result.get("agentic"):
        from infra.endpoint.agentic import agentic_table

        console.print(agentic_table(result))
    console.print(Text.assemble("wrote ", plain(result["files"]["json"]), " and ", plain(result["files"]["png"])))
    if all(lv["completed"] == 0 for lv in result["levels"]):
        raise Exit("bench: no request succeeded", code=1)


def _number(name: str, value: Any, conv: Any = int) -> Any:
    """An option's value as a number, or a one-line exit naming the option."""
    try:
        return conv(value)
    except (TypeError, ValueError):
        kind = "a whole number" if conv is int else "a number"
        raise Exit(f"--{name.replace('_', '-')} {str(value)[:40]!r}: expected {kind}", code=2) from None


def _bounded(name: str, value: Any, low: float, high: float, conv: Any = int) -> Any:
    """An option's number, or a one-line exit naming the option and the range."""
    try:
        n = conv(value)
    except (TypeError, ValueError):
        n = None
    if n is None or not low <= n <= high:
        kind = "a whole number" if conv is int else "seconds"
        raise Exit(f"--{name.replace('_', '-')} {str(value)[:40]!r}: expected {kind} {low:g}..{high:g}", code=2)
    return n


@task(help={**WHERE_HELP,
            "eval": "gpqa (GPQA diamond, default) or aime25",
            "effort": "reasoning effort: low (default; the recipe's quick check), medium or high",
            "examples": "how many examples, sampled as the reference harness does (default: all)",
            "repeats": "times each example is asked (default: 8 with all examples, as the reference; else 1)",
            "api": "responses (default, the reference harness's sampler) or chat",
            "concurrency": "requests in flight (default 64)",
            "max_tokens": "output token limit per request (default: none, the server's context decides)",
            "data": "your own copy of the dataset, in the source's format (for aime25: comma-separated files)",
            "out": "output directory for eval.json and eval.png (default build/eval/<eval>-<effort>-<time>)",
            "request_timeout": "seconds per request, start to last byte (default 1800)",
            "deadline": "seconds for the whole run; requests not started by then fail it (default 3600)",
            "retries": "tries again after a connection error or HTTP 429/5xx (default 2)",
            "panel": "20b or 120b: the panel row to compare with (default: from the served model id)"},
      auto_shortflags=False)
def eval(c, stack=None, url=None, api_key_env=None, model=None, eval="gpqa", effort="low", examples=None,
         repeats=None, api="responses", concurrency=None, max_tokens=None, data=None, out=None,
         request_timeout=None, deadline=None, retries=None, panel=None):
    """Accuracy gate: GPQA / AIME25 against the vLLM recipe's panel; score with 95% interval; JSON + PNG."""
    import httpx
    from rich.text import Text

    from infra.endpoint.evals import data as evdata, run as evrun, stats
    from infra.endpoint.safetext import plain, printable

    for name, value, allowed in (("eval", eval, stats.EVALS), ("effort", effort, stats.EFFORTS),
                                 ("api", api, evrun.APIS), ("panel", panel or "20b", tuple(stats.PANEL))):
        if value not in allowed:
            raise Exit(f"--{name} {str(value)[:40]!r}: expected one of {', '.join(allowed)}", code=2)
    n_examples = None if examples in (None, "all") else _bounded("examples", examples, 1, evdata.MAX_ROWS)
    cfg = evrun.EvalConfig(
        eval=eval, effort=effort, examples=n_examples, api=api, panel=panel,
        repeats=_bounded("repeats", repeats if repeats is not None else (8 if n_examples is None else 1), 1, 64),
        concurrency=_bounded("concurrency", concurrency or _conf(c, "eval", "concurrency", 64), 1, 1024),
        max_tokens=None if max_tokens is None else _bounded("max_tokens", max_tokens, 1, 1 << 24),
        request_timeout=_bounded("request_timeout", request_timeout or _conf(c, "eval", "request_timeout", 1800.0),
                                 0.1, 86400, float),
        deadline=_bounded("deadline", deadline or _conf(c, "eval", "deadline", 3600.0), 0.1, 7 * 86400, float),
        retries=_bounded("retries", retries if retries is not None else _conf(c, "eval", "retries", 2), 0, 10),
    )
    target = _target(c, stack, url, api_key_env, model)
    def no_panel(model_id: str) -> Exit:
        return Exit(f"eval: cannot tell gpt-oss-20b from -120b by the model id {printable(model_id, 80)!r}: "
                    "pass --panel 20b or --panel 120b", code=2)

    if not panel and target.model and not stats.panel_size(target.model):
        raise no_panel(target.model)
    err = _console(stderr=True)
    try:
        paths = [Path(p) for p in str(data).split(",") if p] if data else None
        examples_, files = evdata.load(eval, paths,
                                       on_fetch=lambda s: err.print(Text.assemble("dataset ", plain(s.url))))
    except evdata.DataError as exc:
        raise Exit(f"eval: {exc}", code=2) from None
    if n_examples is not None and n_examples > len(examples_):
        raise Exit(f"--examples {n_examples}: the dataset has only {len(examples_)}", code=2)
    try:
        result = evrun.run_eval(target, cfg, examples_, files, console=err)
    except httpx.HTTPError as exc:  # listing the models: unreachable, bad reply, deadline
        raise Exit(f"eval: {type(exc).__name__}: {printable(exc)}", code=1) from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = Path(out or Path(_conf(c, "eval", "out", "build/eval")) / f"{eval}-{effort}-{stamp}")
    files_out = evrun.write_report(result, out_dir)
    g = result["gate"]
    panel = "no panel for this model" if g["panel"] is None else f"panel {g['panel'] * 100:.1f}%"
    lo, hi = g["interval95"]
    _console().print(Text.assemble(
        f"{eval} {effort} ", plain(result["model"]), f": {g['right']}/{g['n']} right = {g['score'] * 100:.1f}% "
        f"(95% Wilson interval {lo * 100:.1f}-{hi * 100:.1f}%), {panel}: ",
        (g["verdict"].upper(), {"pass": "bold green"}.get(g["verdict"], "bold red"))))
    err.print(Text.assemble("wrote ", plain(files_out["json"]), " and ", plain(files_out["png"])))
    if g["verdict"] == "no-panel":  # the model id came from /v1/models
        raise no_panel(result["model"])
    if g["verdict"] == "incomplete":
        raise Exit(f"eval: {g['failed']} of {g['n']} requests failed (first: {printable(g['first_error'])})", code=1)
    if g["verdict"] == "fail":
        raise Exit(f"eval: score {g['score'] * 100:.1f}% is below the recipe's {g['panel'] * 100:.1f}% "
                   f"(95% interval up to {hi * 100:.1f}%)", code=1)



MAX_METRICS_URLS = 64  # each is read twice, 10 s at most per read


def _agentic_options(c, num, kind, sessions, turns, system_len, tool_result_len, think_time, trace, speed,
                     metrics_url) -> dict[str, Any]:
    """`bench --workload agentic|trace` settings, bounded where they enter."""
    out = {"workload": kind,
           "sessions": num("sessions", sessions, 8, int), "turns": num("turns", turns, 6, int),
           "system_len": num("system_len", system_len, 800, int),
           "tool_result_len": num("tool_result_len", tool_result_len, 400, int),
           "think_time": num("think_time", think_time, 1.0), "speed": num("speed", speed, 1.0),
           "trace": trace or _conf(c, "bench", "trace", None),
           "metrics_urls": [u.strip() for u in str(metrics_url or "").split(",") if u.strip()]}
    for name, lo, hi in (("sessions", 1, 4096), ("turns", 1, 1000), ("system_len", 0, 200_000),
                         ("tool_result_len", 0, 200_000), ("think_time", 0, 3600), ("speed", 0.001, 1000)):
        if not lo <= out[name] <= hi:
            raise Exit(f"--{name.replace('_', '-')} {out[name]}: must be {lo}-{hi}", code=2)
    if len(out["metrics_urls"]) > MAX_METRICS_URLS:
        raise Exit(f"--metrics-url: {len(out['metrics_urls'])} URLs; at most {MAX_METRICS_URLS} (one per engine)", code=2)
    for u in out["metrics_urls"]:
        if not u.startswith(("http://", "https://")):
            raise Exit(f"--metrics-url {u!r}: expected http(s)://host:port/metrics", code=2)
    return out


TASKS = (smoke_test, wait_ready, bench, eval)


def register(ns: Collection) -> Collection:
    """Add the tasks at top level (`invoke smoke-test`, not `invoke endpoint.smoke-test`)."""
    for t in TASKS:
        ns.add_task(t)
    return ns


ns = Collection("endpoint", *TASKS)
