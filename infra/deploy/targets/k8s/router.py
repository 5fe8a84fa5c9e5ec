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
expands when it starts the container (the chart itself passes $(POD_IP) the same way). SMG 1.9.0
reads `--api-key` from its command line only.
"""
from __future__ import annotations

from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

SMG_CHART = "oci://ghcr.io/smg-project/charts/smg"
SMG_CHART_VERSION = "1.9.0"
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


class SmgValues(_Values):
    # Read by the chart's _helpers.tpl (smg.fullname); not listed in values.yaml.
    fullnameOverride: str  # noqa: N815
    router: Router


def release_name(app: str) -> str:
    # The chart truncates fullname to 45 characters; keep ours within that so names are predictable.
    return f"{app[:41].rstrip('-')}-smg"


def router_service_name(app: str) -> str:
    return f"{release_name(app)}-router"  # deploy/helm/smg/templates/service-router.yaml


def worker_selector(stack_label: str) -> dict[str, str]:
    return {WORKER_LABEL: stack_label}


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
        ),
    )


def check_smg_values(values: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when the values break the chart's schema."""
    jsonschema.Draft202012Validator(SMG_VALUES_SCHEMA).validate(values)


def values_dict(values: SmgValues) -> dict[str, Any]:
    out = values.model_dump(mode="json", by_alias=True)
    check_smg_values(out)
    return out
