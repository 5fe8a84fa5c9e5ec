"""The tool server container's isolation, in one place (pure: no Pulumi, no Docker import).

The Docker targets (`docker_run_options`, or `CONTAINER` field by field for pulumi_docker.Container) and the
Kubernetes target (`kubernetes_pod_fields`, `kubernetes_container_fields`, `kubernetes_volumes`) read these;
tests/launcher/test_toolserver_container.py runs the real image with `docker_run_options()`.

What the container gets and why:
- non-root (uid/gid 10002, not the engine's 10001), read-only root, all capabilities dropped,
  no-new-privileges: model code that escapes the in-process sandbox is still an unprivileged user;
- one writable place: a tmpfs at /scratch (size-capped, noexec/nosuid/nodev) holding the per-conversation dirs;
- pids/memory/CPU limits above the per-call rlimits (TOOLSERVER_MAX_PROCS, TOOLSERVER_MEMORY_MB), so a fork
  bomb or memory hog hits the call's own limit first and the container's limit never takes the server down;
- no published port: the engine reaches it on a private network (Docker) or through a NetworkPolicy that
  admits the engine only and allows no egress (Kubernetes); no service-account token, no service links;
- nothing secret in its env: the server refuses to start with any FORBIDDEN_ENV name in its environment.
Kubernetes has no per-pod pids limit field: the node's podPidsLimit applies; the per-call RLIMIT_NPROC holds.
"""
from __future__ import annotations

from dataclasses import dataclass

SERVER_NAME = "python"      # MCP server info name = the harmony tool namespace the engine registers
TOOL_NAME = "python"        # the tool the engine calls with {"code": ...}
SESSION_HEADER = "x-session-id"  # vLLM sends its request id in it; files persist per value
PORT = 8765
SSE_PATH = "/sse"           # the engines connect to http://host:port/sse (vLLM: f"http://{url}/sse")
UID = 10002
SCRATCH_DIR = "/scratch"
# Names the tool server refuses to hold (the stack's secrets, cloud and cluster credentials, a Docker endpoint).
FORBIDDEN_ENV = frozenset({
    "API_KEY", "VLLM_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN",
    "RUNPOD_API_KEY", "SSH_PASSWORD", "SSH_PUBLIC_KEY", "PUBLIC_KEY", "DOCKER_HOST", "DOCKER_CERT_PATH",
    "KUBECONFIG", "GOOGLE_APPLICATION_CREDENTIALS", "GPTOSS_STACK_SPEC", "EXA_API_KEY", "BROWSER_API_KEY",
})
FORBIDDEN_ENV_PREFIXES = ("AWS_", "AZURE_", "PULUMI_", "GOOGLE_", "GCP_", "RUNPOD_", "KUBERNETES_")


@dataclass(frozen=True)
class ContainerLimits:
    memory_mb: int = 2048   # > TOOLSERVER_MEMORY_MB (1024 per process by default)
    cpus: float = 2.0
    pids: int = 512         # > TOOLSERVER_MAX_PROCS (128) + the server's threads
    scratch_mb: int = 512   # the tmpfs at SCRATCH_DIR: every conversation's files together


DEFAULT_LIMITS = ContainerLimits()


def tmpfs_options(limits: ContainerLimits = DEFAULT_LIMITS) -> str:
    return f"rw,noexec,nosuid,nodev,size={limits.scratch_mb}m,mode=0700,uid={UID},gid={UID}"


def container(limits: ContainerLimits = DEFAULT_LIMITS) -> dict:
    """The container's security settings, named like `docker run`'s options (one source for both targets)."""
    return {
        "user": f"{UID}:{UID}",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "tmpfs": {SCRATCH_DIR: tmpfs_options(limits)},
        "pids_limit": limits.pids,
        "memory": f"{limits.memory_mb}m",
        "memory_swap": f"{limits.memory_mb}m",  # = memory: no swap on top
        "cpus": limits.cpus,
        "ipc": "private",
        "command": ["--host", "0.0.0.0", "--port", str(PORT)],
    }


CONTAINER = container()


def docker_run_options(limits: ContainerLimits = DEFAULT_LIMITS) -> list[str]:
    """`docker run` flags (before the image name); add a --network of your choice (a private one; never a
    published port). The arguments after the image are container(limits)["command"]."""
    c = container(limits)
    opts = ["--user", c["user"], "--read-only", "--ipc", c["ipc"], "--pids-limit", str(c["pids_limit"]),
            "--memory", c["memory"], "--memory-swap", c["memory_swap"], "--cpus", str(c["cpus"])]
    for cap in c["cap_drop"]:
        opts += ["--cap-drop", cap]
    for opt in c["security_opt"]:
        opts += ["--security-opt", opt]
    for path, options in c["tmpfs"].items():
        opts += ["--tmpfs", f"{path}:{options}"]
    return opts


def kubernetes_pod_fields() -> dict:
    """Pod spec fields for the tool server's Deployment (pod security standard "restricted")."""
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False, "hostPID": False, "hostIPC": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }


def kubernetes_container_fields(limits: ContainerLimits = DEFAULT_LIMITS) -> dict:
    """Container fields (add name, image, ports, env): restricted securityContext, limits, the scratch mount."""
    return {
        "args": container(limits)["command"],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False,
                            "runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
        "resources": {"limits": {"memory": f"{limits.memory_mb}Mi", "cpu": str(limits.cpus)},
                      "requests": {"memory": f"{limits.memory_mb // 4}Mi", "cpu": "100m"}},
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH_DIR}],
    }


def kubernetes_volumes(limits: ContainerLimits = DEFAULT_LIMITS) -> list[dict]:
    return [{"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": f"{limits.scratch_mb}Mi"}}]
