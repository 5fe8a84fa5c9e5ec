"""The router in front of the engine pods (`kubernetes.router`). Pure: values and names, no Pulumi.

SMG, the SGLang team's model gateway (github.com/smg-project/smg), is installed from its Helm chart
`oci://ghcr.io/smg-project/charts/smg` at SMG_CHART_VERSION (the chart the project's release workflow
pushes for tag v1.9.0: deploy/helm/smg). It finds the engine pods itself through the Kubernetes API
(`--service-discovery --selector <label>=<value>`, one `key=value` per selector item, which is why
the engine pods carry one label made for it, WORKER_LABEL), sends them work by the cache-aware
policy by default, drops a pod from its pool as soon as the pod has a deletion timestamp (then
keeps it draining for `--drain-settle-secs`, 5 s by default), and forwards the client's bearer token to the engine (or its
own `--api-key` when the client sent none).

`SmgValues` types the chart values this target sets, field for field as the chart's values.yaml
names them (extra keys are refused, so a typo fails here, not silently in the chart), and
`check_smg_values` applies the constraints of the chart's own values.schema.json (policy choices,
port ranges, replicas >= 1), restated in SMG_VALUES_SCHEMA.

The API key never enters the values (which Pulumi stores in state): the router container gets it
from the stack's Secret as an env var, and its `--api-key` argument is `$(VAR)`, which the kubelet
expands when it starts the container (the chart itself passes $(POD_IP) the same way). So the pod
spec holds only `$(GPTOSS_ROUTER_API_KEY)`, but the running router's argv (/proc/<pid>/cmdline,
readable inside the router pod) holds the key: SMG 1.9.0 reads `--api-key` from its command line
only, and so does the newest SMG checked (smg-project/smg main at f8daa88, 2026-08-22: the Python
launcher's argparse `--api-key` and the Rust CLI's `#[arg(long)] api_key` have no env or file form;
only `--control-plane-api-keys` has an env var, CONTROL_PLANE_API_KEYS). Switch to an env/file form
once SMG has one.

Pins: the chart and the router image are rows of infra/catalogue/images.yaml (`router:`) locked by
digest in images.lock.yaml (`invoke lock-images`). The chart is fetched as `oci://...smg@sha256:...`
(Helm >= 3.18 installs OCI charts by digest); its router image (`registry/repository:tag`, and the tag
also becomes a label value, so it cannot carry a digest through the values) is replaced in the
rendered Deployment by `pin_router_image`, a Pulumi transform.

Hardening through the values: the router container's securityContext (non-root uid 65532, the smg
user of SMG's docker/Dockerfile; no privilege escalation, no capabilities, read-only root with the
chart's /tmp emptyDir, seccomp RuntimeDefault). The chart gives the router its own ServiceAccount and
a Role (pods get/list/watch in the namespace) when service discovery is on; the engine pods mount no
token at all.

Measured with the real router (smg 1.9.0 from PyPI, tests/router): a worker marked Failed is never
health-checked again (worker/manager.rs `compute_next_status`: NotReady after 3 failed checks, Failed,
a terminal state, after 9 more; about 120 s at the rendered 10 s interval). A pod that is replaced is
discovered anew and used; an engine container that restarts inside the same pod and takes longer than
that to load (every 120b start) is probably not routed to again until the pod is replaced. Not
changed here: raising the thresholds also slows the detection of a dead pod. The drain order the
Deployment renders (deletion -> the router drops the pod -> preStop pause -> SIGTERM) is required: a
SIGTERM alone left vLLM 0.32 accepting new requests while it drained, and they hung.
"""
from __future__ import annotations

import copy
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

from infra.catalogue import router_pin

SMG_CHART = "oci://" + router_pin("smg-chart")["image"]
SMG_CHART_VERSION = router_pin("smg-chart")["tag"]
# The chart's router pods (templates/deployment-router.yaml: smg.selectorLabels + component) and container.
CHART_NAME = "smg"
ROUTER_CONTAINER = "router"
# docker/Dockerfile of SMG 1.9.0: `useradd --system --uid 65532 smg`, `USER smg` (its group id is not fixed).
ROUTER_UID = 65532
# The label SMG selects engine pods by (value: the stack), on the engine pods only: the chart's own
# router pods carry app.kubernetes.io/instance=<release>, so that label cannot be the selector.
WORKER_LABEL = "gptoss.worker-of"
ROUTER_API_KEY_ENV = "GPTOSS_ROUTER_API_KEY"
# Routers known to hold a request while no engine pod is up (what scale-to-zero needs). Neither SMG
# 1.9.0 (its queue is for its concurrency limit, not for an empty pool) nor llm-d is listed, so
# min_replicas stays >= 1; add a router here only once that behaviour is checked.
ROUTERS_HOLDING_REQUESTS: frozenset[str] = frozenset()
# Routers this version deploys (the spec accepts llm-d so stacks can name it; it is refused for now).
ROUTERS_BUILT = ("smg", "none")

# The constraints of the chart's values.schema.json (smg v1.9.0), restated for what we set.
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
SMG_VALUES_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "router": {
            "type": "object",
            "properties": {
                "policy": {"type": "string",
                           "enum": ["cache_aware", "round_robin", "power_of_two", "manual", "random", "prefix_hash"]},
                "port": _PORT,
                "replicas": {"type": "integer", "minimum": 1},
                "service": {"type": "object", "properties": {"port": _PORT}},
                "metrics": {"type": "object", "properties": {"port": _PORT}},
            },
        },
    },
}


class _Values(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ServiceDiscovery(_Values):
    enabled: bool = True
    clusterWide: bool = False  # noqa: N815 - the chart's key names
    namespace: str
    selector: str
    port: int


class RouterService(_Values):
    type: Literal["ClusterIP", "LoadBalancer", "NodePort"]
    port: int


class HealthCheck(_Values):
    enabled: bool = True
    failureThreshold: int = 3  # noqa: N815
    successThreshold: int = 2  # noqa: N815
    timeoutSecs: int = 5  # noqa: N815
    intervalSecs: int = 10  # noqa: N815
    endpoint: str = "/health"


class Router(_Values):
    replicas: int = 1
    policy: str
    serviceDiscovery: ServiceDiscovery  # noqa: N815
    service: RouterService
    healthCheck: HealthCheck = Field(default_factory=HealthCheck)  # noqa: N815
    requestTimeoutSecs: int  # noqa: N815
    podLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    extraArgs: list[str] = Field(default_factory=list)  # noqa: N815
    extraEnv: list[dict[str, Any]] = Field(default_factory=list)  # noqa: N815
    securityContext: dict[str, Any] = Field(default_factory=dict)  # noqa: N815


class ServiceAccount(_Values):
    # The router's own ServiceAccount; with service discovery on, the chart binds it to a Role that may only
    # get/list/watch pods in this namespace (templates/role.yaml, rolebinding.yaml; clusterWide stays false).
    create: bool = True


class SmgValues(_Values):
    # Read by the chart's _helpers.tpl (smg.fullname); not listed in values.yaml.
    fullnameOverride: str  # noqa: N815
    router: Router
    serviceAccount: ServiceAccount = Field(default_factory=ServiceAccount)  # noqa: N815


def release_name(app: str) -> str:
    # The chart truncates fullname to 45 characters; keep ours within that so names are predictable.
    return f"{app[:41].rstrip('-')}-smg"


def router_service_name(app: str) -> str:
    return f"{release_name(app)}-router"  # deploy/helm/smg/templates/service-router.yaml


def worker_selector(stack_label: str) -> dict[str, str]:
    return {WORKER_LABEL: stack_label}


def router_pod_labels(release: str) -> dict[str, str]:
    """The labels the chart gives the router pods (what its router Service selects)."""
    return {"app.kubernetes.io/name": CHART_NAME, "app.kubernetes.io/instance": release,
            "app.kubernetes.io/component": "router"}


def router_security_context() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": ROUTER_UID, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def chart_ref() -> str:
    """The chart as Helm fetches it: by digest once locked, else by the version alone."""
    pin = router_pin("smg-chart")
    return f"{SMG_CHART}@{pin['digest']}" if pin["digest"] else SMG_CHART


def router_image() -> str | None:
    """image:tag@digest of the router, or None while unlocked (the chart's own tag is used then)."""
    pin = router_pin("smg")
    return f"{pin['image']}:{pin['tag']}@{pin['digest']}" if pin["digest"] else None


def pin_router_image(kind: str, props: dict[str, Any], release: str, image: str) -> dict[str, Any] | None:
    """The chart's router Deployment with its router container's image replaced by `image`; None for
    any other object (a Pulumi transform's answer: None leaves the object as the chart rendered it)."""
    if kind != "kubernetes:apps/v1:Deployment" or (props.get("metadata") or {}).get("name") != f"{release}-router":
        return None
    out = copy.deepcopy(props)
    containers = out["spec"]["template"]["spec"]["containers"]
    for container in containers:
        if container.get("name") == ROUTER_CONTAINER:
            container["image"] = image
            return out
    return None


def smg_values(*, app: str, namespace: str, stack_label: str, engine_port: int, service_type: str,
               service_port: int, policy: str, request_timeout_s: int, secret_name: str | None) -> SmgValues:
    """The chart values: discovery of this stack's engine pods, policy, Service, API key by reference."""
    extra_args: list[str] = []
    extra_env: list[dict[str, Any]] = []
    if secret_name is not None:
        extra_env.append({"name": ROUTER_API_KEY_ENV,
                          "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "API_KEY"}}})
        extra_args += ["--api-key", f"$({ROUTER_API_KEY_ENV})"]
    (key, value), = worker_selector(stack_label).items()
    return SmgValues(
        fullnameOverride=release_name(app),
        router=Router(
            policy=policy,
            serviceDiscovery=ServiceDiscovery(namespace=namespace, selector=f"{key}={value}", port=engine_port),
            service=RouterService(type=service_type, port=service_port),
            requestTimeoutSecs=request_timeout_s,
            podLabels={"app.kubernetes.io/part-of": "gptoss-stacks"},
            extraArgs=extra_args,
            extraEnv=extra_env,
            securityContext=router_security_context(),
        ),
    )


def check_smg_values(values: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when the values break the chart's schema."""
    jsonschema.Draft202012Validator(SMG_VALUES_SCHEMA).validate(values)


def values_dict(values: SmgValues) -> dict[str, Any]:
    out = values.model_dump(mode="json", by_alias=True)
    check_smg_values(out)
    return out
