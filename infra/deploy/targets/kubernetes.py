"""Kubernetes target: the scale-out path (issues 6, 13). N identical GPU pods behind a router.

This module is the target's pure face: `validate`, `endpoint` and the names/manifests it re-exports.
By job, in infra/deploy/targets/k8s/: names.py (the objects' names as a typed value, labels, the
front Service), validation.py (every refusal), manifests.py (the objects as plain dicts),
router.py (SMG values, pins), weights.py (cache, download Job), autoscaling.py (KEDA/HPA/
ServiceMonitor), security.py (security contexts, writable volumes, NetworkPolicies: every pod
non-root with a read-only root and no service-account token). kubernetes_pulumi.py registers them.

Resources (children of the component, default Kubernetes provider = the ambient kubeconfig /
`kubernetes:context` config):

    Namespace -> NetworkPolicies (engine, router, download Job: k8s/security.py) ->
    Secret (API key, HF token: Pulumi secrets, referenced by secretKeyRef, so the
    Deployment never carries a value) -> image pull Secret (dockerconfigjson built inside an
    apply from the registry password secret) -> cache claim (or an existing claim, or a node
    directory) -> weights download Job (shared cache) -> Deployment -> engine Service ->
    PodDisruptionBudget -> router (SMG Helm chart) -> optional KEDA ScaledObject or HPA, ServiceMonitor.

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

from infra.deploy.targets.endpoint import LOOPBACK_HOST, Endpoint
from infra.deploy.targets.k8s.autoscaling import KEDA_API_VERSION, QUEUE_METRIC
from infra.deploy.targets.k8s.manifests import (KUBERNETES_VERSION, deployment_spec, dockerconfigjson, download_job,
                                                hpa_spec, network_policies, port_forward_command, probes,
                                                router_values, scaled_object_spec)
from infra.deploy.targets.k8s.names import K8sNames, cluster_url, front_service, k8s_names, router_of
from infra.deploy.targets.k8s.validation import DATA_PARALLEL_OPTIONS, check_extra_args, validate

# Until the cloud assigns it; the deployed endpoint_url carries the real address.
LOAD_BALANCER_PLACEHOLDER = "<load-balancer-address>"


def build_host(spec) -> str | None:
    return None  # built where `pulumi up` runs and pushed; the cluster pulls it


def publishes_engine(spec) -> bool:
    """Whether the engine Service itself is the cloud load balancer (router: none)."""
    return spec.target_settings.service_type == "LoadBalancer" and router_of(spec) == "none"


def endpoint(spec, plan=None, stack: str | None = None) -> Endpoint:
    """Clients go to the front Service: the SMG router's when there is one, never the engine's
    behind it. From the deploying machine through `kubectl port-forward` (ClusterIP/NodePort, or
    the router's Service, which the chart owns), or the engine's load balancer with router: none."""
    stack = stack or spec.stack or "stack"
    front = front_service(stack, spec)
    what = (f"the SMG router Service {front}" if router_of(spec) == "smg" else f"the engine Service {front}")
    if publishes_engine(spec):
        return Endpoint(host=LOAD_BALANCER_PLACEHOLDER, port=spec.port, access="load-balancer",
                        reaches=f"The load balancer of {what} (`invoke outputs --stack {stack}` shows its address)",
                        cluster_url=cluster_url(stack, spec))
    return Endpoint(host=LOOPBACK_HOST, port=spec.port, access="port-forward", via=tuple(port_forward_command(stack, spec)),
                    reaches=what, cluster_url=cluster_url(stack, spec))


__all__ = ["validate", "check_extra_args", "endpoint", "build_host", "K8sNames", "k8s_names", "deployment_spec",
           "probes", "router_values", "network_policies", "download_job", "dockerconfigjson", "scaled_object_spec",
           "hpa_spec", "KUBERNETES_VERSION", "KEDA_API_VERSION", "QUEUE_METRIC", "DATA_PARALLEL_OPTIONS"]
