"""Autoscaling of the engine Deployment on the engines' queue depth (`kubernetes.autoscaling`). Pure.

The signal is the number of requests waiting for a batch slot (vLLM `vllm:num_requests_waiting`,
SGLang `sglang:num_queue_reqs`), summed over the stack's pods and compared as an AverageValue, so
the autoscaler scales on the per-pod average (GPU utilisation says nothing: a decoding engine is
always "busy"). Guard rails, because a new 120b pod takes minutes to load and reports no queue
until it serves: at most `scale_up_pods` per `scale_up_period_seconds`, a scale-up stabilization
window, and a long scale-down window.
"""
from __future__ import annotations

from typing import Any

KEDA_API_VERSION = "keda.sh/v1alpha1"
SERVICE_MONITOR_API_VERSION = "monitoring.coreos.com/v1"
QUEUE_METRIC = {"vllm": "vllm:num_requests_waiting", "sglang": "sglang:num_queue_reqs"}
POLLING_INTERVAL_S = 15


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal of value (PromQL strings escape as Go's do: backslash, the
    quote and control characters), so a label value can never close the matcher and add a query."""
    out = []
    for ch in value:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def queue_query(backend: str, namespace: str, served_model: str) -> str:
    metric = QUEUE_METRIC[backend]
    return f"sum({metric}{{namespace={promql_string(namespace)},model_name={promql_string(served_model)}}})"


def behavior(auto) -> dict[str, Any]:
    """autoscaling/v2 HorizontalPodAutoscalerBehavior (KEDA passes it to the HPA it makes)."""
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": auto.scale_up_stabilization_seconds,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": auto.scale_up_pods, "periodSeconds": auto.scale_up_period_seconds}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": auto.scale_down_stabilization_seconds,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": auto.scale_up_period_seconds}],
        },
    }


def scaled_object_spec(auto, *, deployment: str, backend: str, namespace: str, served_model: str) -> dict[str, Any]:
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicaCount": auto.min_replicas,
        "maxReplicaCount": auto.max_replicas,
        "pollingInterval": POLLING_INTERVAL_S,
        # Only for scaling to zero (which the target refuses without a router that holds requests).
        "cooldownPeriod": auto.scale_down_stabilization_seconds,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior(auto)}},
        "triggers": [{
            "type": "prometheus",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": auto.prometheus_address,
                "query": queue_query(backend, namespace, served_model),
                "threshold": str(auto.queue_depth_target),
            },
        }],
    }


def hpa_spec(auto, *, deployment: str, backend: str) -> dict[str, Any]:
    """autoscaling/v2 HPA on an External metric (served by e.g. prometheus-adapter, which must
    expose the engine's queue gauge under this name, summed over the stack's pods)."""
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicas": auto.min_replicas,
        "maxReplicas": auto.max_replicas,
        "metrics": [{
            "type": "External",
            "external": {
                "metric": {"name": QUEUE_METRIC[backend]},
                "target": {"type": "AverageValue", "averageValue": str(auto.queue_depth_target)},
            },
        }],
        "behavior": behavior(auto),
    }


def service_monitor_spec(auto, *, selector: dict[str, str], namespace: str, port_name: str,
                         key_secret: str | None = None) -> dict[str, Any]:
    """Prometheus Operator ServiceMonitor for the engine Service's /metrics. With an API key the engine
    answers /metrics only with it (vLLM: the plan's API-key guard, infra/launcher/authguard.py), so the
    scrape sends it as a bearer token read from the stack's own Secret (same namespace, key API_KEY):
    the value never appears in the ServiceMonitor."""
    endpoint: dict[str, Any] = {"port": port_name, "path": "/metrics", "scheme": "http",
                                "interval": auto.service_monitor_interval}
    if key_secret:
        endpoint["authorization"] = {"type": "Bearer", "credentials": {"name": key_secret, "key": "API_KEY"}}
    return {
        "selector": {"matchLabels": dict(selector)},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [endpoint],
    }
