"""Kubernetes target: every refusal, before any resource is registered (SpecError naming the field)."""
from __future__ import annotations

from typing import Any

from infra import constants as C
from infra.catalogue import router_pin
from infra.deploy.targets.k8s import router as R
from infra.deploy.targets.k8s import weights as W
from infra.deploy.targets.k8s.autoscaling import QUEUE_METRIC
from infra.deploy.targets.k8s.manifests import gpus_per_pod, model_revision
from infra.deploy.targets.k8s.names import router_of
from infra.engine_command import find_options
from infra.spec import SpecError

# Engine data parallelism options, the engines' canonical names: refused, scale out with replicas. Their
# aliases (vLLM's -dp/-dpl, SGLang's --data-parallel-size) come from the parser snapshots (find_options).
DATA_PARALLEL_OPTIONS = ("--data-parallel-size", "--data-parallel-size-local", "--dp-size")
# SGLang serves /metrics only with this flag; vLLM always does.
SGLANG_METRICS_FLAG = "--enable-metrics"


def _err(spec, field: str, value: Any, problem: str, fix: str) -> SpecError:
    return SpecError(field, value, problem, fix, stack=spec.stack or None)


def validate(spec, plan) -> None:
    """Every refusal of this target, before any resource. Raises SpecError naming the field."""
    settings = spec.target_settings
    gpu = spec.gpu_info
    if gpu is None:
        raise _err(spec, "gpu", spec.gpu, "the kubernetes target schedules pods by GPU product label and count, so the GPU must be named",
                   "set gpu to the cluster's GPU (e.g. h100-80gb); `auto` only works on a single Docker host")
    tp = gpus_per_pod(plan)
    per_pod = max(int(plan.gpu_count), tp)
    if per_pod > gpu.max_per_node:
        field = "gpu_count" if int(plan.gpu_count) >= tp else "tensor_parallel"
        raise _err(spec, field, per_pod,
                   f"asks for {per_pod} {gpu.name} GPUs in one pod, but one node offers at most {gpu.max_per_node}",
                   f"use at most {gpu.max_per_node} GPUs per pod (gpu_count = tensor_parallel) and scale out with kubernetes.replicas")
    if gpu.vendor == "amd" and not settings.supplemental_groups:
        raise _err(spec, "kubernetes.supplemental_groups", [],
                   f"{gpu.name}'s device nodes (/dev/kfd, /dev/dri) belong to the nodes' video and render groups, and the "
                   f"engine pods run as uid {C.ENGINE_UID}, not root",
                   "set kubernetes.supplemental_groups to the numeric gids of `getent group video render` on the GPU nodes")
    if int(plan.gpu_count) != tp:
        raise _err(spec, "gpu_count", plan.gpu_count,
                   f"on kubernetes gpu_count is the GPUs of one pod and must equal tensor_parallel ({tp}); "
                   "the extra GPUs would sit idle in every pod",
                   f"set gpu_count: {tp} and scale out with kubernetes.replicas")
    auto = settings.autoscaling
    if auto.enabled:
        if auto.min_replicas > auto.max_replicas:
            raise _err(spec, "kubernetes.autoscaling.min_replicas", auto.min_replicas,
                       f"is above max_replicas ({auto.max_replicas})", "lower min_replicas or raise max_replicas")
        if spec.backend == "sglang" and not find_options(spec.backend, spec.extra_args, (SGLANG_METRICS_FLAG,)):
            raise _err(spec, "kubernetes.autoscaling.enabled", True,
                       f"SGLang serves the queue-depth metric ({QUEUE_METRIC['sglang']}) only with {SGLANG_METRICS_FLAG}",
                       f"add `{SGLANG_METRICS_FLAG}` to extra_args, or turn autoscaling off")
        if auto.min_replicas == 0 and router_of(spec) not in R.ROUTERS_HOLDING_REQUESTS:
            raise _err(spec, "kubernetes.autoscaling.min_replicas", 0,
                       f"scale to zero drops every request that arrives while no pod is up (a 120b pod takes minutes to load), "
                       f"and the router here ({router_of(spec)}) does not hold requests meanwhile",
                       "use min_replicas: 1 or more")
    if settings.existing_claim and settings.storage_class:
        raise _err(spec, "kubernetes.storage_class", settings.storage_class,
                   f"is ignored because kubernetes.existing_claim ({settings.existing_claim}) is used as the cache",
                   "remove storage_class, or existing_claim to let the stack create the claim")
    if settings.cache == "node-local":
        for field in ("existing_claim", "storage_class"):
            if getattr(settings, field):
                raise _err(spec, f"kubernetes.{field}", getattr(settings, field),
                           "is ignored with kubernetes.cache: node-local (each node keeps its own cache directory)",
                           f"remove {field}, or use cache: shared")
    elif W.rwx_needed(settings) and not settings.existing_claim and not settings.storage_class:
        raise _err(spec, "kubernetes.storage_class", None,
                   f"{settings.max_pods} pods share one cache claim, which must be ReadWriteMany; the default storage classes "
                   "of the big clouds offer only ReadWriteOnce, so the claim would stay Pending",
                   "set kubernetes.storage_class to a ReadWriteMany class (EFS: efs-sc, Filestore: standard-rwx, "
                   "Azure Files: azurefile-csi, NFS/CephFS), or existing_claim, or use cache: node-local")
    router = router_of(spec)
    if router == "none" and settings.service_type != "ClusterIP" and not settings.allow_public_engine:
        raise _err(spec, "kubernetes.service_type", settings.service_type,
                   "with router: none this exposes the engine pods themselves outside the cluster: what an engine answers "
                   "without the key (SGLang's /metrics and /v1/realtime websocket, /health) and its whole HTTP server "
                   "face the internet with no router in front",
                   "use router: smg (the router checks the key on every route), service_type: ClusterIP with "
                   "`kubectl port-forward`, or set kubernetes.allow_public_engine: true if that is meant")
    if router == "smg" and not spec.image.allow_unpinned_base:
        for name in ("smg-chart", "smg"):
            pin = router_pin(name)
            if not pin["digest"]:
                raise _err(spec, "kubernetes.router", router,
                           f"{pin['image']}:{pin['tag']} has no digest in infra/catalogue/images.lock.yaml, and an unpinned "
                           "router is not allowed (the tag could be moved to other code)",
                           "run `invoke lock-images` and commit infra/catalogue/images.lock.yaml "
                           "(or image.allow_unpinned_base: true for a test cluster)")
    if router not in R.ROUTERS_BUILT:
        raise _err(spec, "kubernetes.router", router,
                   "the llm-d router (InferencePool + endpoint picker) is not deployed by this version yet",
                   "use router: smg (cache-aware, routes vLLM and SGLang alike) or router: none")
    if not model_revision(spec, plan):
        raise _err(spec, "kubernetes.model_revision", None,
                   f"no pinned revision is known for {plan.weights or plan.model}, so pods could load different bytes",
                   "set kubernetes.model_revision to a commit of that Hugging Face repo")
    check_extra_args(spec)


def check_extra_args(spec) -> None:
    """No engine data parallelism in extra_args, in any spelling the engine accepts (the one option parser)."""
    for opt in find_options(spec.backend, spec.extra_args, DATA_PARALLEL_OPTIONS):
        raise _err(spec, f"extra_args[{opt.index}]", opt.tokens[0],
                   "engine data parallelism couples gpt-oss's MoE ranks in one pod and hides per-rank state from the router",
                   "remove it and scale out with kubernetes.replicas (one pod per tensor-parallel group)")
