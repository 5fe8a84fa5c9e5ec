"""Kubernetes target: the scale-out path (issues 6, 13). N identical GPU pods behind a router.

Interface (same protocol as the Docker target, infra/deploy/targets/base.py):

    target = KubernetesTarget()
    target.validate(spec, plan)          # SpecError for anything impossible; registers nothing
    target.build_host(spec) -> None      # the image is pushed and pulled from the registry
    result = target.deploy(ctx)          # ctx: TargetContext (image_ref Output, secret_env Outputs,
                                         # registry password Output, labels, parent) -> TargetResult

The pure helpers (`k8s_names`, `deployment_spec`, `probes`, `autoscaler_query`, ...) build the
Kubernetes objects as plain camelCase dicts (the shape `kubectl` shows), so tests can check them
with kubernetes-validate without Pulumi; `deploy` wraps them in pulumi-kubernetes resources.

Resources (children of the component, default Kubernetes provider = the ambient kubeconfig /
`kubernetes:context` config):

    Namespace -> NetworkPolicies (engine, router, download Job: k8s/security.py) ->
    Secret (API key, HF token: Pulumi secrets, referenced by secretKeyRef, so the
    Deployment never carries a value) -> image pull Secret (dockerconfigjson built inside an
    apply from the registry password secret) -> cache claim (or an existing claim, or a node
    directory) -> weights download Job (shared cache) -> Deployment -> engine Service ->
    PodDisruptionBudget -> router (SMG Helm chart) -> optional KEDA ScaledObject or HPA, ServiceMonitor.

Focused parts live in infra/deploy/targets/k8s/: router.py (SMG values, pins), weights.py (cache, download
Job), autoscaling.py (KEDA/HPA/ServiceMonitor), security.py (security contexts, writable volumes,
NetworkPolicies: every pod non-root with a read-only root and no service-account token).

Choices, each for a reason:
- no `command`/`args`: the image's entrypoint is the launcher, which rebuilds this exact plan
  from GPTOSS_STACK_SPEC (in plan.env) with the GPUs it finds and writes the plan's files. Setting
  `command` to plan.argv would bypass it (no config files, the API key on the command line);
- GPUs per pod = the plan's tensor-parallel size; more replicas, not bigger pods, scale out, and
  never engine data parallelism (vLLM's couples gpt-oss's MoE ranks and hides per-rank state from
  the router; SGLang calls its own --dp-size "highly not recommended");
- with a router, clients (and endpoint_url) go through the router Service; the engine Service is
  ClusterIP, for the router, Prometheus and in-cluster debugging only;
- drain: preStop sleep (the router drops the pod when it sees its deletion), then SIGTERM; vLLM
  finishes in-flight requests for up to --shutdown-timeout, SGLang drains on SIGTERM by default;
  terminationGracePeriodSeconds = preStop + shutdown timeout + margin bounds both;
- rolling update maxSurge 0 / maxUnavailable 1: the old pod frees its GPUs before the new one
  is scheduled, so an update never needs a spare GPU node (one replica is briefly down);
- startupProbe allows STARTUP_GRACE_SECONDS[model] (120b: 30 min of download + load + compile)
  before liveness counts; liveness alone would kill a loading 120b pod;
- the Deployment's Pulumi await timeout covers that grace too (`pulumi.com/timeoutSeconds`);
- more than one pod shares one cache claim, so it is ReadWriteMany (a storage class is required);
  one pod uses ReadWriteOnce (works with every block storage class).
"""
from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import pulumi

from infra import constants as C
from infra.catalogue import router_pin
from infra.deploy.targets.base import TargetContext, TargetResult, health_path, startup_grace_seconds
from infra.deploy.targets.k8s import autoscaling as A
from infra.deploy.targets.k8s import router as R
from infra.deploy.targets.k8s import security as S
from infra.deploy.targets.k8s import toolserver
from infra.deploy.targets.k8s import weights as W
from infra.spec import SpecError

# The Kubernetes minor the manifests are written (and validated, tests/cloud) for.
KUBERNETES_VERSION = "1.33"
CONTAINER_NAME = "server"
PORT_NAME = "http"
KEDA_API_VERSION = A.KEDA_API_VERSION
QUEUE_METRIC = A.QUEUE_METRIC
# Engine data parallelism options (both engines' spellings): refused, scale out with replicas.
DATA_PARALLEL_OPTIONS = ("--data-parallel-size", "--data-parallel-size-local", "-dp", "--dp-size", "--dp")
# SGLang serves /metrics only with this flag; vLLM always does.
SGLANG_METRICS_FLAG = "--enable-metrics"
PROBE_PERIOD_S = 10
# Margin on top of the startup grace for the Pulumi await of a rollout (image pull, scheduling).
ROLLOUT_MARGIN_S = 900

_DNS_LABEL = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


def _err(spec, field: str, value: Any, problem: str, fix: str) -> SpecError:
    return SpecError(field, value, problem, fix, stack=spec.stack or None)


def dns_name(text: str, limit: int = 63) -> str:
    """A DNS-1035 label (Service names are the strictest): lowercase, digits, '-', starts with a letter."""
    name = _DNS_LABEL.sub("-", text.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = "g-" + name
    return name[:limit].rstrip("-")


def label_value(text: str) -> str:
    """A valid label value: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends."""
    return _LABEL_VALUE.sub("_", text)[:63].strip("_.-")


def k8s_names(stack: str, spec) -> dict[str, str]:
    base = dns_name(f"gptoss-{stack}", 50)  # room for the suffixes below
    settings = spec.target_settings
    return {
        "namespace": settings.namespace,
        "app": base,
        "secret": f"{base}-secrets",
        "pull_secret": f"{base}-pull",
        "cache": settings.existing_claim or f"{base}-cache",
        "pdb": base,
        "autoscaler": base,
        "router_release": R.release_name(base),
        "router_service": R.router_service_name(base),
    }


def selector_labels(stack: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "gptoss", "app.kubernetes.io/instance": label_value(stack)}


def object_labels(stack: str, plan) -> dict[str, str]:
    return {
        **selector_labels(stack),
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/part-of": C.PROJECT,
        "app.kubernetes.io/managed-by": "pulumi",
        "app.kubernetes.io/version": label_value(plan.image["engine_version"]),
        "gptoss.backend": plan.backend,
        "gptoss.gpu": label_value(plan.gpu),
        "gptoss.model": label_value(plan.model.split("/")[-1]),
    }


def pod_labels(stack: str, plan) -> dict[str, str]:
    """The engine pods' labels: the objects' labels plus the one the router discovers them by."""
    return {**object_labels(stack, plan), **R.worker_selector(label_value(stack))}


def engine_pod_selector(stack: str) -> dict[str, str]:
    """The engine pods only (the download Job's pods share selector_labels but not the worker label)."""
    return {**selector_labels(stack), **R.worker_selector(label_value(stack))}


def job_labels(stack: str) -> dict[str, str]:
    return {**selector_labels(stack), "app.kubernetes.io/component": "weights"}


def object_annotations(labels: Mapping[str, str]) -> dict[str, str]:
    """The component's labels (model ids contain '/', not allowed in label values) as annotations."""
    return {k: str(v) for k, v in sorted(labels.items())}


def gpus_per_pod(plan) -> int:
    return int(plan.tensor_parallel)


def replicas_wanted(spec) -> int:
    settings = spec.target_settings
    return settings.autoscaling.min_replicas if settings.autoscaling.enabled else settings.replicas


def router_of(spec) -> str:
    return spec.target_settings.resolved_router


def model_revision(spec, plan) -> str:
    return spec.target_settings.revision_for(plan.weights or plan.model)


def termination_grace_seconds(spec) -> int:
    return spec.target_settings.drain.termination_grace_seconds


# ----------------------------------------------------------------------------- validation

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
        if spec.backend == "sglang" and SGLANG_METRICS_FLAG not in spec.extra_args:
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
    for i, arg in enumerate(spec.extra_args):
        if arg.split("=", 1)[0] in DATA_PARALLEL_OPTIONS:
            raise _err(spec, f"extra_args[{i}]", arg,
                       "engine data parallelism couples gpt-oss's MoE ranks in one pod and hides per-rank state from the router",
                       "remove it and scale out with kubernetes.replicas (one pod per tensor-parallel group)")


# ----------------------------------------------------------------------------- object specs

def probes(spec, plan) -> dict[str, dict]:
    """startupProbe sized for model loading; readiness/liveness on /health once started."""
    grace = startup_grace_seconds(spec.model)
    get = {"path": health_path(), "port": PORT_NAME, "scheme": "HTTP"}
    return {
        "startupProbe": {"httpGet": dict(get), "periodSeconds": PROBE_PERIOD_S, "timeoutSeconds": 5,
                         "failureThreshold": math.ceil(grace / PROBE_PERIOD_S)},
        "readinessProbe": {"httpGet": dict(get), "periodSeconds": PROBE_PERIOD_S, "timeoutSeconds": 5,
                           "failureThreshold": 3, "successThreshold": 1},
        "livenessProbe": {"httpGet": dict(get), "periodSeconds": 30, "timeoutSeconds": 10, "failureThreshold": 3},
    }


def node_selector(spec) -> dict[str, str]:
    gpu = spec.gpu_info
    return {gpu.k8s_product_label: gpu.k8s_product, **spec.target_settings.node_selector}


def gpu_resources(spec, plan) -> dict[str, dict[str, str]]:
    gpu = spec.gpu_info
    n = str(gpus_per_pod(plan))
    # Extended resources: requests must equal limits; setting both keeps that explicit.
    return {"limits": {gpu.k8s_resource: n}, "requests": {gpu.k8s_resource: n}}


def container_env(plan, secret_name: str, secret_vars: list[str], extra: Mapping[str, str] | None = None) -> list[dict]:
    """The plan's env plus the target's (plain, sorted) then each secret by reference to the Secret."""
    env: list[dict] = [{"name": k, "value": v} for k, v in sorted({**plan.env, **(extra or {})}.items())]
    for var in sorted(secret_vars):
        env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": var}}})
    return env


def deployment_spec(stack: str, spec, plan, *, image: Any, secret_vars: list[str], with_pull_secret: bool) -> dict:
    settings = spec.target_settings
    names = k8s_names(stack, spec)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": int(plan.port), "protocol": "TCP"}],
        "env": container_env(plan, names["secret"], secret_vars, {**W.engine_env(settings), **S.home_env()}),
        "resources": gpu_resources(spec, plan),
        "securityContext": S.container_security_context(),
        "volumeMounts": [
            {"name": W.CACHE_VOLUME, "mountPath": C.CACHE_ROOT},
            {"name": "dshm", "mountPath": "/dev/shm"},
            *S.writable_mounts(),
        ],
        **probes(spec, plan),
    }
    if settings.drain.prestop_seconds:
        # The router and the Service endpoints drop the pod once it is terminating; keep serving
        # meanwhile, then SIGTERM starts the engine's own drain (sleep action: no shell in the pod).
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": settings.drain.prestop_seconds}}}
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "nodeSelector": node_selector(spec),
        "tolerations": [dict(t) for t in settings.tolerations],
        "terminationGracePeriodSeconds": termination_grace_seconds(spec),
        "automountServiceAccountToken": False,  # the engine never calls the Kubernetes API
        # The engine user from the start (no root, no sshd); the cache claim must be writable by its group.
        "securityContext": S.pod_security_context(settings.supplemental_groups),
        "volumes": [
            W.cache_volume(settings, names["cache"]),
            # NCCL and the engines' workers share memory through /dev/shm (the image READMEs' --ipc=host).
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{settings.shm_size_gi}Gi"}},
            *S.writable_volumes(),
        ],
    }
    if settings.cache == "node-local":
        # The kubelet creates the node directory root-owned and fsGroup does not apply to hostPath.
        pod_spec["initContainers"] = [S.cache_owner_init_container(image, W.CACHE_VOLUME)]
    if with_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": names["pull_secret"]}]
    out: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(stack)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
        # A 120b pod can take the whole startup grace to become ready; it is not "progressing" less.
        "progressDeadlineSeconds": startup_grace_seconds(spec.model) + ROLLOUT_MARGIN_S,
        "template": {
            "metadata": {
                "labels": pod_labels(stack, plan),
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(plan.port),
                    "prometheus.io/path": "/metrics",
                    "gptoss.model": plan.model,
                    "gptoss.model-revision": model_revision(spec, plan),
                },
            },
            "spec": pod_spec,
        },
    }
    if not settings.autoscaling.enabled:
        # With an autoscaler, it owns the replica count (a fixed value here would fight it).
        out["replicas"] = settings.replicas
    return out


def cache_claim_spec(spec) -> dict:
    return W.claim_spec(spec.target_settings)


def service_spec(stack: str, spec, plan) -> dict:
    """The engine Service: internal (ClusterIP) behind a router; the stack's service_type without one."""
    kind = "ClusterIP" if router_of(spec) != "none" else spec.target_settings.service_type
    return {
        "type": kind,
        "selector": selector_labels(stack),
        "ports": [{"name": PORT_NAME, "port": int(spec.port), "targetPort": PORT_NAME, "protocol": "TCP"}],
    }


def pdb_spec(stack: str) -> dict:
    # One pod at a time may be evicted (node drain), never the whole service at once; with one
    # replica this still lets a drain proceed (a PDB that blocks drains is worse than downtime).
    return {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(stack)}}


def autoscaler_query(spec, plan) -> str:
    return A.queue_query(plan.backend, spec.target_settings.namespace, spec.served_model_name or spec.model)


def scaled_object_spec(stack: str, spec, plan) -> dict:
    """KEDA ScaledObject (keda.sh/v1alpha1) on the engine queue depth, through Prometheus."""
    return A.scaled_object_spec(spec.target_settings.autoscaling, deployment=k8s_names(stack, spec)["app"],
                                backend=plan.backend, namespace=spec.target_settings.namespace,
                                served_model=spec.served_model_name or spec.model)


def hpa_spec(stack: str, spec, plan) -> dict:
    return A.hpa_spec(spec.target_settings.autoscaling, deployment=k8s_names(stack, spec)["app"], backend=plan.backend)


def router_values(stack: str, spec, with_api_key: bool) -> dict:
    """The SMG chart values for this stack, checked against the chart's schema."""
    names = k8s_names(stack, spec)
    settings = spec.target_settings
    return R.values_dict(R.smg_values(
        app=names["app"], namespace=names["namespace"], stack_label=label_value(stack), engine_port=int(spec.port),
        service_type=settings.service_type, service_port=int(spec.port), policy=settings.router_policy,
        request_timeout_s=startup_grace_seconds(spec.model), secret_name=names["secret"] if with_api_key else None))


def download_job(stack: str, spec, plan, *, image: Any, secret_vars: list[str], with_pull_secret: bool) -> dict:
    names = k8s_names(stack, spec)
    return W.download_job_spec(
        weights=plan.weights or plan.model, revision=model_revision(spec, plan), image=image,
        claim_name=names["cache"], secret_name=names["secret"] if secret_vars else None,
        has_hf_token="HF_TOKEN" in secret_vars, pull_secret=names["pull_secret"] if with_pull_secret else None,
        labels=job_labels(stack),
        deadline_s=startup_grace_seconds(spec.model) * 2)


def network_policies(stack: str, spec, plan) -> dict[str, dict]:
    """NetworkPolicy name -> spec for the stack's pods (what is not listed is denied; k8s/security.py)."""
    names = k8s_names(stack, spec)
    settings = spec.target_settings
    router = R.router_pod_labels(names["router_release"]) if router_of(spec) == "smg" else None
    engine = engine_pod_selector(stack)
    out = {f"{names['app']}-engine": S.engine_policy_spec(
        engine_pods=engine, engine_port=int(plan.port), router_pods=router, service_type=settings.service_type,
        network=settings.network_policy, downloads_itself=not W.uses_download_job(settings))}
    if router is not None:
        out[f"{names['app']}-router"] = S.router_policy_spec(
            router_pods=router, engine_pods=engine, engine_port=int(plan.port), service_type=settings.service_type,
            network=settings.network_policy)
    if W.uses_download_job(settings):
        out[f"{names['app']}-weights"] = S.download_policy_spec(job_pods=job_labels(stack))
    return out


def dockerconfigjson(registry: str, username: str, password: str) -> str:
    """The kubernetes.io/dockerconfigjson payload. Only ever called inside an apply on a secret."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"username": username, "password": password, "auth": auth}}},
                      sort_keys=True, separators=(",", ":"))


def front_service(stack: str, spec) -> str:
    """The Service clients use: the router's when there is one."""
    names = k8s_names(stack, spec)
    return names["router_service"] if router_of(spec) == "smg" else names["app"]


def logs_command(stack: str, spec) -> list[str]:
    sel = ",".join(f"{k}={v}" for k, v in selector_labels(stack).items())
    n = spec.target_settings.max_pods
    return ["kubectl", "--namespace", spec.target_settings.namespace, "logs", "--selector", sel,
            "--container", CONTAINER_NAME, "--tail", "200", "--prefix", "--max-log-requests", str(max(n, 1))]


def port_forward_command(stack: str, spec) -> list[str]:
    port = str(spec.port)
    return ["kubectl", "--namespace", spec.target_settings.namespace, "port-forward",
            f"service/{front_service(stack, spec)}", f"{port}:{port}"]


def cluster_url(stack: str, spec) -> str:
    names = k8s_names(stack, spec)
    return f"http://{front_service(stack, spec)}.{names['namespace']}.svc.cluster.local:{spec.port}/v1"


# ----------------------------------------------------------------------------- Pulumi

class KubernetesTarget:
    name = "kubernetes"

    def validate(self, spec, plan) -> None:
        validate(spec, plan)

    def build_host(self, spec) -> str | None:
        return None  # built where `pulumi up` runs and pushed; the cluster pulls it

    def deploy(self, ctx: TargetContext) -> TargetResult:
        import pulumi_kubernetes as k8s

        spec, plan, stack = ctx.spec, ctx.plan, ctx.stack
        settings = spec.target_settings
        names = k8s_names(stack, spec)
        labels = object_labels(stack, plan)
        annotations = object_annotations(ctx.labels)

        def meta(name: str, extra_annotations: Mapping[str, str] | None = None) -> dict:
            return {"name": name, "namespace": names["namespace"], "labels": labels,
                    "annotations": {**annotations, **(extra_annotations or {})}}

        namespace = k8s.core.v1.Namespace(
            f"{stack}-namespace",
            metadata={"name": names["namespace"], "labels": {"app.kubernetes.io/part-of": C.PROJECT}},
            # Other stacks may share the namespace; destroying one stack must not delete theirs.
            opts=pulumi.ResourceOptions(parent=ctx.parent, retain_on_delete=True),
        )
        in_ns = pulumi.ResourceOptions(parent=ctx.parent, depends_on=[namespace])

        secret_vars = sorted(ctx.secret_env)
        server_deps: list[pulumi.Resource] = [namespace]
        # Before any pod exists, so none ever runs unfenced.
        for policy_name, policy in network_policies(stack, spec, plan).items():
            server_deps.append(k8s.networking.v1.NetworkPolicy(
                f"{stack}-netpol-{policy_name.rsplit('-', 1)[-1]}", metadata=meta(policy_name), spec=policy, opts=in_ns))
        if secret_vars:
            secret = k8s.core.v1.Secret(
                f"{stack}-secrets",
                metadata=meta(names["secret"]),
                type="Opaque",
                # Each value is a Pulumi secret Output: encrypted in state, hidden in diffs.
                string_data={var: pulumi.Output.secret(ctx.secret_env[var]) for var in secret_vars},
                opts=in_ns,
            )
            server_deps.append(secret)

        with_pull_secret = ctx.registry_password is not None and bool(spec.image.registry)
        if with_pull_secret:
            registry_host = spec.image.registry.split("/")[0]
            username = ctx.registry_username or ""
            payload = pulumi.Output.secret(pulumi.Output.from_input(ctx.registry_password).apply(
                lambda password: dockerconfigjson(registry_host, username, password)))
            pull = k8s.core.v1.Secret(
                f"{stack}-pull-secret",
                metadata=meta(names["pull_secret"]),
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": payload},
                opts=in_ns,
            )
            server_deps.append(pull)

        if settings.cache == "shared" and not settings.existing_claim:
            claim = k8s.core.v1.PersistentVolumeClaim(
                f"{stack}-cache",
                metadata=meta(names["cache"]),
                spec=cache_claim_spec(spec),
                # The cache holds ~63 GB of weights and compile caches: keep it on destroy.
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=[namespace], retain_on_delete=True),
            )
            server_deps.append(claim)
        if W.uses_download_job(settings):
            revision = model_revision(spec, plan)
            timeout = startup_grace_seconds(spec.model) * 2
            job = k8s.batch.v1.Job(
                f"{stack}-weights",
                metadata=meta(W.job_name(names["app"], revision), {"pulumi.com/timeoutSeconds": str(timeout)}),
                spec=download_job(stack, spec, plan, image=ctx.image_ref, secret_vars=secret_vars,
                                  with_pull_secret=with_pull_secret),
                # Pulumi waits for the Job to complete: the engine pods start on a filled cache.
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=list(server_deps)),
            )
            server_deps.append(job)

        server_deps += toolserver.register(ctx, instance=label_value(stack), engine_pods=engine_pod_selector(stack), meta=meta,
                                           pull_secret=names["pull_secret"] if with_pull_secret else None, opts=in_ns)
        timeout = startup_grace_seconds(spec.model) + ROLLOUT_MARGIN_S
        deployment = k8s.apps.v1.Deployment(
            f"{stack}-server",
            metadata=meta(names["app"], {"pulumi.com/timeoutSeconds": str(timeout)}),
            spec=deployment_spec(stack, spec, plan, image=ctx.image_ref, secret_vars=secret_vars,
                                 with_pull_secret=with_pull_secret),
            opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=server_deps),
        )
        service = k8s.core.v1.Service(
            f"{stack}-service",
            metadata=meta(names["app"]),
            spec=service_spec(stack, spec, plan),
            opts=in_ns,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{stack}-pdb", metadata=meta(names["pdb"]), spec=pdb_spec(stack), opts=in_ns)

        front: pulumi.Resource = service
        if router_of(spec) == "smg":
            release, pinned = names["router_release"], R.router_image()

            def pin_image(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
                props = R.pin_router_image(args.type_, args.props, release, pinned)
                return None if props is None else pulumi.ResourceTransformResult(props, args.opts)

            front = k8s.helm.v4.Chart(
                f"{stack}-router",
                chart=R.chart_ref(),
                version=R.SMG_CHART_VERSION,
                namespace=names["namespace"],
                name=release,
                values=router_values(stack, spec, with_api_key="API_KEY" in secret_vars),
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=server_deps,
                                            transforms=[pin_image] if pinned else None),
            )

        auto = settings.autoscaling
        if auto.enabled and auto.mode == "keda":
            k8s.apiextensions.CustomResource(
                f"{stack}-scaler", api_version=KEDA_API_VERSION, kind="ScaledObject",
                metadata=meta(names["autoscaler"]), spec=scaled_object_spec(stack, spec, plan),
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=[deployment]))
        elif auto.enabled:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{stack}-hpa", metadata=meta(names["autoscaler"]), spec=hpa_spec(stack, spec, plan),
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=[deployment]))
        if auto.service_monitor:
            k8s.apiextensions.CustomResource(
                f"{stack}-metrics", api_version=A.SERVICE_MONITOR_API_VERSION, kind="ServiceMonitor",
                metadata=meta(names["app"]),
                spec=A.service_monitor_spec(auto, selector=selector_labels(stack), namespace=names["namespace"],
                                            port_name=PORT_NAME,
                                            key_secret=names["secret"] if "API_KEY" in secret_vars else None),
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=[service]))

        extra: dict[str, Any] = {
            "namespace": names["namespace"],
            "deployment": names["app"],
            "service": front_service(stack, spec),
            "engine_service": names["app"],
            "router": router_of(spec),
            "model_revision": model_revision(spec, plan),
            "cluster_endpoint_url": cluster_url(stack, spec),
            "replicas": replicas_wanted(spec),
            "gpus_per_pod": gpus_per_pod(plan),
        }
        if settings.service_type == "LoadBalancer" and router_of(spec) == "none":
            # The balancer's address once the cloud has assigned it.
            host = service.status.apply(_ingress_host)
        else:
            # ClusterIP/NodePort (or the router's Service, which the chart owns): through kubectl.
            host = "127.0.0.1"
            extra["tunnel_command"] = port_forward_command(stack, spec)
        return TargetResult(host=host, port=spec.port, logs_command=logs_command(stack, spec),
                            extra_outputs=extra, depends_on=[deployment, service, front])


def _ingress_host(status) -> str:
    try:
        ingress = status.load_balancer.ingress[0]
        return ingress.ip or ingress.hostname or "pending-load-balancer"
    except (AttributeError, IndexError, TypeError):
        return "pending-load-balancer"


def deploy(ctx: TargetContext) -> TargetResult:
    """Module-level entry: validate then register (for callers that do not use the class)."""
    validate(ctx.spec, ctx.plan)
    return KubernetesTarget().deploy(ctx)


__all__ = ["KubernetesTarget", "deploy", "validate", "deployment_spec", "probes", "k8s_names", "router_values",
           "network_policies",
           "download_job", "dockerconfigjson", "scaled_object_spec", "hpa_spec", "KUBERNETES_VERSION", "QUEUE_METRIC"]
