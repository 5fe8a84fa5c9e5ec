"""Every default in one place. Other modules import from here; nothing else hard-codes these."""
from __future__ import annotations

import re
from pathlib import Path

PROJECT = "gptoss-stacks"
CONFIG_NAMESPACE = PROJECT  # Pulumi config keys are "gptoss-stacks:<field>"

REPO_ROOT = Path(__file__).resolve().parent.parent
STACKS_DIR = REPO_ROOT / "stacks"
RENDER_DIR = REPO_ROOT / "build" / "render"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
CATALOGUE_DIR = Path(__file__).resolve().parent / "catalogue"
# Base image digests (`invoke lock-images` writes it; builds and deploys read it via infra.catalogue).
IMAGE_LOCK_FILE = CATALOGUE_DIR / "images.lock.yaml"

# Example values the shipped stack files carry for the user to replace (README, "Deploy to your own GPU
# box over SSH"): `invoke render` names each one still present.
PLACEHOLDER_PATTERNS = (r"your-org", r"\bgpu-[a-z0-9]+\.internal\b")

BACKENDS = ("vllm", "sglang")
TARGETS = ("docker", "kubernetes", "runpod")

# Engine versions the project is verified against (issue 2, item 7).
ENGINE_VERSIONS = {"vllm": "0.33.0", "sglang": "0.5.23"}

# The fit notes a KV cache that gives each of max_num_seqs running requests fewer tokens than this: one
# chat turn of the load the H200 measurements use (1,024 prompt + 512 output tokens, docs/measurements).
FIT_TOKENS_PER_RUNNING_SEQ = 1536

DEFAULT_PORT = 8000
DEFAULT_HOST = "0.0.0.0"

# In-container layout. One cache mount holds HF weights, torch.compile, FlashInfer and Triton
# JIT caches so a restart reuses them (issue 3, warm restarts).
CONFIG_DIR = "/etc/gptoss"
CACHE_ROOT = "/cache"
CACHE_ENV = {
    "HF_HOME": f"{CACHE_ROOT}/huggingface",
    "VLLM_CACHE_ROOT": f"{CACHE_ROOT}/vllm",
    "FLASHINFER_WORKSPACE_BASE": f"{CACHE_ROOT}/flashinfer",
    "TRITON_CACHE_DIR": f"{CACHE_ROOT}/triton",
    "TORCHINDUCTOR_CACHE_DIR": f"{CACHE_ROOT}/inductor",
    "XDG_CACHE_HOME": CACHE_ROOT,
    "CUDA_CACHE_PATH": f"{CACHE_ROOT}/cuda",
    "TORCH_EXTENSIONS_DIR": f"{CACHE_ROOT}/torch_extensions",
}
# The engine runs as this non-root user in the images; volumes (Kubernetes fsGroup) use its uid.
ENGINE_USER = "gptoss"
ENGINE_UID = 10001

# Docker target defaults (docker.cache_volume, docker.shm_size_mb; docker-run.sh of other targets' stacks too).
# The cache volume is shared by a host's stacks; /dev/shm is sized for NCCL if IPC is made private.
DOCKER_CACHE_VOLUME = "gptoss-cache"
DOCKER_SHM_SIZE_MB = 16384
# A server published on a loopback address needs no key and is reached through a tunnel from elsewhere.
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
ALL_ADDRESSES = ("0.0.0.0", "::")
# What a stack's container, pod and Kubernetes objects are called: gptoss-<stack>.
NAME_PREFIX = "gptoss-"
TIKTOKEN_DIR = "/opt/tiktoken"

# The stack spec travels to the container in this env var (no secrets in it) so the launcher
# can rebuild the exact same plan, then apply container env overrides on top.
SPEC_ENV = "GPTOSS_STACK_SPEC"

# Config keys that hold secrets. Stack files must carry them as `secure:` values.
SECRET_KEYS = ("api_key", "hf_token", "registry_password", "ssh_password")
# Env var that carries each secret into the container.
SECRET_ENV = {"api_key": "API_KEY", "hf_token": "HF_TOKEN", "ssh_password": "SSH_PASSWORD"}
# The one rule for "this env var name holds a secret" (a stack's plain `env` refuses it, the launcher redacts it):
# judged by the name's words, so TIKTOKEN_ENCODINGS_BASE (the tokenizer library) is no token and a PUBLIC_KEY no secret.
SECRET_NAME_ENDINGS = ("token", "password", "passwd", "secret", "apikey", "credentials")  # HFTOKEN, DB_PASSWORD
SECRET_NAME_PARTS = ("api_key", "access_key", "private_key")  # OPENAI_API_KEYS, AWS_SECRET_ACCESS_KEY
NOT_SECRET_WORDS = frozenset({"tiktoken"})


def looks_secret(name: str) -> bool:
    """HF_TOKEN, HFTOKEN, DB_PASSWORD, OPENAI_API_KEY, ENCRYPTION_KEY, MY-SECRET: yes; TIKTOKEN_CACHE_DIR,
    TOKENIZERS_PARALLELISM, SSH_PUBLIC_KEY, PORT: no."""
    low = name.lower()
    if any(part in low for part in SECRET_NAME_PARTS):
        return True
    words = [w for w in re.split(r"[^a-z0-9]+", low) if w]
    for i, word in enumerate(words):
        if word in NOT_SECRET_WORDS:
            continue
        if word.endswith(SECRET_NAME_ENDINGS) or (word == "key" and words[i - 1:i] != ["public"]):
            return True
    return False

# Workload profiles (stack field `profile`); presets.yaml rows match on them.
#   interactive: agents and chat UIs, tokens streamed one by one (the source documents' target)
#   throughput:  batch jobs, more sequences and bigger prefill chunks, tokens streamed in bursts
PROFILES = ("interactive", "throughput")
DEFAULT_PROFILE = "interactive"

MAX_MEMORY_FRACTION = 0.98
MIN_MEMORY_FRACTION = 0.05

# Model loading can take a long time (120b: ~63 GB download + load + compile). Probes and
# health checks must not kill a loading server.
STARTUP_GRACE_SECONDS = {"openai/gpt-oss-20b": 900, "openai/gpt-oss-120b": 1800}

# Kubernetes scale-out (issue 13).
# Hugging Face commits the Kubernetes target pins (download Job and engine --revision), so every
# pod of a stack loads the same bytes. Seen as the snapshot directory of these repos in public
# Hugging Face caches; `kubernetes.model_revision` overrides.
MODEL_REVISIONS = {
    "openai/gpt-oss-120b": "b5c939de8f754692c1647ca79fbf85e8c1e70f8a",
    "openai/gpt-oss-20b": "6cee5e81ee83917806bbde320786a8fb61efebee",
}
# Drain on scale-down/rollout: the router sees the pod's deletion and stops sending it work during
# the preStop pause; then SIGTERM and the engine finishes what it has for up to the shutdown timeout.
K8S_PRESTOP_SECONDS = 15
K8S_SHUTDOWN_TIMEOUT_SECONDS = 120
K8S_TERMINATION_MARGIN_SECONDS = 15  # process exit, cache flush, after the engine's own timeout
# Autoscaling guard rails: a new replica takes minutes to load, so scale up one pod at a time,
# wait for it, and scale down only after a long quiet spell.
K8S_SCALE_UP_PODS = 1
K8S_SCALE_UP_PERIOD_SECONDS = 600
K8S_SCALE_UP_STABILIZATION_SECONDS = 180
K8S_SCALE_DOWN_STABILIZATION_SECONDS = 900
K8S_NODE_CACHE_PATH = "/var/lib/gptoss/cache"
# Node-local cache (kubernetes.cache: node-local) is a hostPath: only a directory below one of these
# prefixes is accepted, so a stack can never mount (and chown) /, /etc, /var/run, the kubelet's or the
# container runtime's state. /var/lib/gptoss: this project's own state directory (FHS /var/lib/<name>);
# /mnt and /data: where clouds and on-prem nodes mount local NVMe (GKE local SSD /mnt/disks/..., AKS
# temp disk /mnt, EKS instance store as mounted by its user data).
K8S_NODE_CACHE_PREFIXES = ("/var/lib/gptoss", "/mnt", "/data")
# Who may scrape the engine and router pods' /metrics (the NetworkPolicy lets these pods in): the
# Prometheus server pods of the namespace the default autoscaling.prometheus_address points at.
K8S_METRICS_NAMESPACE = "monitoring"
K8S_METRICS_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}

# vLLM's own API-key check covers only /v1, /v2, /inference, /cohere; this ASGI middleware (added with
# `--middleware` whenever the engine has a key) guards every other route too (infra/launcher/authguard.py).
VLLM_AUTH_MIDDLEWARE = "infra.launcher.authguard.ApiKeyGuard"

# The container env that turns on SSH into the container (the launcher's sshd; infra/launcher/ssh.py):
# consumed by the launcher, never passed to the engine, refused on Kubernetes.
SSH_ENV_VARS = ("SSH_PASSWORD", "SSH_PUBLIC_KEY", "PUBLIC_KEY")

# Built-in tools (issue 22): the python tool server the stack runs beside the engine (infra/toolserver, MCP over
# SSE; vLLM and SGLang's `--tool-server host:port` connect to http://host:port/sse). Its port, uid and
# container isolation are infra/toolserver/isolation.py's; these are the stack's defaults for it.
TOOLSERVER_DOCKER_ALIAS = "python-tool"  # its name on the stack's private Docker network
TOOLSERVER_IMAGE = "gptoss-toolserver"  # tagged <version>-<hash of what it runs> (infra.builtin_tools.image_tag)
# Per-call limits: the tool server's own defaults (infra/toolserver/sandbox.py Limits; a test holds them equal).
TOOL_PYTHON_TIMEOUT_S = 30
TOOL_PYTHON_MEMORY_MB = 1024
TOOL_PYTHON_MAX_OUTPUT_KB = 64
TOOL_PYTHON_MAX_CONCURRENCY = 20
