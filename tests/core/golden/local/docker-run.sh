#!/usr/bin/env bash
# Rendered by gptoss-stacks for stack local (vllm, openai/gpt-oss-20b, auto).
# The same container `pulumi up` runs, for people who do not use Pulumi.
# The image's entrypoint (the launcher) rebuilds this plan from GPTOSS_STACK_SPEC plus any image-README env
# vars you add (-e MAX_MODEL_LEN=...), writes vllm.yaml, checks the GPU it finds, then execs:
#   vllm serve openai/gpt-oss-20b --config /etc/gptoss/vllm.yaml
set -euo pipefail
DEFAULT_IMAGE=gptoss-vllm:0.33.0-cuda
IMAGE="${IMAGE:-$DEFAULT_IMAGE}"
exec docker run --rm --name gptoss-local \
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
  -e 'GPTOSS_STACK_SPEC={"stack":"local","backend":"vllm","model":"openai/gpt-oss-20b","gpu":"auto","gpu_count":1,"tensor_parallel":"auto","speculative":"none","fit_check":"strict","profile":"interactive","host":"0.0.0.0","port":8000,"api_key_mode":"auto","target":"docker","docker":{"host":"unix:///var/run/docker.sock","publish_address":"127.0.0.1","cache_volume":"gptoss-cache","shm_size_mb":16384,"restart":"unless-stopped"},"image":{"push":false,"allow_unpinned_base":true},"env":{},"extra_args":[]}' \
  "$IMAGE"
