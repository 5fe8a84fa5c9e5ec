#!/usr/bin/env python3
"""Stands in for `vllm` / `python3 -m sglang.launch_server` where no engine can run (no GPU here).

It is what the launcher exec's in the exec/progress tests, installed on PATH as `vllm`. It records
what it was started with (argv, env names, PID, uid) and, when asked, behaves like an engine
starting up: prints the engines' real log lines for each phase, takes GPU memory in steps (real
CUDA allocations when torch sees a GPU, e.g. on the lent H200, so NVML memory use really grows),
then answers GET /health on the port from its --config file.

Env: STANDIN_RECORD=path (or - for stdout), STANDIN_STARTUP=1, STANDIN_ALLOC_GIB=N, STANDIN_STEP_S=s, STANDIN_SERVE_S=s,
STANDIN_EXIT=code (exit before ready, like a crash), STANDIN_REPLAY=path: print a captured start-up log
(tests/fixtures/engine-logs/) byte for byte, line by line, instead of the built-in lines.
"""
import http.server
import json
import os
import sys
import threading
import time


# vLLM's own phase lines, one of each (progress tests); STANDIN_REPLAY replays a whole captured log instead.
LINES = (
    "INFO [gpu_model_runner.py] Starting to load model openai/gpt-oss-120b...",
    "Loading safetensors checkpoint shards:  50% Completed | 7/15",
    "INFO [default_loader.py] Loading weights took 8.12 seconds",
    "INFO [gpu_model_runner.py] Model loading took 60.83 GiB memory and 9.02 seconds",
    "INFO [backends.py] Dynamo bytecode transform time: 6.10 s",
    "INFO [gpu_worker.py] Available KV cache memory: 60.12 GiB",
    "Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|##########| 67/67",
    "INFO [api_server.py] Starting vLLM API server 0 on http://0.0.0.0:8000",
)


def _port(argv):
    if "--port" in argv:
        return int(argv[argv.index("--port") + 1])
    if "--config" in argv:
        for line in open(argv[argv.index("--config") + 1], encoding="utf-8"):
            if line.startswith("port:"):
                return int(line.split(":", 1)[1])
    return 8000


def main():
    argv = sys.argv
    rec = os.environ.get("STANDIN_RECORD")
    if rec:
        data = {"argv": argv, "env": sorted(os.environ), "pid": os.getpid(), "uid": os.getuid(),
                "vllm_api_key_set": bool(os.environ.get("VLLM_API_KEY")), "api_key_in_env": "API_KEY" in os.environ,
                "home": os.environ.get("HOME")}
        if rec == "-":
            print("STANDIN_RECORD " + json.dumps(data), flush=True)
        else:
            with open(rec, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
    if not os.environ.get("STANDIN_STARTUP"):
        return 0
    step = float(os.environ.get("STANDIN_STEP_S", "0.3"))
    gib = int(os.environ.get("STANDIN_ALLOC_GIB", "0"))
    held = []
    torch = None
    if gib:
        try:
            import torch as _t
            torch = _t if _t.cuda.is_available() else None
        except ImportError:
            torch = None

    def take(n):
        if torch is not None:
            for _ in range(n):
                held.append(torch.empty(2**30, dtype=torch.uint8, device="cuda"))

    if os.environ.get("STANDIN_REPLAY"):
        with open(os.environ["STANDIN_REPLAY"], "rb") as fh:
            for raw in fh:  # each line as captured, tqdm's \r segments included
                sys.stdout.buffer.write(raw)
                sys.stdout.buffer.flush()
                time.sleep(step)
    else:
        per = max(gib // 4, 0)
        for i, line in enumerate(LINES):
            print(line, flush=True)
            if i in (0, 1, 3, 5):
                take(per)
            time.sleep(step)
    if os.environ.get("STANDIN_EXIT"):
        print("RuntimeError: CUDA out of memory (stand-in crash)", file=sys.stderr, flush=True)
        return int(os.environ["STANDIN_EXIT"])

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", _port(argv)), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("INFO:     Application startup complete.", flush=True)
    time.sleep(float(os.environ.get("STANDIN_SERVE_S", "3")))
    srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
