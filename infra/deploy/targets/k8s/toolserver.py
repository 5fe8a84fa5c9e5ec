"""Kubernetes: the python tool server (issue 22) beside the engine pods. Pure specs + one register call.

A stack with `builtin_tools.python.enabled` (and no `address` of the user's own) gets, in its namespace:
- a Deployment whose pods meet the pod security "restricted" profile, with infra/toolserver/isolation.py's
  pod and container fields (non-root uid 10002, no privilege escalation, every capability dropped, seccomp
  RuntimeDefault, read-only root with an in-memory scratch volume, no service-account token, no service
  links, memory and CPU limits); `builtin_tools.python.runtime` as the pods' runtimeClassName (gVisor, Kata)
  when set. Its env is the per-call limits only: no secret, no volume but the scratch one. Its labels share
  nothing with the engine's selectors (the engine Service never picks it);
- a ClusterIP Service named infra.builtin_tools.k8s_service_name(stack), the plan's `--tool-server` address;
- NetworkPolicies: the tool pods take connections only from the stack's engine pods on the tool port and
  reach nothing (no egress at all, DNS included); the engine pods may reach the tool pods on that port and
  DNS (to resolve the Service name; their own policy allows them no egress with the shared cache).
Kubernetes has no per-pod process limit (the kubelet's podPidsLimit is per node): the tool server caps
the processes of each call itself.
"""
from __future__ import annotations

from typing import Any, Callable

import pulumi

from infra import builtin_tools as BT
from infra import constants as C
from infra.toolserver import isolation as I

COMPONENT = "python-tool"
PORT_NAME = "mcp"


def pod_labels(instance: str) -> dict[str, str]:
    """The tool pods' labels (instance: the stack's label value); disjoint from the engine's selectors."""
    return {"app.kubernetes.io/name": "gptoss-python-tool", "app.kubernetes.io/instance": instance,
            "app.kubernetes.io/component": COMPONENT, "app.kubernetes.io/part-of": C.PROJECT}


def selector(instance: str) -> dict[str, str]:
    return {k: v for k, v in pod_labels(instance).items() if k != "app.kubernetes.io/part-of"}


def deployment_spec(spec, instance: str, *, image: Any, pull_secret: str | None) -> dict[str, Any]:
    """The tool server's Deployment: isolation.py's pod and container fields (the one source), the stack's limits."""
    py = BT.python_tool(spec)
    limits = BT.container_limits(spec)
    probe = {"tcpSocket": {"port": PORT_NAME}, "periodSeconds": 10, "timeoutSeconds": 3}
    container = {
        "name": COMPONENT,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        **I.kubernetes_container_fields(limits),
        "ports": [{"name": PORT_NAME, "containerPort": I.PORT, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in sorted(BT.server_env(spec).items())],
        "readinessProbe": {**probe, "initialDelaySeconds": 2},
        "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 6},
    }
    pod: dict[str, Any] = {"containers": [container], **I.kubernetes_pod_fields(), "volumes": I.kubernetes_volumes(limits)}
    if py.runtime:
        pod["runtimeClassName"] = py.runtime
    if pull_secret:
        pod["imagePullSecrets"] = [{"name": pull_secret}]
    return {"replicas": 1, "selector": {"matchLabels": selector(instance)},
            "template": {"metadata": {"labels": pod_labels(instance)}, "spec": pod}}


def service_spec(instance: str) -> dict[str, Any]:
    return {"type": "ClusterIP", "selector": selector(instance),
            "ports": [{"name": PORT_NAME, "port": I.PORT, "targetPort": PORT_NAME, "protocol": "TCP"}]}


def _tcp_port() -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": I.PORT}]


def tool_policy_spec(instance: str, engine_pods: dict[str, str]) -> dict[str, Any]:
    """The tool pods: in from the engine pods on the tool port only; out nothing."""
    return {"podSelector": {"matchLabels": selector(instance)}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": dict(engine_pods)}}], "ports": _tcp_port()}],
            "egress": []}


def engine_egress_policy_spec(instance: str, engine_pods: dict[str, str]) -> dict[str, Any]:
    """Added to the engine pods' own policy (policies add up): out to the tool pods, and DNS for its name."""
    return {"podSelector": {"matchLabels": dict(engine_pods)}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": selector(instance)}}], "ports": _tcp_port()},
                       {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}


def objects(spec, instance: str, engine_pods: dict[str, str], *, image: Any,
            pull_secret: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, name, spec) of every object, policies first (no tool pod ever runs unfenced)."""
    name = BT.k8s_service_name(spec.stack)
    return [("NetworkPolicy", name, tool_policy_spec(instance, engine_pods)),
            ("NetworkPolicy", f"{name}-client", engine_egress_policy_spec(instance, engine_pods)),
            ("Deployment", name, deployment_spec(spec, instance, image=image, pull_secret=pull_secret)),
            ("Service", name, service_spec(instance))]


def register(ctx, *, instance: str, engine_pods: dict[str, str], meta: Callable[[str], dict],
             pull_secret: str | None, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """Register the tool server's objects (nothing without the tool); the engine Deployment waits on them."""
    if not BT.runs_tool_server(ctx.spec):
        return []
    import pulumi_kubernetes as k8s

    kinds = {"NetworkPolicy": k8s.networking.v1.NetworkPolicy, "Deployment": k8s.apps.v1.Deployment,
             "Service": k8s.core.v1.Service}
    out: list[pulumi.Resource] = []
    for kind, name, body in objects(ctx.spec, instance, engine_pods, image=ctx.toolserver_image_ref,
                                        pull_secret=pull_secret):
        metadata = {**meta(name), "labels": pod_labels(instance)}
        suffix = kind.lower() + ("-client" if name.endswith("-client") else "")
        out.append(kinds[kind](f"{ctx.stack}-pytool-{suffix}", metadata=metadata, spec=body,
                               opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=out[:2]))))
    return out
