"""Where the engine pods find weights and compile caches (`kubernetes.cache`). Pure: object specs only.

- `shared` (default): one claim mounted by every pod. A download Job fills it once with the model at
  the pinned revision before the Deployment is created (Pulumi waits for the Job to complete), and
  the engine pods then run with HF_HUB_OFFLINE=1, so N pods never download N times or hit the Hub's
  rate limits; the compile caches (torch.compile, Triton, FlashInfer, CUDA) live on the same claim, so
  the second pod of a shape starts warm. More than one pod needs ReadWriteMany, which the default
  storage classes of the big clouds do not offer (the claim would stay Pending): a storage class is
  then required, named by the user.
- `node-local`: a directory on each GPU node (hostPath). The first pod on a node downloads the pinned
  revision; the Hub client's file locks make other pods on that node wait for it rather than fetch
  it again; caches persist across pod restarts on the node.
"""
from __future__ import annotations

from typing import Any

from infra import constants as C
from infra.deploy.targets.k8s import security as S

CACHE_VOLUME = "cache"
# Runs in the engine image (which has huggingface_hub); the repo and revision arrive as argv, never
# spliced into code or a shell line.
DOWNLOAD_SCRIPT = (
    "import sys\n"
    "from huggingface_hub import snapshot_download\n"
    "path = snapshot_download(repo_id=sys.argv[1], revision=sys.argv[2])\n"
    "print(f'weights ready: {sys.argv[1]}@{sys.argv[2]} in {path}', flush=True)\n"
)
DOWNLOAD_BACKOFF_LIMIT = 4


def rwx_needed(settings) -> bool:
    return settings.max_pods > 1


def uses_download_job(settings) -> bool:
    return settings.cache == "shared"


def cache_volume(settings, claim_name: str) -> dict[str, Any]:
    if settings.cache == "node-local":
        return {"name": CACHE_VOLUME, "hostPath": {"path": settings.node_cache_path, "type": "DirectoryOrCreate"}}
    return {"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}}


def claim_spec(settings) -> dict[str, Any]:
    out: dict[str, Any] = {
        "accessModes": ["ReadWriteMany" if rwx_needed(settings) else "ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{settings.cache_size_gi}Gi"}},
    }
    if settings.storage_class:
        out["storageClassName"] = settings.storage_class
    return out


def engine_env(settings) -> dict[str, str]:
    """Env the engine pods get on top of the plan's: offline once the Job has filled the claim."""
    return {"HF_HUB_OFFLINE": "1"} if uses_download_job(settings) else {}


def job_name(app: str, revision: str) -> str:
    # A Job's pod template is immutable: a new revision is a new Job (Pulumi replaces it).
    return f"{app[:48].rstrip('-')}-weights-{revision[:8].lower()}"


def download_job_spec(*, weights: str, revision: str, image: Any, claim_name: str, secret_name: str | None,
                      has_hf_token: bool, pull_secret: str | None, labels: dict[str, str],
                      deadline_s: int) -> dict[str, Any]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted({**C.CACHE_ENV, **S.home_env()}.items())]
    if has_hf_token and secret_name:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "HF_TOKEN"}}})
    container = {
        "name": "download",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        # Replaces the image's launcher entrypoint: this pod only fetches files.
        "command": ["python3", "-c", DOWNLOAD_SCRIPT, weights, revision],
        "env": env,
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "8Gi"}},
        "securityContext": S.container_security_context(),
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": C.CACHE_ROOT}, *S.writable_mounts()],
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [container],
        "securityContext": S.pod_security_context(),
        "volumes": [{"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}}, *S.writable_volumes()],
    }
    if pull_secret:
        pod["imagePullSecrets"] = [{"name": pull_secret}]
    return {
        "backoffLimit": DOWNLOAD_BACKOFF_LIMIT,
        "activeDeadlineSeconds": deadline_s,
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
