"""Run an eval against an endpoint: one streamed request per item, graded by the reference rules.

The request is the reference sampler's (gpt_oss/evals/responses_sampler.py, chat_completions_sampler.py):
the prompt as the only user message, the reasoning effort, temperature 1.0 (its default); no
``max_tokens`` unless given (the reference asks 131072, which vLLM caps at the context left). Replies
are streamed so that a long reasoning run keeps the connection busy; every request ends by its own
timeout and the run by its deadline (:mod:`infra.endpoint.deadline`). A request that fails is tried
again after 1, 2, 4 s (``retries`` times) when the failure says nothing about the model (a
connection error, HTTP 429 or 5xx); an item still failing, or not started by the deadline, makes
the run incomplete: its score is still reported, but the gate does not pass.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import httpx

from infra.endpoint.client import EndpointClient, model_ids
from infra.endpoint.deadline import Deadline
from infra.endpoint.evals import grading, stats
from infra.endpoint.evals.data import Example
from infra.endpoint.safetext import printable
from infra.endpoint.sse import SSEEvent
from infra.endpoint.target import REPO_ROOT, Target

APIS = ("responses", "chat")
KEEP_REPLY_CHARS = 4000   # of each reply, in the JSON (the end, where the answer is)
PROBE_TIMEOUT_S = 10.0    # listing the models, asking the engine's version


@dataclass
class EvalConfig:
    eval: str = "gpqa"
    effort: str = "low"
    examples: int | None = None      # None: all
    repeats: int = 1
    api: str = "responses"
    concurrency: int = 64
    max_tokens: int | None = None
    temperature: float = 1.0
    request_timeout: float = 1800.0
    deadline: float = 3600.0
    retries: int = 2
    panel: str | None = None         # "20b" / "120b": which panel row (None: from the model id)


@dataclass
class Answer:
    text: str = ""
    error: str | None = None
    retryable: bool = False
    finish: str | None = None        # chat finish_reason / responses status
    output_tokens: int | None = None


@dataclass
class ItemResult:
    example: int
    repeat: int
    expected: str
    extracted: str | None = None
    right: bool = False
    error: str | None = None
    finish: str | None = None
    output_tokens: int | None = None
    seconds: float = 0.0
    attempts: int = 0
    reply_tail: str = ""


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def _responses_body(model: str, prompt: str, cfg: EvalConfig) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": [{"role": "user", "content": prompt}],
                            "reasoning": {"effort": cfg.effort}, "temperature": cfg.temperature}
    if cfg.max_tokens:
        body["max_output_tokens"] = cfg.max_tokens
    return body


def _chat_body(model: str, prompt: str, cfg: EvalConfig) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}],
                            "reasoning_effort": cfg.effort, "temperature": cfg.temperature}
    if cfg.max_tokens:
        body["max_tokens"] = cfg.max_tokens
    return body


def _output_text(response: Any) -> str | None:
    """The Responses API's ``output_text``: every ``output_text`` part of the ``message`` items, joined."""
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        return None
    parts = []
    for item in response["output"]:
        if isinstance(item, dict) and item.get("type") == "message" and isinstance(item.get("content"), list):
            parts += [c["text"] for c in item["content"]
                      if isinstance(c, dict) and c.get("type") == "output_text" and isinstance(c.get("text"), str)]
    return "".join(parts)


def ask_responses(client: EndpointClient, body: dict[str, Any]) -> Answer:
    ans = Answer()
    final: dict[str, Any] = {}

    def on_event(ev: SSEEvent) -> None:
        if final:
            return
        try:
            obj = json.loads(ev.data)
        except ValueError:
            ans.error = f"an event's `data` is not JSON: {printable(ev.data, 80)!r}"
            return
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind in ("response.completed", "response.incomplete"):
            final.update(obj.get("response") if isinstance(obj.get("response"), dict) else {"bad": True})
        elif kind in ("error", "response.failed"):
            resp = obj.get("response")
            err = obj.get("error") or (resp.get("error") if isinstance(resp, dict) else None) or obj
            msg = err.get("message", err) if isinstance(err, dict) else err
            ans.error = f"{kind} event: {printable(msg)}"

    status, head = client.post_events("/responses", body, on_event)
    if status != 200:
        return Answer(error=f"HTTP {status}: {head}", retryable=_retryable_status(status))
    if ans.error:
        return ans
    text = _output_text(final)
    if text is None:
        return Answer(error="the stream ended without a well-formed response.completed event")
    usage = final.get("usage") if isinstance(final.get("usage"), dict) else {}
    tokens = usage.get("output_tokens")
    return Answer(text=text, finish=str(final.get("status")),
                  output_tokens=tokens if isinstance(tokens, int) else None)


def ask_chat(client: EndpointClient, body: dict[str, Any]) -> Answer:
    status, res, _ctype = client.chat_stream(body)
    if status != 200:
        return Answer(error=res.errors[0] if res.errors else f"HTTP {status}", retryable=_retryable_status(status))
    if res.errors:
        return Answer(error=res.errors[0])
    if not res.done:
        return Answer(error="the stream ended without `data: [DONE]`")
    tokens = (res.usage or {}).get("completion_tokens")
    return Answer(text=res.content, finish=res.finish_reason, output_tokens=tokens)


def ask(client: EndpointClient, api: str, body: dict[str, Any], retries: int, deadline: Deadline) -> tuple[Answer, int]:
    """(the answer, attempts). Retries only what says nothing about the model (see the module docstring)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            ans = (ask_responses if api == "responses" else ask_chat)(client, body)
        except httpx.TimeoutException as exc:
            return Answer(error=f"{type(exc).__name__}: {printable(exc)}"), attempt
        except httpx.HTTPError as exc:
            ans = Answer(error=f"{type(exc).__name__}: {printable(exc)}",
                         retryable=isinstance(exc, httpx.TransportError))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a reply of an odd shape: this item fails
            return Answer(error=f"unexpected reply ({type(exc).__name__}: {printable(exc)})"), attempt
        pause = 2.0 ** (attempt - 1)
        if ans.error is None or not ans.retryable or attempt > retries or deadline.remaining() < pause:
            return ans, attempt
        time.sleep(pause)


def grade(eval_name: str, ex: Example, item: grading.Item) -> tuple[str, str]:
    """(the prompt, the expected answer as text)."""
    if eval_name == "gpqa":
        return grading.gpqa_prompt(ex.question, ex.answers, item.order)  # type: ignore[arg-type]
    return grading.aime_prompt(ex.question), str(ex.answer)


def extract(eval_name: str, text: str) -> str | None:
    if eval_name == "gpqa":
        return grading.extract_abcd(text)
    value = grading.extract_integer(text)
    return None if value is None else str(value)


def engine_version(client: EndpointClient) -> dict[str, str | None]:
    """The engine and its version for the report (EndpointClient.engine_version)."""
    backend, version = client.engine_version()
    return {"backend": backend, "version": version}


def project_commit(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """This checkout's commit (the code that deployed the stack) and whether it has local changes."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if head else None
    return {"commit": head, "dirty": None if status is None else bool(status)}


def run_eval(target: Target, cfg: EvalConfig, examples: list[Example], dataset: list[dict[str, str]],
             console: Any = None, on_item: Callable[[ItemResult], None] | None = None) -> dict[str, Any]:
    """Ask every item, grade, and return the report (see README 'Accuracy gate' for its fields)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    run_deadline = Deadline.after(cfg.deadline, "eval run")
    items = grading.plan_items(len(examples), cfg.examples, cfg.repeats)
    results: list[ItemResult | None] = [None] * len(items)
    lock = threading.Lock()
    logs = console is not None and not console.is_terminal
    step = max(1, len(items) // 10)
    t0 = time.time()
    with EndpointClient(target, timeout=min(PROBE_TIMEOUT_S, cfg.request_timeout), deadline=run_deadline) as probe:
        model = target.model or model_ids(probe.models())[0]
        engine = engine_version(probe)
    with EndpointClient(target, timeout=cfg.request_timeout, deadline=run_deadline,
                        max_connections=max(1, cfg.concurrency)) as client:  # one per request in flight

        def one(i: int, progress: Any, task_id: Any) -> None:
            item = items[i]
            ex = examples[item.example]
            prompt, expected = grade(cfg.eval, ex, item)
            res = ItemResult(item.example, item.repeat, expected)
            if run_deadline.expired:
                res.error = f"not started: {run_deadline.message()}"
            else:
                body = (_responses_body if cfg.api == "responses" else _chat_body)(model, prompt, cfg)
                t = time.perf_counter()
                ans, res.attempts = ask(client, cfg.api, body, cfg.retries, run_deadline)
                res.seconds = time.perf_counter() - t
                res.error, res.finish, res.output_tokens = ans.error, ans.finish, ans.output_tokens
                if ans.error is None:
                    res.extracted = extract(cfg.eval, ans.text)
                    res.right = res.extracted == expected
                    res.reply_tail = ans.text[-KEEP_REPLY_CHARS:]
            with lock:
                results[i] = res
                done = [r for r in results if r is not None]
                right = sum(r.right for r in done)
                progress.update(task_id, advance=1, right=right)
                if logs and (len(done) % step == 0 or len(done) == len(items)):  # a log has no live bar
                    progress.console.print(f"  {len(done)}/{len(items)} answered, {right} right, "
                                           f"{sum(1 for r in done if r.error)} failed", highlight=False)
            if on_item is not None:
                on_item(res)

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("right {task.fields[right]}"), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            task_id = progress.add_task(f"{cfg.eval} {cfg.effort} ({cfg.api})", total=len(items), right=0)
            with ThreadPoolExecutor(max_workers=max(1, min(cfg.concurrency, len(items)))) as pool:
                for f in [pool.submit(one, i, progress, task_id) for i in range(len(items))]:
                    f.result()
    done = [r for r in results if r is not None]
    size = cfg.panel or stats.panel_size(model)
    panel = stats.PANEL[size][cfg.eval][cfg.effort] if size else None
    verdict = stats.gate(sum(r.right for r in done), len(done), panel)
    failed = [r for r in done if r.error]
    if failed:
        verdict["verdict"] = "incomplete"
        verdict["failed"] = len(failed)
        verdict["first_error"] = failed[0].error
    return {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        "seconds": time.time() - t0,
        "eval": cfg.eval, "effort": cfg.effort, "api": cfg.api,
        "model": model, "panel_model": size,
        "panel": stats.PANEL.get(size or "", {}).get(cfg.eval),
        "panel_source": "vLLM gpt-oss recipe, Accuracy Evaluation Panels (gpt_oss.evals, no tools)",
        "target": {"base_url": target.base_url, "source": target.source, "stack": target.source.removeprefix("stack:")
                   if target.source.startswith("stack:") else None, "backend": target.backend, "gpu": target.gpu},
        "engine": engine,
        "project": project_commit(),
        "config": asdict(cfg),
        "dataset": dataset,
        "gate": verdict,
        "empty_replies": sum(1 for r in done if not r.error and not r.reply_tail),
        "items": [asdict(r) for r in done],
    }


MAX_EARLIER_REPORT_BYTES = 32 << 20


def earlier_runs(result: dict[str, Any], out_root: Path, limit: int = 500) -> list[dict[str, Any]]:
    """The latest earlier report per other effort under ``out_root`` (``*/eval.json``) for the same
    model, eval and endpoint, so that the plot shows low, medium and high once each has been run."""
    latest: dict[str, dict[str, Any]] = {}
    for path in sorted(out_root.glob("*/eval.json"))[-limit:]:
        try:
            if path.stat().st_size > MAX_EARLIER_REPORT_BYTES:
                continue  # not one of ours (a full run's report is a few MB)
            other = json.loads(path.read_text())
            same = all(other.get(k) == result[k] for k in ("model", "eval", "api")) and \
                other["target"]["base_url"] == result["target"]["base_url"]
            if same and other["effort"] != result["effort"] and other["effort"] in stats.EFFORTS:
                g = other["gate"]
                if other["started_at"] >= latest.get(other["effort"], {}).get("started_at", ""):
                    latest[other["effort"]] = {"started_at": other["started_at"], "effort": other["effort"],
                                               "gate": {k: g[k] for k in ("right", "n", "score", "interval95",
                                                                          "verdict")}}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not a report of this tool: ignored
    return [latest[e] for e in stats.EFFORTS if e in latest]


def plot_eval(result: dict[str, Any], path: Path, earlier: list[dict[str, Any]] = ()) -> Path:
    """Score (with its 95% interval) against the recipe's panel, per reasoning effort; ``earlier``:
    other efforts' latest runs (:func:`earlier_runs`), drawn lighter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    efforts = list(stats.EFFORTS)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    panel = result.get("panel") or {}
    if panel:
        ax.plot(efforts, [panel[e] for e in efforts], "s--", color="tab:gray",
                label=f"recipe panel (gpt-oss-{result['panel_model']})")
    for run in [*earlier, result]:
        g, latest = run["gate"], run is result
        lo, hi = g["interval95"]
        score = g["score"] * 100
        color = {"pass": "tab:green", "fail": "tab:red"}.get(g["verdict"], "tab:orange")
        what = "this run" if latest else f"earlier run {run['started_at']}"
        ax.errorbar([efforts.index(run["effort"])], [score], fmt="o", color=color, capsize=6,
                    alpha=1.0 if latest else 0.45, yerr=[[max(0.0, score - lo * 100)], [max(0.0, hi * 100 - score)]],
                    label=f"{what}: {g['right']}/{g['n']}, 95% Wilson ({g['verdict']})")
    ax.set_ylim(0, 100)
    ax.set_xlabel("reasoning effort")
    ax.set_ylabel(f"{result['eval']} score (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the axes, never over them
    from infra.endpoint.report import save_plot

    return save_plot(fig, path, f"{result['model']} - {result['eval']} via {result['api']} - "
                                f"{result['target']['base_url']}", width=120)


def write_report(result: dict[str, Any], out_dir: Path) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out_dir / "eval.json"), "png": str(out_dir / "eval.png")}
    result["files"] = files
    Path(files["json"]).write_text(json.dumps(result, indent=2))
    plot_eval(result, Path(files["png"]), earlier_runs(result, out_dir.parent))
    return files

