#!/usr/bin/env bash
# Rendered by gptoss-stacks for stack k8s-h200x8-vllm-tp1 (vllm, openai/gpt-oss-120b, h200-141gb).
# The same container `pulumi up` runs, for people who do not use Pulumi.
# The image's entrypoint (the launcher) rebuilds this plan from GPTOSS_STACK_SPEC plus any image-README env
# vars you add (-e MAX_MODEL_LEN=...), writes vllm.yaml, checks the GPU it finds, then execs:
#   vllm serve openai/gpt-oss-120b --config /etc/gptoss/vllm.yaml --middleware infra.launcher.authguard.ApiKeyGuard --revision b5c939de8f754692c1647ca79fbf85e8c1e70f8a --shutdown-timeout 120
# Secrets are read from YOUR shell environment and passed by name only: API_KEY.
set -euo pipefail
: "${API_KEY:?export API_KEY (the key clients must send as 'Authorization: Bearer ...') first}"
DEFAULT_IMAGE=ghcr.io/your-org/gptoss-vllm:0.33.0-cuda
IMAGE="${IMAGE:-$DEFAULT_IMAGE}"
exec docker run --rm --name gptoss-k8s-h200x8-vllm-tp1 \
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
  -e 'GPTOSS_STACK_SPEC={"stack":"k8s-h200x8-vllm-tp1","backend":"vllm","model":"openai/gpt-oss-120b","gpu":"h200-141gb","gpu_count":1,"tensor_parallel":1,"speculative":"none","fit_check":"strict","profile":"interactive","host":"0.0.0.0","port":8000,"api_key_mode":"auto","target":"kubernetes","kubernetes":{"namespace":"gptoss","replicas":8,"router":"smg","router_policy":"cache_aware","cache":"shared","storage_class":"efs-sc","cache_size_gi":200,"node_cache_path":"/var/lib/gptoss/cache","drain":{"prestop_seconds":15,"shutdown_timeout_seconds":120},"service_type":"ClusterIP","allow_public_engine":false,"network_policy":{"metrics_namespace":"monitoring","metrics_pod_labels":{"app.kubernetes.io/name":"prometheus"},"api_server_cidrs":["0.0.0.0/0"]},"tolerations":[{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedule"}],"node_selector":{},"shm_size_gi":16,"supplemental_groups":[],"autoscaling":{"enabled":false,"mode":"keda","min_replicas":1,"max_replicas":4,"queue_depth_target":8,"prometheus_address":"http://prometheus-server.monitoring.svc:80","scale_up_pods":1,"scale_up_period_seconds":600,"scale_up_stabilization_seconds":180,"scale_down_stabilization_seconds":900,"service_monitor":false,"service_monitor_interval":"30s"}},"image":{"registry":"ghcr.io/your-org","registry_username":"your-org-bot","allow_unpinned_base":false},"env":{},"extra_args":[]}' \
  -e API_KEY \
  "$IMAGE"
