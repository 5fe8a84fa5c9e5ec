#!/usr/bin/env bash
# The launcher's detection run for real on the lent H200 (device tool), outputs under $OUT.
#   carry: .whl (pydantic wheels for the device's Python 3.12), images/encodings (the .tiktoken files)
# 1. live NVML snapshot (same format as tests/fixtures/nvml/*.json)
# 2. --dry-run on the live GPU for both engines and both models
# 3. the full start path (no --dry-run) with SHOW_LOADING_PROGRESS=true: the launcher execs a stand-in
#    engine that takes real GPU memory with CUDA, so the progress bar's memory comes from NVML.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,memory.used,compute_cap,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
echo "== live snapshot"
python3 -m infra.launcher --print-snapshot | tee "$OUT/h200-live-snapshot.json"
echo "== dry runs on the live GPU"
for b in vllm sglang; do
  for m in openai/gpt-oss-120b openai/gpt-oss-20b; do
    echo "---- GPTOSS_BACKEND=$b MODEL=$m"
    GPTOSS_BACKEND=$b MODEL=$m API_KEY=sk-device-test-not-real python3 -m infra.launcher --dry-run
    echo "rc=$?"
  done
done 2>&1 | tee "$OUT/dryrun-live.txt"
echo "---- declared GPU mismatch (stack says h100-80gb, host has H200)"
GPTOSS_BACKEND=vllm GPTOSS_STACK_SPEC='{"backend":"vllm","gpu":"h100-80gb"}' python3 -m infra.launcher --dry-run 2>&1 | tee -a "$OUT/dryrun-live.txt"
echo "rc=${PIPESTATUS[0]}" | tee -a "$OUT/dryrun-live.txt"
echo "== full start path with progress (stand-in engine allocating 24 GiB on the GPU)"
mkdir -p /tmp/eng /tmp/cfg /tmp/c && cp tests/launcher/engine_standin.py /tmp/eng/vllm && chmod +x /tmp/eng/vllm
( PATH=/tmp/eng:$PATH GPTOSS_BACKEND=vllm PORT=18000 SHOW_LOADING_PROGRESS=true STANDIN_STARTUP=1 \
  STANDIN_ALLOC_GIB=24 STANDIN_STEP_S=2 STANDIN_SERVE_S=2 TIKTOKEN_ENCODINGS_BASE=$PWD/images/encodings \
  HF_HOME=/tmp/c/hf VLLM_CACHE_ROOT=/tmp/c/vllm FLASHINFER_WORKSPACE_BASE=/tmp/c/fi TRITON_CACHE_DIR=/tmp/c/triton \
  TORCHINDUCTOR_CACHE_DIR=/tmp/c/inductor XDG_CACHE_HOME=/tmp/c \
  timeout 120 python3 -m infra.launcher --config-dir /tmp/cfg; echo "rc=$?" ) 2>&1 | tee "$OUT/progress-live.txt"
echo "== the launcher test suite on the GPU machine (Docker tests skip: no dockerd there)"
python3 -m pytest -q -p no:cacheprovider tests/launcher -rs 2>&1 | tail -25 | tee "$OUT/pytest-device.txt"
