"""Kubernetes target: the objects a stack registers, as plain camelCase dicts (the shape `kubectl`
shows), so tests check them with kubernetes-validate without Pulumi; kubernetes_pulumi.py wraps them
in pulumi-kubernetes resources. Focused parts: k8s/router.py, weights.py, autoscaling.py, security.py.
"""
from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

from infra import constants as C
from infra.deploy.targets.base import health_path, startup_grace_seconds
from infra.deploy.targets.k8s import autoscaling as A
from infra.deploy.targets.k8s import router as R
from infra.deploy.targets.k8s import security as S
from infra.deploy.targets.k8s import weights as W
from infra.deploy.targets.k8s.names import (engine_pod_selector, front_service, job_labels, k8s_names, label_value,
                                            pod_labels, router_of, selector_labels)

# The Kubernetes minor the manifests are written (and validated, tests/cloud) for.
KUBERNETES_VERSION = "1.33"
CONTAINER_NAME = "server"
PORT_NAME = "http"
PROBE_PERIOD_S = 10
# Margin on top of the startup grace for the Pulumi await of a rollout (image pull, scheduling).
ROLLOUT_MARGIN_S = 900


def gpus_per_pod(plan) -> int:
    return int(plan.tensor_parallel)


def replicas_wanted(spec) -> int:
    settings = spec.target_settings
    return settings.autoscaling.min_replicas if settings.autoscaling.enabled else settings.replicas


def model_revision(spec, plan) -> str:
    return spec.target_settings.revision_for(plan.weights or plan.model)


def termination_grace_seconds(spec) -> int:
    return spec.target_settings.drain.termination_grace_seconds


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
        "env": container_env(plan, names.secret, secret_vars, {**W.engine_env(settings), **S.home_env()}),
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
            W.cache_volume(settings, names.cache),
            # NCCL and the engines' workers share memory through /dev/shm (the image READMEs' --ipc=host).
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{settings.shm_size_gi}Gi"}},
            *S.writable_volumes(),
        ],
    }
    if settings.cache == "node-local":
        # The kubelet creates the node directory root-owned and fsGroup does not apply to hostPath.
        pod_spec["initContainers"] = [S.cache_owner_init_container(image, W.CACHE_VOLUME)]
    if with_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": names.pull_secret}]
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


def scaled_object_spec(stack: str, spec, plan) -> dict:
    """KEDA ScaledObject (keda.sh/v1alpha1) on the engine queue depth, through Prometheus."""
    return A.scaled_object_spec(spec.target_settings.autoscaling, deployment=k8s_names(stack, spec).app,
                                backend=plan.backend, namespace=spec.target_settings.namespace,
                                served_model=spec.served_model_name or spec.model)


def hpa_spec(stack: str, spec, plan) -> dict:
    return A.hpa_spec(spec.target_settings.autoscaling, deployment=k8s_names(stack, spec).app, backend=plan.backend)


def router_values(stack: str, spec, with_api_key: bool) -> dict:
    """The SMG chart values for this stack, checked against the chart's schema."""
    names = k8s_names(stack, spec)
    settings = spec.target_settings
    return R.values_dict(R.smg_values(
        app=names.app, namespace=names.namespace, stack_label=label_value(stack), engine_port=int(spec.port),
        service_type=settings.service_type, service_port=int(spec.port), policy=settings.router_policy,
        request_timeout_s=startup_grace_seconds(spec.model), secret_name=names.secret if with_api_key else None))


def download_job(stack: str, spec, plan, *, image: Any, secret_vars: list[str], with_pull_secret: bool) -> dict:
    names = k8s_names(stack, spec)
    return W.download_job_spec(
        weights=plan.weights or plan.model, revision=model_revision(spec, plan), image=image,
        claim_name=names.cache, secret_name=names.secret if secret_vars else None,
        has_hf_token="HF_TOKEN" in secret_vars, pull_secret=names.pull_secret if with_pull_secret else None,
        labels=job_labels(stack),
        deadline_s=startup_grace_seconds(spec.model) * 2)


def network_policies(stack: str, spec, plan) -> dict[str, dict]:
    """NetworkPolicy name -> spec for the stack's pods (what is not listed is denied; k8s/security.py)."""
    names = k8s_names(stack, spec)
    settings = spec.target_settings
    router = R.router_pod_labels(names.router_release) if router_of(spec) == "smg" else None
    engine = engine_pod_selector(stack)
    out = {f"{names.app}-engine": S.engine_policy_spec(
        engine_pods=engine, engine_port=int(plan.port), router_pods=router, service_type=settings.service_type,
        network=settings.network_policy, downloads_itself=not W.uses_download_job(settings))}
    if router is not None:
        out[f"{names.app}-router"] = S.router_policy_spec(
            router_pods=router, engine_pods=engine, engine_port=int(plan.port), service_type=settings.service_type,
            network=settings.network_policy)
    if W.uses_download_job(settings):
        out[f"{names.app}-weights"] = S.download_policy_spec(job_pods=job_labels(stack))
    return out


def dockerconfigjson(registry: str, username: str, password: str) -> str:
    """The kubernetes.io/dockerconfigjson payload. Only ever called inside an apply on a secret."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"username": username, "password": password, "auth": auth}}},
                      sort_keys=True, separators=(",", ":"))


def logs_command(stack: str, spec) -> list[str]:
    sel = ",".join(f"{k}={v}" for k, v in selector_labels(stack).items())
    n = spec.target_settings.max_pods
    return ["kubectl", "--namespace", spec.target_settings.namespace, "logs", "--selector", sel,
            "--container", CONTAINER_NAME, "--tail", "200", "--prefix", "--max-log-requests", str(max(n, 1))]


def port_forward_command(stack: str, spec) -> list[str]:
    port = str(spec.port)
    return ["kubectl", "--namespace", spec.target_settings.namespace, "port-forward",
            f"service/{front_service(stack, spec)}", f"{port}:{port}"]
