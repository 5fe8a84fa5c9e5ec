"""Start-up phases of one `vllm serve` run, from the engine's own log lines (vLLM 0.26 wording).

    python3 vllm_phases.py LOG [LOG...]     one JSON object per log on stdout

Phases (seconds, from the log's own timestamps, 1 s resolution; the figures vLLM prints itself are kept
beside them at their precision):
  to_engine        first log line -> "Initializing a V1 LLM engine" (API server start, config)
  weights          -> "Model loading took" (engine process start + weight load; vLLM's own load_s beside)
  profile          -> "Available KV cache memory" (torch.compile, its cache, JIT kernels, the profile run)
  graphs           -> "Graph capturing finished" (FlashInfer autotune + CUDA graph capture)
  to_serving       -> "Starting vLLM server on" (the API server listens; /health answers from here)
  total            first line -> "Starting vLLM server on"
`compile_cache` says whether torch.compile was loaded from vLLM's cache ("Directly load ...") or compiled.
Runs on the device's bare python3 (standard library only) and in the project's tests.
"""
from __future__ import annotations

import json
import re
import sys
from datetime import datetime

_STAMP = re.compile(r"(?:INFO|WARNING|ERROR|DEBUG) (\d\d-\d\d \d\d:\d\d:\d\d) ")
MARKS = (
    ("engine", re.compile(r"Initializing a V1 LLM engine")),
    ("weights", re.compile(r"Model loading took ([\d.]+) GiB memory and ([\d.]+) seconds")),
    ("compiled", re.compile(r"torch\.compile took ([\d.]+) s in total")),
    ("kv", re.compile(r"Available KV cache memory: ([\d.]+) GiB")),
    ("graphs", re.compile(r"Graph capturing finished in (\d+) secs, took ([\d.]+) GiB")),
    ("engine_ready", re.compile(r"init engine .* took ([\d.]+) s")),
    ("serving", re.compile(r"Starting vLLM server on")),  # uvicorn's "startup complete" has no timestamp
)
_CACHE_HIT = re.compile(r"Directly load (?:AOT compilation|the compiled graph)")
_COMPILED = re.compile(r"Compiling a graph for compile range|saved AOT compiled function")


def phases(text: str) -> dict:
    first = None
    at: dict[str, datetime] = {}
    found: dict[str, re.Match] = {}
    for line in text.splitlines():
        stamp = _STAMP.search(line)
        if not stamp:
            continue
        when = datetime.strptime(stamp.group(1), "%m-%d %H:%M:%S")
        first = first or when
        for name, pattern in MARKS:
            if name not in found and (m := pattern.search(line)):
                found[name], at[name] = m, when
    out: dict = {"complete": "serving" in at}
    order = ["engine", "weights", "kv", "graphs", "serving"]
    labels = {"engine": "to_engine", "weights": "weights", "kv": "profile", "graphs": "graphs",
              "serving": "to_serving"}
    prev = first
    for name in order:
        if name in at and prev is not None:
            out[labels[name]] = int((at[name] - prev).total_seconds())
            prev = at[name]
    if first is not None and "serving" in at:
        out["total"] = int((at["serving"] - first).total_seconds())
    if "weights" in found:
        out["weights_gib"], out["load_s"] = float(found["weights"].group(1)), float(found["weights"].group(2))
    if "compiled" in found:
        out["compile_s"] = float(found["compiled"].group(1))
    if "graphs" in found:
        out["capture_s"], out["graphs_gib"] = int(found["graphs"].group(1)), float(found["graphs"].group(2))
    if "engine_ready" in found:
        out["init_engine_s"] = float(found["engine_ready"].group(1))
    out["compile_cache"] = "hit" if _CACHE_HIT.search(text) else "miss" if _COMPILED.search(text) else "unknown"
    return out


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path, errors="replace") as f:
            print(json.dumps({"log": path, **phases(f.read())}))
