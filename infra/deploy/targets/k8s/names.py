"""Kubernetes target: the stack's object names (a typed value), labels, and which Service clients use."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from infra import constants as C
from infra.deploy.targets.k8s import router as R

_DNS_LABEL = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


def dns_name(text: str, limit: int = 63) -> str:
    """A DNS-1035 label (Service names are the strictest): lowercase, digits, '-', starts with a letter."""
    name = _DNS_LABEL.sub("-", text.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = "g-" + name
    return name[:limit].rstrip("-")


def label_value(text: str) -> str:
    """A valid label value: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends."""
    return _LABEL_VALUE.sub("_", text)[:63].strip("_.-")


@dataclass(frozen=True)
class K8sNames:
    """The names of a stack's Kubernetes objects (one place, so a manifest never spells one itself)."""

    namespace: str
    app: str                 # the Deployment, the engine Service, the ServiceMonitor
    secret: str              # API key / HF token Secret
    pull_secret: str         # image pull Secret
    cache: str               # the cache claim (created or existing)
    pdb: str
    autoscaler: str          # the ScaledObject or HPA
    router_release: str      # the SMG Helm release
    router_service: str      # the router's Service (the chart names it)


def k8s_names(stack: str, spec) -> K8sNames:
    base = dns_name(f"{C.NAME_PREFIX}{stack}", 50)  # room for the suffixes below
    settings = spec.target_settings
    return K8sNames(
        namespace=settings.namespace,
        app=base,
        secret=f"{base}-secrets",
        pull_secret=f"{base}-pull",
        cache=settings.existing_claim or f"{base}-cache",
        pdb=base,
        autoscaler=base,
        router_release=R.release_name(base),
        router_service=R.router_service_name(base),
    )


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


def router_of(spec) -> str:
    return spec.target_settings.resolved_router


def front_service(stack: str, spec) -> str:
    """The Service clients use: the router's when there is one."""
    names = k8s_names(stack, spec)
    return names.router_service if router_of(spec) == "smg" else names.app


def cluster_url(stack: str, spec) -> str:
    names = k8s_names(stack, spec)
    return f"http://{front_service(stack, spec)}.{names.namespace}.svc.cluster.local:{spec.port}/v1"
