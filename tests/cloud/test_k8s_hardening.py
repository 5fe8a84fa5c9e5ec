"""Kubernetes locked down (issue 24): each finding on the Kubernetes target, on the objects the real Pulumi
program registers (recording mock engine; kubernetes-validate --strict for 1.33), as a person auditing the
cluster would check them:

- NetworkPolicies: who may reach which pod, evaluated with NetworkPolicy's own rules (below, `admits`);
- security contexts: no root, no escalation, no capabilities, seccomp, read-only root with writable
  emptyDirs for exactly what the launcher and engines write, no service-account token;
- node-local cache: an allow-listed node directory, chowned by an init container with CAP_CHOWN only;
- SSH refused on kubernetes; a public engine Service without a router refused unless acknowledged;
- PromQL: the KEDA query parsed as Prometheus parses it (promql-parser), with a hostile model name;
- pins: the SMG chart and router image locked by digest through `invoke lock-images`' resolver.
"""
from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

import httpx
import kubernetes_validate
import promql_parser
import pytest
import yaml
from pulumi_harness import K8S_SENTINELS, K8S_STACKS, SENTINELS, manifest, refused, run_stack, run_stacks

from infra import constants as C
import pulumi_harness as T
from infra.deploy.targets import kubernetes as K
from infra.deploy.targets.k8s import autoscaling as A
from infra.deploy.targets.k8s import router as R
from infra.spec import load_spec
from infra.stackfile import read_stack_config

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CHART = "kubernetes:helm.sh/v4:Chart"
NAMESPACE = "gptoss"
HOSTILE_MODEL = 'm"} or vector(1000) #'
CACHE_OWNER = "cache-owner"  # the node-local cache's init container


def router_pin(name: str) -> dict:
    from infra.catalogue import router_pin as pin  # imported late: main before issue 24 has no router pins

    return pin(name)


@pytest.fixture(scope="module")
def runs():
    return run_stacks(K8S_STACKS)


def kube(**settings) -> dict:
    """Overrides for k8s-h100-vllm's kubernetes section (an override replaces the whole section)."""
    return {"kubernetes": {**read_stack_config("k8s-h100-vllm")["kubernetes"], **settings}}


def validate(obj: dict) -> None:
    assert kubernetes_validate.validate(obj, K.KUBERNETES_VERSION, strict=True)


def policies(run) -> dict[str, dict]:
    out = {}
    for res in run.of_type(POLICY):
        obj = manifest(res)
        validate(obj)
        out[obj["metadata"]["name"].rsplit("-", 1)[-1]] = obj["spec"]
    return out


# ----------------------------------------------------------------------------- NetworkPolicy semantics

def _labels_match(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # the policies here use matchLabels only
    return selector.get("matchLabels", {}).items() <= labels.items()


def _peer_matches(peer: dict, pod: dict, policy_ns: str) -> bool:
    """One `from`/`to` entry against a pod {'labels', 'namespace', 'ns_labels', 'ip'} (NetworkPolicy rules:
    podSelector alone = this namespace; namespaceSelector alone = every pod there; both = both)."""
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        ip = ipaddress.ip_address(pod["ip"])
        inside = lambda cidr: ip.version == ipaddress.ip_network(cidr).version and ip in ipaddress.ip_network(cidr)  # noqa: E731
        return inside(block["cidr"]) and not any(inside(c) for c in block.get("except", []))
    if pod["namespace"] is None:
        return False  # selectors pick pods; an address outside the cluster matches only an ipBlock
    ns_ok = (_labels_match(peer["namespaceSelector"], pod["ns_labels"]) if "namespaceSelector" in peer
             else pod["namespace"] == policy_ns)
    return ns_ok and (_labels_match(peer["podSelector"], pod["labels"]) if "podSelector" in peer else True)


def admits(spec: dict, direction: str, pod: dict, port: int | str, protocol: str = "TCP", policy_ns: str = NAMESPACE) -> bool:
    """Whether this policy lets `pod` in (ingress) or out to `pod` (egress) on port/protocol."""
    assert direction.capitalize() in spec["policyTypes"]
    for rule in spec.get(direction, []):
        peers = rule.get("from" if direction == "ingress" else "to")
        ports = rule.get("ports")
        if ports is not None and not any(p.get("protocol", "TCP") == protocol and p.get("port") == port for p in ports):
            continue
        if peers is None or any(_peer_matches(peer, pod, policy_ns) for peer in peers):
            return True
    return False


def pod(labels: dict, namespace: str = NAMESPACE, ip: str = "10.1.2.3") -> dict:
    return {"labels": labels, "namespace": namespace, "ns_labels": {"kubernetes.io/metadata.name": namespace}, "ip": ip}


def router_labels_from_chart(run) -> dict[str, str]:
    """The labels the SMG chart (v1.9.0 templates/_helpers.tpl smg.selectorLabels + deployment-router.yaml)
    gives the router pods of the release this program installs."""
    release = run.one(CHART).plain("name")
    return {"app.kubernetes.io/name": "smg", "app.kubernetes.io/instance": release, "app.kubernetes.io/component": "router"}


PROMETHEUS = pod({"app.kubernetes.io/name": "prometheus"}, "monitoring")
PROMETHEUS_ELSEWHERE = pod({"app.kubernetes.io/name": "prometheus"}, "tenant-b")
NEIGHBOUR = pod({"app": "anything"})  # any other pod of the stack's namespace
PUBLIC = {"labels": {}, "namespace": None, "ns_labels": {}, "ip": "93.184.215.14"}
METADATA = {"labels": {}, "namespace": None, "ns_labels": {}, "ip": "169.254.169.254"}
IN_CLUSTER = {"labels": {}, "namespace": None, "ns_labels": {}, "ip": "10.96.0.1"}


@pytest.mark.parametrize("name", K8S_STACKS)
def test_engine_pods_take_requests_only_from_the_router_and_the_scraper(runs, name):
    run = runs[name]
    found = policies(run)
    assert set(found) == {"engine", "router", "weights"}
    engine = found["engine"]
    engine_labels = manifest(run.one(DEPLOYMENT))["spec"]["template"]["metadata"]["labels"]
    job_labels = manifest(run.one(JOB))["spec"]["template"]["metadata"]["labels"]
    assert _labels_match(engine["podSelector"], engine_labels) and not _labels_match(engine["podSelector"], job_labels)
    router = pod(router_labels_from_chart(run))
    assert admits(engine, "ingress", router, 8000)
    assert admits(engine, "ingress", PROMETHEUS, 8000)
    for stranger in (NEIGHBOUR, PROMETHEUS_ELSEWHERE, PUBLIC, pod(engine_labels)):
        assert not admits(engine, "ingress", stranger, 8000), stranger
    assert not admits(engine, "ingress", router, 22)
    # Shared cache: the pods run offline, so nothing goes out (not even DNS).
    assert engine["egress"] == []


@pytest.mark.parametrize("name", K8S_STACKS)
def test_router_pods_reach_only_the_engines_and_the_api_server(runs, name):
    run = runs[name]
    router = policies(run)["router"]
    assert _labels_match(router["podSelector"], router_labels_from_chart(run))
    engine_labels = manifest(run.one(DEPLOYMENT))["spec"]["template"]["metadata"]["labels"]
    assert admits(router, "egress", pod(engine_labels), 8000)
    assert admits(router, "egress", IN_CLUSTER, 443) and admits(router, "egress", IN_CLUSTER, 6443)
    assert not admits(router, "egress", NEIGHBOUR, 8000) and not admits(router, "egress", PUBLIC, 80)
    assert not admits(router, "egress", METADATA, 80)
    # ClusterIP router Service: in-cluster clients on the router port, Prometheus on the metrics port.
    assert admits(router, "ingress", NEIGHBOUR, "http") and admits(router, "ingress", pod({}, "other-team"), "http")
    assert admits(router, "ingress", PROMETHEUS, "metrics") and not admits(router, "ingress", NEIGHBOUR, "metrics")


@pytest.mark.parametrize("name", K8S_STACKS)
def test_the_download_job_reaches_dns_and_public_https_only(runs, name):
    job = policies(runs[name])["weights"]
    job_labels = manifest(runs[name].one(JOB))["spec"]["template"]["metadata"]["labels"]
    assert _labels_match(job["podSelector"], job_labels)
    assert job["ingress"] == []
    assert admits(job, "egress", PUBLIC, 443) and admits(job, "egress", IN_CLUSTER, 53, "UDP")
    assert not admits(job, "egress", PUBLIC, 80)
    for private in (METADATA, IN_CLUSTER, {**PUBLIC, "ip": "192.168.1.10"}, {**PUBLIC, "ip": "fd00::1"}):
        assert not admits(job, "egress", private, 443), private


def test_the_policies_are_in_place_before_any_pod():
    run = run_stack("k8s-h200-sglang")
    urns = {r.urn for r in run.of_type(POLICY)}
    assert len(urns) == 3
    for kind in (DEPLOYMENT, JOB, CHART):
        assert urns <= set(run.one(kind).dependencies), kind


def test_scraper_and_api_server_are_the_stacks_to_set():
    run = run_stack("k8s-h100-vllm", overrides=kube(network_policy={
        "metrics_namespace": "observability", "metrics_pod_labels": {"app": "vmagent"},
        "api_server_cidrs": ["172.20.0.10/32"]}))
    found = policies(run)
    assert admits(found["engine"], "ingress", pod({"app": "vmagent"}, "observability"), 8000)
    assert not admits(found["engine"], "ingress", PROMETHEUS, 8000)
    assert admits(found["router"], "egress", {**IN_CLUSTER, "ip": "172.20.0.10"}, 443)
    assert not admits(found["router"], "egress", IN_CLUSTER, 443)
    for bad, field in (({"metrics_namespace": "Bad_NS"}, "metrics_namespace"),
                       ({"metrics_pod_labels": {"app": "a b"}}, "metrics_pod_labels.app"),
                       ({"api_server_cidrs": ["10.0.0.1/8"]}, "api_server_cidrs[0]")):
        err = refused("k8s-h100-vllm", kube(network_policy=bad))
        assert err.field == f"kubernetes.network_policy.{field}", err


# ----------------------------------------------------------------------------- security contexts

def _pod_specs(run) -> list[dict]:
    return [manifest(r)["spec"]["template"]["spec"] for r in run.resources if r.type in (DEPLOYMENT, JOB)]


def _engine_user() -> tuple[int, str]:
    """uid and home of the engine user as the image build step (infra/launcher/buildsetup.py) writes them."""
    import tempfile

    from infra.launcher.buildsetup import ensure_user

    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "etc").mkdir()
        (Path(root) / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
        ensure_user(root)
        line = [entry for entry in (Path(root) / "etc" / "passwd").read_text().splitlines() if entry.startswith("gptoss:")][0]
    fields = line.split(":")
    return int(fields[2]), fields[5]


def assert_locked_down(pod_spec: dict) -> None:
    uid, home = _engine_user()
    assert pod_spec["automountServiceAccountToken"] is False
    psc = pod_spec["securityContext"]
    assert (psc["runAsUser"], psc["runAsGroup"], psc["runAsNonRoot"]) == (uid, uid, True)
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    for container in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"] == {"type": "RuntimeDefault"}
        if container["name"] == CACHE_OWNER:
            continue  # checked in test_node_local_cache_is_owned_by_an_init_container_with_chown_only
        assert (sc["runAsUser"], sc["runAsNonRoot"]) == (uid, True) and "add" not in sc["capabilities"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        # Writable: the caches (every CACHE_ENV dir is under /cache), /tmp, the config dir and HOME.
        assert all(v.startswith(C.CACHE_ROOT + "/") or v == C.CACHE_ROOT for v in C.CACHE_ENV.values())
        for path in ("/tmp", C.CONFIG_DIR, home):
            assert volumes[mounts[path]] == {"name": mounts[path], "emptyDir": {}}, path
        assert {"name": "HOME", "value": home} in container["env"]


@pytest.mark.parametrize("name", K8S_STACKS)
def test_every_pod_runs_as_the_engine_user_with_nothing_extra(runs, name):
    specs = _pod_specs(runs[name])
    assert len(specs) == 2  # the engine Deployment and the download Job
    for pod_spec in specs:
        assert_locked_down(pod_spec)
    engine = specs[0] if "initContainers" not in specs[0] else specs[1]
    assert not engine.get("initContainers")  # shared cache: fsGroup owns the claim, no root step at all


def test_node_local_cache_is_owned_by_an_init_container_with_chown_only():
    path = "/mnt/disks/ssd0/gptoss"
    run = run_stack("k8s-h100-vllm", overrides={"kubernetes": {"replicas": 2, "cache": "node-local", "node_cache_path": path}})
    dep = manifest(run.one(DEPLOYMENT))
    validate(dep)
    pod_spec = dep["spec"]["template"]["spec"]
    assert_locked_down(pod_spec)
    assert {"name": "cache", "hostPath": {"path": path, "type": "DirectoryOrCreate"}} in pod_spec["volumes"]
    (init,) = pod_spec["initContainers"]
    uid, _ = _engine_user()
    assert init["command"] == ["chown", f"{uid}:{uid}", C.CACHE_ROOT]  # that directory only, not -R
    assert init["volumeMounts"] == [{"name": "cache", "mountPath": C.CACHE_ROOT}]
    sc = init["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]} and sc["runAsUser"] == 0
    assert "env" not in init and "envFrom" not in init and "ports" not in init
    # Each node downloads the weights itself: DNS and public HTTPS out, nothing private.
    engine = policies(run)["engine"]
    assert set(policies(run)) == {"engine", "router"}
    assert admits(engine, "egress", PUBLIC, 443) and not admits(engine, "egress", METADATA, 443)


def test_the_router_runs_as_the_smg_user_with_nothing_extra(runs):
    values = T.unwrap_secrets(runs["k8s-h100-vllm"].one(CHART).inputs)["values"]
    sc = values["router"]["securityContext"]
    # SMG 1.9.0 docker/Dockerfile: `useradd --system --uid 65532 smg` / `USER smg`.
    assert sc == {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
                  "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                  "seccompProfile": {"type": "RuntimeDefault"}}
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
              "spec": {"containers": [{"name": "router", "image": "x", "securityContext": sc}]}})
    # It calls the API (service discovery) with its own account, bound to a namespaced pod-reading Role.
    assert values["serviceAccount"] == {"create": True}
    assert values["router"]["serviceDiscovery"]["enabled"] and values["router"]["serviceDiscovery"]["clusterWide"] is False


# ----------------------------------------------------------------------------- node cache path

@pytest.mark.parametrize("path", ["/", "/etc", "/etc/../var/run", "/var/lib/gptoss/../../etc", "/mnt//x", "/mnt/./x",
                                  "/mnt", "/mnt/", "/var/lib/gptoss-cache", "/mntx/y", "/var/run/containerd", "/data/.."])
def test_node_cache_path_outside_the_allow_list_is_refused(path):
    err = refused("k8s-h100-vllm", {"kubernetes": {"replicas": 2, "cache": "node-local", "node_cache_path": path}})
    assert err.field == "kubernetes.node_cache_path" and "/var/lib/gptoss" in err.fix and str(err).count("\n") == 0


@pytest.mark.parametrize("path", ["/var/lib/gptoss/cache", "/mnt/disks/ssd0/gptoss", "/data/hf"])
def test_node_cache_path_inside_the_allow_list_is_accepted(path):
    config = {**read_stack_config("k8s-h100-vllm"), "kubernetes": {"cache": "node-local", "node_cache_path": path}}
    assert load_spec(config, "k8s-h100-vllm").kubernetes.node_cache_path == path


# ----------------------------------------------------------------------------- SSH, public engine

@pytest.mark.parametrize("overrides, secrets, field", [
    ({}, SENTINELS, "ssh_password"),
    ({"ssh_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKtestkey0000000000000000000000000000 t@x"}, K8S_SENTINELS,
     "ssh_public_key"),
    ({"env": {"SSH_PUBLIC_KEY": "ssh-ed25519 AAAA t@x"}}, K8S_SENTINELS, "env.SSH_PUBLIC_KEY"),
], ids=["password", "public-key", "env-key"])
def test_ssh_into_pods_is_refused_with_kubectl_exec_as_the_fix(overrides, secrets, field):
    err = refused("k8s-h100-vllm", overrides, secrets=secrets)
    assert err.field == field and "kubectl exec" in err.fix and SENTINELS["ssh_password"] not in str(err)


def test_the_launcher_refuses_ssh_password_in_a_kubernetes_pod():
    """Defence in depth: an SSH_PASSWORD added to the pod by hand is refused by the launcher before any sshd."""
    from infra.launcher.errors import LaunchError
    from infra.launcher.main import spec_from_env

    spec_json = load_spec(read_stack_config("k8s-h100-vllm"), "k8s-h100-vllm").model_dump_json(exclude={"secrets_set"})
    assert spec_from_env({C.SPEC_ENV: spec_json}, "vllm").target == "kubernetes"
    with pytest.raises(LaunchError, match="kubectl exec"):
        spec_from_env({C.SPEC_ENV: spec_json, "SSH_PASSWORD": "long-enough-password"}, "vllm")


@pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort"])
def test_a_public_engine_without_router_needs_the_acknowledgement(service_type):
    kube = {"replicas": 1, "router": "none", "service_type": service_type}
    err = refused("k8s-h100-vllm", {"kubernetes": kube})
    assert err.field == "kubernetes.service_type" and "allow_public_engine: true" in err.fix and "router: smg" in err.fix
    run = run_stack("k8s-h100-vllm", overrides={"kubernetes": {**kube, "allow_public_engine": True}})
    assert manifest(run.one("kubernetes:core/v1:Service"))["spec"]["type"] == service_type
    engine = policies(run)["engine"]
    assert admits(engine, "ingress", PUBLIC, 8000)  # what was acknowledged; still only the engine port
    assert not admits(engine, "ingress", PUBLIC, 22)


def test_a_public_router_keeps_the_engine_internal():
    run = run_stack("k8s-h100-vllm", overrides=kube(service_type="LoadBalancer"))
    found = policies(run)
    assert admits(found["router"], "ingress", PUBLIC, "http")
    assert not admits(found["engine"], "ingress", PUBLIC, 8000)
    assert manifest(run.one("kubernetes:core/v1:Service"))["spec"]["type"] == "ClusterIP"


def test_cluster_ip_engine_without_router_admits_cluster_pods_only():
    run = run_stack("k8s-h100-vllm", overrides={"kubernetes": {"replicas": 1}})
    engine = policies(run)["engine"]
    assert admits(engine, "ingress", pod({}, "other-team"), 8000) and not admits(engine, "ingress", PUBLIC, 8000)


# ----------------------------------------------------------------------------- PromQL

def _selector(query: str):
    expr = promql_parser.parse(query)
    assert isinstance(expr, promql_parser.AggregateExpr), type(expr)  # sum(...) of ...
    assert isinstance(expr.expr, promql_parser.VectorSelector), type(expr.expr)  # ... one selector, nothing else
    return expr.expr.name, {m.name: m.value for m in expr.expr.matchers.matchers}


def test_hostile_served_model_name_is_refused_at_the_spec():
    err = refused("k8s-h200-sglang", {"served_model_name": HOSTILE_MODEL})
    assert err.field == "served_model_name"


@pytest.mark.parametrize("value", [HOSTILE_MODEL, 'a\\"b', "x\\", "line\nbreak", "c\x01tl\x7f", "gptoss/gpt-oss-120b"])
def test_the_keda_query_is_one_selector_whatever_the_label_value(value):
    """Escaping where the query is written: even a value the spec would refuse stays one label value."""
    name, matchers = _selector(A.queue_query("vllm", NAMESPACE, value))
    assert name == "vllm:num_requests_waiting" and matchers == {"namespace": NAMESPACE, "model_name": value}


def test_the_deployed_scaled_object_query_selects_the_stack_model(runs):
    so = manifest(runs["k8s-h200-sglang"].one("kubernetes:keda.sh/v1alpha1:ScaledObject"))
    name, matchers = _selector(so["spec"]["triggers"][0]["metadata"]["query"])
    assert name == "sglang:num_queue_reqs" and matchers == {"namespace": NAMESPACE, "model_name": "openai/gpt-oss-120b"}


# ----------------------------------------------------------------------------- pins

def _digest(ref: str) -> str:
    return "sha256:" + hashlib.sha256(f"registry answer for {ref}".encode()).hexdigest()


def test_lock_images_resolves_the_router_chart_and_image(tmp_path):
    """`invoke lock-images`' resolver on the real images.yaml, against registries answering over a mock
    transport (no internet here): the router rows are locked like the bases, with their registries."""
    from infra.imagelock import MANIFEST_TYPES, lock_images

    asked = []

    def registry(request: httpx.Request) -> httpx.Response:
        host, path = request.url.host, request.url.path
        repo, _, tag = path.removeprefix("/v2/").partition("/manifests/")
        asked.append((request.method, host, repo, tag))
        return httpx.Response(200, headers={"Docker-Content-Digest": _digest(f"{host}/{repo}:{tag}"),
                                            "Content-Type": MANIFEST_TYPES[2]})

    lock = tmp_path / "images.lock.yaml"
    entries, errors = lock_images(None, lock, deadline_s=10, transport=httpx.MockTransport(registry))
    assert errors == {}
    for name, host, repo in (("smg", "registry-1.docker.io", "lightseekorg/smg"),
                             ("smg-chart", "ghcr.io", "smg-project/charts/smg")):
        row = yaml.safe_load((C.CATALOGUE_DIR / "images.yaml").read_text())["router"][name]
        ref = f"{row['image']}:{row['tag']}"
        digest = _digest(f"{host}/{repo}:1.9.0")
        assert entries[ref]["digest"] == digest and entries[ref]["registry"] == host and ("HEAD", host, repo, "1.9.0") in asked
        assert yaml.safe_load(lock.read_text())[ref]["digest"] == digest


def test_the_committed_lock_lists_the_router_rows():
    lock = yaml.safe_load((C.CATALOGUE_DIR / "images.lock.yaml").read_text())
    assert {"docker.io/lightseekorg/smg:1.9.0", "ghcr.io/smg-project/charts/smg:1.9.0"} <= set(lock)


def _lock_without_router_digests(tmp_path) -> Path:
    path = T.write_stand_in_image_lock(tmp_path / "images.lock.yaml")
    doc = yaml.safe_load(path.read_text())
    for name in ("smg", "smg-chart"):
        row = router_pin(name)
        doc[f"{row['image']}:{row['tag']}"] = {"digest": None}
    path.write_text(yaml.safe_dump(doc))
    return path


def test_an_unlocked_router_is_refused_unless_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "IMAGE_LOCK_FILE", _lock_without_router_digests(tmp_path))
    err = refused("k8s-h100-vllm", {})
    assert err.field == "kubernetes.router" and "invoke lock-images" in err.fix and "allow_unpinned_base" in err.fix
    image = {**read_stack_config("k8s-h100-vllm")["image"], "allow_unpinned_base": True}
    run = run_stack("k8s-h100-vllm", overrides={"image": image})
    chart = run.one(CHART)
    assert chart.plain("chart") == R.SMG_CHART and not chart.raw.get("transforms")  # the tag alone, knowingly


def _chart_router_deployment(release: str) -> dict:
    """The router Deployment as SMG 1.9.0's templates/deployment-router.yaml renders it for our values
    (registry/repository:tag from smg.routerImage; the fields the transform must leave alone included)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"{release}-router", "labels": {"app.kubernetes.io/version": "1.9.0"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": R.router_pod_labels(release)},
                     "template": {"metadata": {"labels": R.router_pod_labels(release)},
                                  "spec": {"serviceAccountName": release,
                                           "containers": [{"name": "router", "image": "docker.io/lightseekorg/smg:1.9.0",
                                                           "args": ["--host", "0.0.0.0"],
                                                           "securityContext": R.router_security_context(),
                                                           "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
                                           "volumes": [{"name": "tmp", "emptyDir": {}}]}}}}


def test_the_transform_pins_the_router_image_by_digest(runs):
    release = runs["k8s-h100-vllm"].one(CHART).plain("name")
    pinned = R.router_image()
    pin = router_pin("smg")
    assert pinned == f"docker.io/lightseekorg/smg:1.9.0@{pin['digest']}"
    rendered = _chart_router_deployment(release)
    out = R.pin_router_image(DEPLOYMENT, rendered, release, pinned)
    validate(out)
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == pinned
    out["spec"]["template"]["spec"]["containers"][0]["image"] = rendered["spec"]["template"]["spec"]["containers"][0]["image"]
    assert out == rendered  # nothing else changed
    # Only the router Deployment of this release: other objects (and releases) are left as rendered.
    assert R.pin_router_image("kubernetes:core/v1:Service", rendered, release, pinned) is None
    assert R.pin_router_image(DEPLOYMENT, _chart_router_deployment("other-smg"), release, pinned) is None


def test_amd_pods_need_the_device_groups_they_can_no_longer_add_as_root():
    amd = {"gpu": "mi300x-192gb", "tensor_parallel": 1}
    err = refused("k8s-h100-vllm", amd)
    assert err.field == "kubernetes.supplemental_groups" and "getent group video render" in err.fix
    run = run_stack("k8s-h100-vllm", overrides={**amd, **kube(supplemental_groups=[44, 109])})
    dep = manifest(run.one(DEPLOYMENT))
    validate(dep)
    assert dep["spec"]["template"]["spec"]["securityContext"]["supplementalGroups"] == [44, 109]
    assert_locked_down(dep["spec"]["template"]["spec"])
    err = refused("k8s-h100-vllm", {**amd, **kube(supplemental_groups=[0])})
    assert err.field == "kubernetes.supplemental_groups[0]"
