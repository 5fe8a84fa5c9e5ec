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
DEFAULT_TOOL_IMAGE=ghcr.io/your-org/gptoss-toolserver:0.1.0-52e2dcd785c1
TOOL_IMAGE="${TOOL_IMAGE:-$DEFAULT_TOOL_IMAGE}"
# The python tool server (builtin_tools.python): on a Docker network of the stack's own that is internal (no
# route out), no published port, isolated as infra/toolserver/isolation.py says; removed when the engine stops.
docker network inspect gptoss-h200-vllm-tools-tools >/dev/null 2>&1 || docker network create --internal --label gptoss.stack=h200-vllm-tools gptoss-h200-vllm-tools-tools >/dev/null
stop_tool_server() { docker rm --force gptoss-h200-vllm-tools-python-tool >/dev/null 2>&1 || true; }
stop_tool_server
trap stop_tool_server EXIT
docker run --detach --rm --name gptoss-h200-vllm-tools-python-tool \
  --network gptoss-h200-vllm-tools-tools --network-alias python-tool \
  --user 10002:10002 --read-only --ipc private --pids-limit 512 --memory 2048m --memory-swap 2048m --cpus 2.0 --cap-drop ALL --security-opt no-new-privileges:true --tmpfs /scratch:rw,noexec,nosuid,nodev,size=512m,mode=0700,uid=10002,gid=10002 \
  -e TOOLSERVER_MAX_CONCURRENT=8 \
  -e TOOLSERVER_MAX_OUTPUT_BYTES=65536 \
  -e TOOLSERVER_MEMORY_MB=1024 \
  -e TOOLSERVER_TIMEOUT_S=30 \
  "$TOOL_IMAGE" --host 0.0.0.0 --port 8765
# The engine: created on Docker's default bridge (its published port), joined to that network (it reaches the
# tool server by the alias in --tool-server), then started in the foreground.
docker create --rm --name gptoss-h200-vllm-tools \
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
docker network connect gptoss-h200-vllm-tools-tools gptoss-h200-vllm-tools
docker start --attach gptoss-h200-vllm-tools
