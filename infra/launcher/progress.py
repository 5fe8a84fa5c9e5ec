"""Loading progress (SHOW_LOADING_PROGRESS=true), from three real signals:

1. GPU memory in use (NVML, `nvml.MemoryProbe`): the bar;
2. the engine's own log lines: the phase (downloading, loading weights, compiling, KV cache, CUDA graphs);
3. the engine's `/health` endpoint: READY.

    [LOADING] ############-------- 45.2GB / 80GB - loading weights... (8s)
    [LOADING] ##################-- 66.8GB / 80GB - compiling kernels... (20s)
    ============================================================
      [OK] MODEL READY (loaded in 35s)
           API available at http://0.0.0.0:8000/v1
    ============================================================

The engine is exec'ed by the launcher (so it keeps the container's PID and gets signals directly);
this monitor is a forked child that reads the engine's stdout/stderr through pipes and passes every
byte through unchanged. It also hands each line to the start-up self-check (infra.launcher.selfcheck),
whose predicted-vs-logged table it prints just before READY (or before [FAILED]).
"""
from __future__ import annotations

import os
import re
import select
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

GiB = 2**30
BAR = 20
MAX_PARTIAL_LINE = 1 << 16  # an engine writing this much without a line end: drop it for phase detection

# (order, pattern, phase). Phases only move forward: with TP, ranks log the same steps at different times.
# Patterns are the engines' own log lines (vLLM gpu_model_runner/gpu_worker/api_server; SGLang model_runner).
PHASES: tuple[tuple[int, re.Pattern[str], str], ...] = tuple(
    (i, re.compile(p, re.IGNORECASE), label)
    for i, (p, label) in enumerate((
        (r"Fetching \d+ files|Downloading|download(ing)? (model|weights)", "downloading weights"),
        (r"Starting to load model|Load weight begin|Loading safetensors checkpoint shards|"
         r"Multi-thread loading shards|Loading weights", "loading weights"),
        (r"Model loading took|Load weight end|Loading weights took", "weights loaded"),
        (r"torch\.compile|Compiling a graph|Dynamo bytecode transform|Autotun", "compiling kernels"),
        (r"Memory profiling|Available KV cache memory|GPU KV cache size|KV Cache is allocated|"
         r"Memory pool end|max_total_num_tokens", "allocating KV cache"),
        (r"Capturing CUDA graph|Capture cuda graph|Graph capturing", "capturing CUDA graphs"),
        (r"Starting vLLM API server|Application startup complete|Uvicorn running|"
         r"The server is fired up", "starting API server"),
    ), start=1)
)


def phase_of(line: str) -> tuple[int, str] | None:
    for order, pat, label in reversed(PHASES):
        if pat.search(line):
            return order, label
    return None


def bar_line(used: int | None, total: int, phase: str, elapsed: float) -> str:
    if used is None or total <= 0:
        return f"[LOADING] {phase}... ({elapsed:.0f}s)"
    filled = max(0, min(BAR, round(BAR * used / total)))
    return (f"[LOADING] {'#' * filled}{'-' * (BAR - filled)} {used / GiB:.1f}GB / {total / GiB:.0f}GB"
            f" - {phase}... ({elapsed:.0f}s)")


def ready_box(elapsed: float, api_url: str) -> str:
    rule = "=" * 60
    return (f"{rule}\n  [OK] MODEL READY (loaded in {elapsed:.0f}s)\n"
            f"       API available at {api_url}\n{rule}")


def http_health(url: str, timeout: float = 1.0) -> bool:
    """True once the server answers /health with 200 (401/403: up, with auth in front: ready too)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback URL we built)
            return resp.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code in (401, 403)
    except (OSError, ValueError):
        return False


@dataclass
class Monitor:
    total_bytes: int
    health_url: str
    api_url: str
    used_bytes: Callable[[], int | None] = lambda: None
    healthy: Callable[[str], bool] = http_health
    write: Callable[[str], None] = lambda s: os.write(1, (s + "\n").encode())
    interval: float = 5.0
    health_every: float = 2.0
    clock: Callable[[], float] = time.monotonic
    start: float | None = None
    selfcheck: Any = None  # a selfcheck.SelfCheck: fed every line, reported at READY / FAILED

    def __post_init__(self):
        self.start = self.clock() if self.start is None else self.start
        self.phase = (0, "starting engine")
        self.ready_at: float | None = None
        self.lines_seen = 0

    def elapsed(self) -> float:
        return self.clock() - self.start

    def feed_line(self, line: str) -> bool:
        """Track the phase; True when it moved forward."""
        self.lines_seen += 1
        if self.selfcheck is not None:
            self.selfcheck.feed(line)  # never raises
        found = phase_of(line)
        if found and found[0] > self.phase[0]:
            self.phase = found
            return True
        return False

    def progress(self) -> str:
        return bar_line(self.used_bytes(), self.total_bytes, self.phase[1], self.elapsed())

    def run(self, streams: dict[int, int]) -> int:
        """Pass engine output through (read fd -> write fd) until every pipe closes.

        Prints progress every `interval` seconds and on each new phase until /health says ready.
        Returns 0 if the engine became ready, 1 if its output ended before that.
        """
        buffers = {fd: b"" for fd in streams}
        open_fds = set(streams)
        next_tick = self.clock()
        next_health = self.clock()
        while open_fds:
            now = self.clock()
            wait = max(0.0, min(next_tick, next_health) - now) if self.ready_at is None else None
            readable, _, _ = select.select(list(open_fds), [], [], wait)
            changed = False
            for fd in readable:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    open_fds.discard(fd)
                    continue
                os.write(streams[fd], chunk)
                buf = buffers[fd] + chunk
                # tqdm bars end in \r, log lines in \n: both end a line for phase detection.
                parts = re.split(rb"[\r\n]", buf)
                buffers[fd] = parts.pop()
                if len(buffers[fd]) > MAX_PARTIAL_LINE:
                    buffers[fd] = b""
                for raw in parts:
                    if raw and self.ready_at is None:
                        changed |= self.feed_line(raw.decode("utf-8", "replace"))
            if self.ready_at is not None:
                continue
            now = self.clock()
            if now >= next_health:
                next_health = now + self.health_every
                if self.healthy(self.health_url):
                    self.ready_at = now
                    self._report_selfcheck()
                    self.write(ready_box(self.elapsed(), self.api_url))
                    continue
            if changed or now >= next_tick:
                next_tick = now + self.interval
                self.write(self.progress())
        if self.ready_at is None:
            self._report_selfcheck()
            self.write(f"[FAILED] the engine stopped before it was ready ({self.elapsed():.0f}s, "
                       f"last phase: {self.phase[1]}); see its log above")
            return 1
        return 0

    def _report_selfcheck(self) -> None:
        if self.selfcheck is not None:
            self.write(self.selfcheck.report())


def exec_with_progress(argv: list[str], env: dict[str, str], monitor: Monitor) -> None:
    """Fork the monitor, then exec the engine in this process with stdout/stderr into the monitor's pipes.

    The engine keeps this PID (PID 1 in a container), so `docker stop` signals reach it; the monitor
    ignores SIGINT/SIGTERM and keeps draining until the engine and its workers close the pipes, so the
    engine never blocks or dies on a full or broken pipe.
    """
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # monitor
        try:
            os.close(out_w)
            os.close(err_w)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            code = monitor.run({out_r: 1, err_r: 2})
        except BaseException:  # never take the engine's output down with us
            code = 1
        os._exit(code)
    os.close(out_r)
    os.close(err_r)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)
    os.execvpe(argv[0], argv, env)
