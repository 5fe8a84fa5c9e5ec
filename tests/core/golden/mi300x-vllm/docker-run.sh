#!/usr/bin/env bash
# Rendered by gptoss-stacks for stack mi300x-vllm (vllm, openai/gpt-oss-120b, mi300x-192gb).
# The same container `pulumi up` runs, for people who do not use Pulumi.
# The image's entrypoint (the launcher) rebuilds this plan from GPTOSS_STACK_SPEC plus any image-README env
# vars you add (-e MAX_MODEL_LEN=...), writes vllm.yaml, checks the GPU it finds, then execs:
#   vllm serve openai/gpt-oss-120b --config /etc/gptoss/vllm.yaml --middleware infra.launcher.authguard.ApiKeyGuard
# Secrets are read from YOUR shell environment and passed by name only: API_KEY.
set -euo pipefail
: "${API_KEY:?export API_KEY (the key clients must send as 'Authorization: Bearer ...') first}"
DEFAULT_IMAGE=ghcr.io/your-org/gptoss-vllm:0.33.0-rocm
IMAGE="${IMAGE:-$DEFAULT_IMAGE}"
exec docker run --rm --name gptoss-mi300x-vllm \
  --device /dev/kfd --device /dev/dri --group-add video --security-opt seccomp=unconfined --ipc=host --shm-size 16384m \
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
  -e HSA_NO_SCRATCH_RECLAIM=1 \
  -e AMDGCN_USE_BUFFER_OPS=0 \
  -e VLLM_ROCM_USE_AITER=1 \
  -e VLLM_ROCM_QUICK_REDUCE_QUANTIZATION=INT4 \
  -e 'GPTOSS_STACK_SPEC={"stack":"mi300x-vllm","backend":"vllm","model":"openai/gpt-oss-120b","gpu":"mi300x-192gb","gpu_count":8,"tensor_parallel":8,"max_model_len":131072,"speculative":"none","fit_check":"strict","profile":"interactive","host":"0.0.0.0","port":8000,"api_key_mode":"auto","target":"docker","docker":{"host":"ssh://ubuntu@gpu-mi300x.internal","publish_address":"0.0.0.0","cache_volume":"gptoss-cache","shm_size_mb":16384,"restart":"unless-stopped"},"image":{"registry":"ghcr.io/your-org","registry_username":"your-org-bot","allow_unpinned_base":false},"env":{},"extra_args":[]}' \
  -e API_KEY \
  "$IMAGE"
