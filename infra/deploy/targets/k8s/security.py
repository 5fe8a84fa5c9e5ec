"""What the stack's pods may do (issue 24): security contexts, writable volumes, NetworkPolicies. Pure.

Pods and containers:
- every container runs as the image's engine user (uid/gid 10001, `gptoss`, made by
  infra/launcher/buildsetup.py), never root: runAsNonRoot, no privilege escalation, every capability
  dropped, seccomp RuntimeDefault, read-only root filesystem. The launcher starting as 10001 writes no
  file outside these writable mounts (read from infra/launcher/main.py and the Dockerfiles):
    /cache       weights and every compile cache (constants.CACHE_ENV points them all there; the claim or node dir)
    /tmp         SGLang's 0600 API-key file (main.secret_dir), the engines' IPC sockets and temp files
    /etc/gptoss  the rendered engine config (constants.CONFIG_DIR; the launcher falls back to /tmp if read-only)
    HOME         /home/gptoss: what the engines keep under ~ besides caches (vLLM's ~/.config/vllm)
    /dev/shm     NCCL and the engine workers' shared memory (already an in-memory emptyDir)
  and as non-root the launcher never starts sshd and never needs to drop privileges;
- `cache: node-local` mounts a hostPath, which the kubelet creates root-owned (fsGroup does not apply to
  hostPath): one init container chowns that one directory (not recursively) to 10001, as root with
  only CAP_CHOWN, and exits; the engine then writes to it as 10001;
- no pod of the stack calls the Kubernetes API, so none mounts a service-account token (the router's pods
  are the chart's, with their own ServiceAccount and Role: router.py).

NetworkPolicies (networking.k8s.io/v1), one per kind of pod, each listing both directions so whatever is
not listed is denied (the CNI must enforce NetworkPolicy: Calico, Cilium, the clouds' policy add-ons):
- engine pods: in from the router pods and the metrics scraper (kubernetes.network_policy) on the engine
  port; without a router, from the clients the Service type implies (ClusterIP: pods of the cluster;
  LoadBalancer/NodePort: anywhere). Out: nothing with the shared cache (the pods run offline); DNS and
  HTTPS to public addresses with a node-local cache (each node downloads the weights itself);
- router pods: in from the clients the Service type implies on the router port and from the scraper on
  its metrics port; out to the engine pods and the Kubernetes API (TCP 443/6443 to api_server_cidrs);
- the weights download Job: nothing in; out DNS and HTTPS to public addresses only (not the cluster's
  private ranges, nor 169.254.169.254, the clouds' instance metadata with its credentials).
The kubelet's probes and `kubectl port-forward` come from the node, which NetworkPolicy always allows.
"""
from __future__ import annotations

from typing import Any

from infra import constants as C

API_VERSION = "networking.k8s.io/v1"
ENGINE_HOME = f"/home/{C.ENGINE_USER}"  # the engine user's home in the images (infra/launcher/buildsetup.py)
# Writable mounts of a read-only root: volume name -> mount path (emptyDirs; the cache and /dev/shm are separate).
WRITABLE_DIRS = {"tmp": "/tmp", "config": C.CONFIG_DIR, "home": ENGINE_HOME}
CACHE_OWNER_CONTAINER = "cache-owner"
# The destinations a pod reaches on the internet: anything but private, shared (CGNAT), loopback and
# link-local ranges (the cluster's pods and services live in these; 169.254.169.254 is the instance metadata).
PRIVATE_V4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16")
PRIVATE_V6 = ("fc00::/7", "fe80::/10", "::1/128")
API_SERVER_PORTS = (443, 6443)  # the `kubernetes` Service's port and the API servers' usual listening port


# ----------------------------------------------------------------------------- security contexts

def pod_security_context(supplemental_groups: list[int] | None = None) -> dict[str, Any]:
    # fsGroup: a claim's files get the engine group (where the volume type supports ownership changes).
    out: dict[str, Any] = {"runAsUser": C.ENGINE_UID, "runAsGroup": C.ENGINE_UID, "runAsNonRoot": True,
                           "fsGroup": C.ENGINE_UID, "fsGroupChangePolicy": "OnRootMismatch",
                           "seccompProfile": {"type": "RuntimeDefault"}}
    if supplemental_groups:
        # AMD device nodes are group video/render (NVIDIA's are world-readable): the launcher, no longer root,
        # cannot add these groups itself as it did when it dropped privileges.
        out["supplementalGroups"] = list(supplemental_groups)
    return out


def container_security_context() -> dict[str, Any]:
    return {"runAsUser": C.ENGINE_UID, "runAsGroup": C.ENGINE_UID, "runAsNonRoot": True,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def writable_volumes() -> list[dict[str, Any]]:
    return [{"name": name, "emptyDir": {}} for name in WRITABLE_DIRS]


def writable_mounts() -> list[dict[str, Any]]:
    return [{"name": name, "mountPath": path} for name, path in WRITABLE_DIRS.items()]


def home_env() -> dict[str, str]:
    """HOME set explicitly: a runtime that does not read the image's passwd for runAsUser would give '/'."""
    return {"HOME": ENGINE_HOME}


def cache_owner_init_container(image: Any, volume: str) -> dict[str, Any]:
    """Root with CAP_CHOWN only: `chown 10001:10001` of the mounted node directory itself, nothing else."""
    return {
        "name": CACHE_OWNER_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["chown", f"{C.ENGINE_UID}:{C.ENGINE_UID}", C.CACHE_ROOT],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False,
                            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": volume, "mountPath": C.CACHE_ROOT}],
    }


# ----------------------------------------------------------------------------- NetworkPolicies

def _tcp(*ports: int | str) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def scraper_peer(policy) -> dict[str, Any]:
    """The metrics scraper: pods with these labels in that namespace (both must match)."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": policy.metrics_namespace}},
            "podSelector": {"matchLabels": dict(policy.metrics_pod_labels)}}


def client_peers(service_type: str) -> list[dict[str, Any]] | None:
    """Who the Service type lets in: ClusterIP, any pod of the cluster; otherwise anyone (None: no `from`)."""
    return [{"namespaceSelector": {}}] if service_type == "ClusterIP" else None


def _ingress(peers: list[dict[str, Any]] | None, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"ports": ports} if peers is None else {"from": peers, "ports": ports}


def internet_egress() -> list[dict[str, Any]]:
    """DNS (to the cluster's resolver, wherever it runs) and HTTPS to public addresses only."""
    return [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_V4)}},
                {"ipBlock": {"cidr": "::/0", "except": list(PRIVATE_V6)}}],
         "ports": _tcp(443)},
    ]


def engine_policy_spec(*, engine_pods: dict[str, str], engine_port: int, router_pods: dict[str, str] | None,
                       service_type: str, network, downloads_itself: bool) -> dict[str, Any]:
    ports = _tcp(engine_port)
    ingress = [_ingress([scraper_peer(network)], ports)]
    if router_pods is not None:
        ingress.insert(0, _ingress([{"podSelector": {"matchLabels": dict(router_pods)}}], ports))
    else:
        ingress.insert(0, _ingress(client_peers(service_type), ports))
    return {"podSelector": {"matchLabels": dict(engine_pods)}, "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress, "egress": internet_egress() if downloads_itself else []}


def router_policy_spec(*, router_pods: dict[str, str], engine_pods: dict[str, str], engine_port: int,
                       service_type: str, network) -> dict[str, Any]:
    # Named ports of the chart's router container (templates/deployment-router.yaml): http and metrics.
    return {"podSelector": {"matchLabels": dict(router_pods)}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [_ingress(client_peers(service_type), _tcp("http")),
                        _ingress([scraper_peer(network)], _tcp("metrics"))],
            "egress": [{"to": [{"podSelector": {"matchLabels": dict(engine_pods)}}], "ports": _tcp(engine_port)},
                       {"to": [{"ipBlock": {"cidr": c}} for c in network.api_server_cidrs],
                        "ports": _tcp(*API_SERVER_PORTS)}]}


def download_policy_spec(*, job_pods: dict[str, str]) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": dict(job_pods)}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [], "egress": internet_egress()}
