"""Progress display: real pipes, a real engine-like process, a real /health server; memory from a probe.

The probe is the NVML boundary (on the H200 it is NVML itself: tests/launcher/device_h200.sh).
"""
from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading

import pytest

from infra.launcher.progress import PHASES, Monitor, bar_line, http_health, phase_of, ready_box

GiB = 2**30


def test_bar_line_matches_the_seed_format():
    line = bar_line(int(45.2 * GiB), 80 * GiB, "loading weights", 8.2)
    assert re.fullmatch(r"\[LOADING\] #{11}-{9} 45\.2GB / 80GB - loading weights\.\.\. \(8s\)", line)
    assert bar_line(80 * GiB, 80 * GiB, "x", 1).startswith("[LOADING] " + "#" * 20 + " ")
    assert bar_line(None, 80 * GiB, "compiling kernels", 20) == "[LOADING] compiling kernels... (20s)"


def test_ready_box_matches_the_seed():
    assert ready_box(35.2, "http://0.0.0.0:8000/v1").splitlines() == [
        "=" * 60, "  [OK] MODEL READY (loaded in 35s)", "       API available at http://0.0.0.0:8000/v1", "=" * 60]


@pytest.mark.parametrize("line, phase", [
    # vLLM's own log lines
    ("(EngineCore pid=111) INFO 06-07 08:55:57 [gpu_model_runner.py:5037] Starting to load model openai/gpt-oss-120b...", "loading weights"),
    ("Loading safetensors checkpoint shards:  25% Completed | 4/15", "loading weights"),
    ("INFO [gpu_model_runner.py] Model loading took 60.83 GiB memory and 40.1 seconds", "weights loaded"),
    ("INFO [backends.py] Dynamo bytecode transform time: 6.10 s", "compiling kernels"),
    ("INFO [gpu_worker.py:437] Available KV cache memory: 60.12 GiB", "allocating KV cache"),
    ("Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 40%|####", "capturing CUDA graphs"),
    ("INFO Starting vLLM API server 0 on http://0.0.0.0:8000", "starting API server"),
    # SGLang's
    ("[2026-07-01 15:18:59 TP0] Load weight begin. avail mem=139.61 GB", "loading weights"),
    ("[2026-07-01 15:19:40 TP0] Load weight end. type=GptOssForCausalLM, avail mem=78.2 GB", "weights loaded"),
    ("[2026-07-01 15:19:41 TP0] KV Cache is allocated. #tokens: 1234567", "allocating KV cache"),
    ("[2026-07-01 15:19:45 TP0] Capture cuda graph begin. This can take up to several minutes.", "capturing CUDA graphs"),
    ("[2026-07-01 15:19:59] The server is fired up and ready to roll!", "starting API server"),
    ("Fetching 15 files: 100%", "downloading weights"),
    ("an unrelated line", None),
])
def test_phase_from_engine_log(line, phase):
    got = phase_of(line)
    assert (got[1] if got else None) == phase


def test_phases_only_move_forward():
    m = Monitor(total_bytes=GiB, health_url="http://127.0.0.1:1/health", api_url="x")
    assert m.feed_line("Capture cuda graph begin")
    assert not m.feed_line("[TP1] Load weight begin. avail mem=80 GB")  # a slower rank, earlier phase
    assert m.phase[1] == "capturing CUDA graphs"
    assert len({order for order, _, _ in PHASES}) == len(PHASES)


class _Health:
    """A real HTTP server on loopback that answers /health once told the model is ready."""

    def __init__(self):
        self.ready = threading.Event()
        ready = self.ready

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/health" and ready.is_set() else 503)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/health"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


ENGINE = r"""
import sys, time
lines = ["INFO Starting to load model openai/gpt-oss-20b...",
         "Loading safetensors checkpoint shards:  50% Completed\r",
         "INFO Model loading took 12.8 GiB memory",
         "INFO Available KV cache memory: 40.0 GiB",
         "Capturing CUDA graphs (decode, FULL): 100%",
         "INFO Starting vLLM API server 0 on http://0.0.0.0:8000"]
for l in lines:
    sys.stdout.write(l + ("" if l.endswith("\r") else "\n")); sys.stdout.flush(); time.sleep(0.15)
print("a warning on stderr", file=sys.stderr, flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)  # "serving" for a while
"""


def _run_monitor(engine_args, health, used):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pass_out_r, pass_out_w = os.pipe()
    pass_err_r, pass_err_w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", ENGINE, *engine_args], stdout=out_w, stderr=err_w)
    os.close(out_w)
    os.close(err_w)
    lines: list[str] = []
    m = Monitor(total_bytes=80 * GiB, health_url=health.url, api_url="http://0.0.0.0:8000/v1",
                used_bytes=used, write=lines.append, interval=0.2, health_every=0.1)
    code = m.run({out_r: pass_out_w, err_r: pass_err_w})
    proc.wait()
    os.close(pass_out_w)
    os.close(pass_err_w)
    passed = os.read(pass_out_r, 1 << 20).decode(), os.read(pass_err_r, 1 << 20).decode()
    return code, lines, passed


def test_monitor_end_to_end_ready():
    health = _Health()
    steps = iter(range(1, 1000))
    used = lambda: min(next(steps) * 4, 70) * GiB  # noqa: E731  grows like weights loading

    def engine_ready_then_serve():
        health.ready.set()

    try:
        # /health turns ready while the engine is still running (after its last log line).
        timer = threading.Timer(1.2, engine_ready_then_serve)
        timer.start()
        code, lines, (out, err) = _run_monitor(["1.5"], health, used)
    finally:
        health.close()
    assert code == 0
    text = "\n".join(lines)
    for phase in ("loading weights", "weights loaded", "allocating KV cache", "capturing CUDA graphs", "starting API server"):
        assert f"- {phase}..." in text
    assert re.search(r"\[LOADING\] #+-* \d+\.\dGB / 80GB - ", text)
    assert "[OK] MODEL READY (loaded in" in text and "API available at http://0.0.0.0:8000/v1" in text
    assert lines[-1].startswith("=" * 60) and lines[-1].endswith("=" * 60)  # nothing after READY: progress stops
    # Every byte of the engine's output went through unchanged, on the same stream.
    assert "Loading safetensors checkpoint shards:  50% Completed\r" in out
    assert "Starting vLLM API server" in out and "a warning on stderr" in err


def test_monitor_reports_an_engine_that_dies_before_ready():
    health = _Health()
    try:
        code, lines, _ = _run_monitor([], health, lambda: None)
    finally:
        health.close()
    assert code == 1
    assert lines[-1].startswith("[FAILED] the engine stopped before it was ready")
    assert "last phase: starting API server" in lines[-1]


def test_http_health_against_a_real_server():
    health = _Health()
    try:
        assert not http_health(health.url)
        health.ready.set()
        assert http_health(health.url)
    finally:
        health.close()
    assert not http_health("http://127.0.0.1:1/health")
