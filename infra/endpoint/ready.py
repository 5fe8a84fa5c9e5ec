"""``wait-ready``: poll ``/health`` until it answers 200, then ``/v1/models`` until it lists the
model, with a live progress line and the elapsed time. Bounded by ``timeout`` seconds."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field

import httpx
from rich.console import Console

from infra.endpoint.target import Target


@dataclass
class ReadyResult:
    ready: bool
    seconds: float
    phase: str                      # "health", "models" or "ready"
    last: str = ""                  # last observation (status or error), for the timeout message
    polls: int = 0
    models: list[str] = field(default_factory=list)


def _observe(http: httpx.Client, url: str, headers: dict[str, str]) -> tuple[int | None, str, httpx.Response | None]:
    try:
        r = http.get(url, headers=headers)
        return r.status_code, f"HTTP {r.status_code}", r
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {str(exc)[:120] or 'no answer'}", None


def wait_ready(target: Target, timeout: float = 900.0, interval: float = 2.0, console: Console | None = None,
               transport: httpx.BaseTransport | None = None) -> ReadyResult:
    console = console or Console(stderr=True)
    t0 = time.monotonic()
    deadline = t0 + max(0.0, timeout)
    phase, last, polls, models = "health", "", 0, []
    per_request = max(1.0, min(10.0, interval * 2))
    with httpx.Client(timeout=per_request, transport=transport) as http, \
            console.status("", spinner="dots") as status:
        while True:
            polls += 1
            if phase == "health":
                code, last, _ = _observe(http, target.health_url, target.headers())
                if code == 200:
                    phase = "models"
            if phase == "models":
                code, last, resp = _observe(http, target.base_url + "/models", target.headers())
                if code == 200 and resp is not None:
                    try:
                        models = [m.get("id") for m in resp.json().get("data", []) if isinstance(m, dict)]
                    except (ValueError, AttributeError):
                        models, last = [], "GET /v1/models: not JSON"
                    if models and (not target.model or target.model in models):
                        phase = "ready"
                    else:
                        last = f"model {target.model!r} not listed yet (listed: {models})"
            elapsed = time.monotonic() - t0
            if phase == "ready":
                console.print(f"[green]ready[/] after {elapsed:.1f}s ({polls} polls): {', '.join(models)}")
                return ReadyResult(True, elapsed, phase, last, polls, models)
            status.update(f"waiting for [bold]{phase}[/] at {target.base_url if phase == 'models' else target.health_url}"
                          f"  elapsed {elapsed:5.1f}s / {timeout:.0f}s  last: {last}")
            if time.monotonic() + interval > deadline:
                return ReadyResult(False, time.monotonic() - t0, phase, last, polls, models)
            time.sleep(interval)


def recent_logs(logs_command: list[str] | None, lines: int = 40, timeout: float = 30.0,
                secrets: tuple[str | None, ...] = ()) -> list[str] | None:
    """The last ``lines`` lines of the target's logs (``logs_command`` from the stack outputs),
    with any secret value masked; None when the target gives no way to read them."""
    if not logs_command:
        return None
    try:
        proc = subprocess.run(logs_command, capture_output=True, text=True, timeout=timeout)
        text = (proc.stdout or "") + (proc.stderr or "")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"(could not read logs with {logs_command[0]}: {exc})"]
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text.splitlines()[-lines:]
