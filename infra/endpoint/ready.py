"""``wait-ready``: poll ``/health`` until it answers 200, then ``/v1/models`` until it lists the
model, with a live progress line and the elapsed time. Bounded by ``timeout`` seconds."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field

import httpx
from rich.console import Console
from rich.text import Text

from infra.endpoint.client import EndpointClient, model_ids
from infra.endpoint.deadline import Deadline
from infra.endpoint.safetext import plain, printable
from infra.endpoint.target import Target


@dataclass
class ReadyResult:
    ready: bool
    seconds: float
    phase: str                      # "health", "models" or "ready"
    last: str = ""                  # last observation (status or error), for the timeout message
    polls: int = 0
    models: list[str] = field(default_factory=list)


def wait_ready(target: Target, timeout: float = 900.0, interval: float = 2.0, console: Console | None = None,
               transport: httpx.BaseTransport | None = None) -> ReadyResult:
    """Poll until ready or ``timeout`` seconds have passed, whatever the server does: each poll
    ends within its own short deadline and within the task's (:mod:`infra.endpoint.deadline`)."""
    console = console or Console(stderr=True)
    t0 = time.monotonic()
    task = Deadline.after(timeout, "wait-ready")
    phase, last, polls, models = "health", "", 0, []
    per_request = max(1.0, min(10.0, interval * 2))
    with EndpointClient(target, timeout=per_request, transport=transport, deadline=task) as client, \
            console.status("", spinner="dots") as status:
        while True:
            polls += 1
            try:
                if phase == "health":
                    r = client.health()
                    last = f"HTTP {r.status}"
                    if r.status == 200:
                        phase = "models"
                if phase == "models":
                    models = model_ids(client.models())
                    if not target.model or target.model in models:
                        phase = "ready"
                    else:
                        last = f"model {printable(target.model)!r} not listed yet (listed: {printable(models)})"
            except httpx.HTTPError as exc:  # BadReply included: a reply of the wrong shape
                if time.monotonic() < task.at or not last:  # a poll cut by the deadline keeps the last real answer
                    last = f"{type(exc).__name__}: {printable(exc, 160) or 'no answer'}"
            elapsed = time.monotonic() - t0
            if phase == "ready":
                console.print(Text.assemble(("ready", "green"), f" after {elapsed:.1f}s ({polls} polls): ",
                                            plain(", ".join(models))))
                return ReadyResult(True, elapsed, phase, last, polls, models)
            where = target.base_url if phase == "models" else target.health_url
            status.update(Text.assemble("waiting for ", (phase, "bold"), " at ", plain(where),
                                        f"  elapsed {elapsed:5.1f}s / {timeout:.0f}s  last: ", plain(last)))
            remaining = task.at - time.monotonic()
            if remaining <= 0:  # the last poll ran at the deadline: the whole timeout was waited
                return ReadyResult(False, time.monotonic() - t0, phase, last, polls, models)
            time.sleep(min(interval, remaining))


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
