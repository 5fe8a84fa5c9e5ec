#!/usr/bin/env bash
# Rendered by gptoss-stacks for stack runpod-h100-sglang (sglang, openai/gpt-oss-120b, h100-80gb).
# The same container `pulumi up` runs, for people who do not use Pulumi.
# The image's entrypoint (the launcher) rebuilds this plan from GPTOSS_STACK_SPEC plus any image-README env
# vars you add (-e MAX_MODEL_LEN=...), writes sglang.args, checks the GPU it finds, then execs:
#   python3 -m sglang.launch_server --model-path openai/gpt-oss-120b --served-model-name openai/gpt-oss-120b --host 0.0.0.0 --port 8000 --tp-size 1 --context-length 16384 --mem-fraction-static 0.92 --max-running-requests 128 --chunked-prefill-size 8192 --tool-call-parser gpt-oss --reasoning-parser gpt-oss
# Secrets are read from YOUR shell environment and passed by name only: API_KEY.
set -euo pipefail
: "${API_KEY:?export API_KEY (the key clients must send as 'Authorization: Bearer ...') first}"
DEFAULT_IMAGE=ghcr.io/your-org/gptoss-sglang:0.5.23-cuda
IMAGE="${IMAGE:-$DEFAULT_IMAGE}"
exec docker run --rm --name gptoss-runpod-h100-sglang \
  --gpus 1 --ipc=host --shm-size 16384m \
  -p 127.0.0.1:8000:8000 \
  -v gptoss-cache:/cache \
  -e HF_HOME=/cache/huggingface \
  -e VLLM_CACHE_ROOT=/cache/vllm \
  -e FLASHINFER_WORKSPACE_BASE=/cache/flashinfer \
  -e TRITON_CACHE_DIR=/cache/triton \
  -e TORCHINDUCTOR_CACHE_DIR=/cache/inductor \
  -e XDG_CACHE_HOME=/cache \
  -e CUDA_CACHE_PATH=/cache/cuda \
  -e TORCH_EXTENSIONS_DIR=/cache/torch_extensions \
  -e 'GPTOSS_STACK_SPEC={"stack":"runpod-h100-sglang","backend":"sglang","model":"openai/gpt-oss-120b","gpu":"h100-80gb","gpu_count":1,"tensor_parallel":"auto","speculative":"none","fit_check":"strict","profile":"interactive","host":"0.0.0.0","port":8000,"api_key_mode":"auto","target":"runpod","runpod":{"cloud_type":"SECURE","volume_gb":100,"container_disk_gb":50,"ssh":true},"image":{"registry":"ghcr.io/your-org","registry_username":"your-org-bot","allow_unpinned_base":false},"env":{},"extra_args":[]}' \
  -e API_KEY \
  "$IMAGE"
