#!/usr/bin/env bash
# Rendered by gptoss-stacks for stack h200-vllm-tools (vllm, openai/gpt-oss-120b, h200-141gb).
# The same container `pulumi up` runs, for people who do not use Pulumi.
# The image's entrypoint (the launcher) rebuilds this plan from GPTOSS_STACK_SPEC plus any image-README env
# vars you add (-e MAX_MODEL_LEN=...), writes vllm.yaml, checks the GPU it finds, then execs:
#   vllm serve openai/gpt-oss-120b --config /etc/gptoss/vllm.yaml --middleware infra.launcher.authguard.ApiKeyGuard --tool-server python-tool:8765
# Secrets are read from YOUR shell environment and passed by name only: API_KEY.
set -euo pipefail
: "${API_KEY:?export API_KEY (the key clients must send as 'Authorization: Bearer ...') first}"
DEFAULT_IMAGE=ghcr.io/your-org/gptoss-vllm:0.33.0-cuda
IMAGE="${IMAGE:-$DEFAULT_IMAGE}"
exec docker run --rm --name gptoss-h200-vllm-tools \
  --gpus 1 --ipc=host --shm-size 16384m \
  -p 0.0.0.0:8000:8000 \
  -v gptoss-cache:/cache \
  -e HF_HOME=/cache/huggingface \
  -e VLLM_CACHE_ROOT=/cache/vllm \
  -e FLASHINFER_WORKSPACE_BASE=/cache/flashinfer \
  -e TRITON_CACHE_DIR=/cache/triton \
  -e TORCHINDUCTOR_CACHE_DIR=/cache/inductor \
  -e XDG_CACHE_HOME=/cache \
  -e CUDA_CACHE_PATH=/cache/cuda \
  -e TORCH_EXTENSIONS_DIR=/cache/torch_extensions \
  -e 'GPTOSS_STACK_SPEC={"stack":"h200-vllm-tools","backend":"vllm","model":"openai/gpt-oss-120b","gpu":"h200-141gb","gpu_count":1,"tensor_parallel":"auto","max_model_len":131072,"speculative":"none","fit_check":"strict","profile":"interactive","host":"0.0.0.0","port":8000,"api_key_mode":"auto","target":"docker","docker":{"host":"ssh://ubuntu@gpu-h200.internal","publish_address":"0.0.0.0","cache_volume":"gptoss-cache","shm_size_mb":16384,"restart":"unless-stopped"},"image":{"registry":"ghcr.io/your-org","registry_username":"your-org-bot","allow_unpinned_base":false},"env":{},"extra_args":[],"builtin_tools":{"python":{"enabled":true,"timeout_s":30,"memory_mb":1024,"max_output_kb":64,"max_concurrency":8},"browser":{"enabled":false}}}' \
  -e API_KEY \
  "$IMAGE"
