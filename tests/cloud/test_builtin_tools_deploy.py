"""The python tool server's deploy wiring (issue 22) on the rendered objects: the real Pulumi program under
the recording mock engine (the only fake), for the docker stack h200-vllm-tools and a kubernetes stack with
the tool turned on. The isolation rules are asserted on what would be sent to Docker / the API server;
Kubernetes objects are validated with kubernetes-validate --strict like the other cloud tests."""
from __future__ import annotations

import json

import kubernetes_validate
import pytest
from pulumi_harness import manifest, refused, run_stack, run_stacks

from infra import builtin_tools as BT
from infra import constants as C
from infra.toolserver import isolation as I
from infra.deploy.targets import kubernetes as K
from infra.deploy.targets.k8s.names import engine_pod_selector
from infra.plan import build_plan
from infra.spec import StackSpec

TOOLS = {"builtin_tools": {"python": {"enabled": True, "memory_mb": 256, "max_concurrency": 4, "runtime": "gvisor"}}}
K8S_STACK = "k8s-h100-vllm"
CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


@pytest.fixture(scope="module")
def docker_run():
    return run_stacks(["h200-vllm-tools"])["h200-vllm-tools"]


@pytest.fixture(scope="module")
def k8s_run():
    from infra.deploy import targets
    from infra.deploy.targets import kubernetes_pulumi

    saved = dict(targets.TARGETS)
    targets.TARGETS.setdefault("kubernetes", kubernetes_pulumi.KubernetesTarget())
    try:
        return run_stack(K8S_STACK, overrides=TOOLS)
    finally:
        targets.TARGETS.clear()
        targets.TARGETS.update(saved)


def _by_name(run, typ: str) -> dict[str, dict]:
    return {r.plain("name") or (r.plain("metadata") or {}).get("name") or r.name:
            {k: r.plain(k) for k in r.inputs} | {"_res": r} for r in run.of_type(typ)}


def test_docker_tool_server_is_sandboxed_on_an_internal_network(docker_run):
    containers = _by_name(docker_run, CONTAINER)
    engine, tool = containers["gptoss-h200-vllm-tools"], containers["gptoss-h200-vllm-tools-python-tool"]
    (net,) = docker_run.of_type(NETWORK)
    assert net.plain("internal") is True  # Docker gives an internal network no route out
    # the tool server: on that network only, as python-tool, nothing published
    assert tool["networkMode"] == net.plain("name") == "gptoss-h200-vllm-tools-tools"
    assert tool["networksAdvanced"] == [{"name": "gptoss-h200-vllm-tools-tools", "aliases": [C.TOOLSERVER_DOCKER_ALIAS]}]
    assert not tool.get("ports") and not tool.get("publishAllPorts")
    # isolation.py's settings, all of them: non-root, read-only root, the scratch tmpfs, no capabilities,
    # no-new-privileges, limits (the stack's 1024 MiB per call: the container holds twice that)
    c = I.container(BT.container_limits(docker_run_spec()))
    assert tool["user"] == c["user"] == f"{I.UID}:{I.UID}" and tool["readOnly"] is True
    assert tool["tmpfs"] == c["tmpfs"] and "noexec" in tool["tmpfs"][I.SCRATCH_DIR]
    assert tool["capabilities"] == {"drops": ["ALL"]} and tool["securityOpts"] == ["no-new-privileges:true"]
    assert f"{tool['memory']:.0f}m" == c["memory"] == c["memory_swap"] == f"{tool['memorySwap']:.0f}m" == "2048m"
    assert {u["name"]: u["hard"] for u in tool["ulimits"]}["nproc"] == c["pids_limit"]
    assert not tool.get("privileged") and tool["ipcMode"] == "private" and tool["command"] == c["command"]
    # no Docker socket, no mount, no secret: only the per-call limits
    assert not tool.get("mounts") and not tool.get("volumes") and not tool.get("devices")
    assert tool["envs"] == [f"{k}={v}" for k, v in sorted(BT.server_env(docker_run_spec()).items())]
    assert "SENTINEL" not in str(tool["_res"].inputs) and "API_KEY" not in str(tool["envs"])
    # the engine joins the network too and is created after the tool server is healthy
    assert engine["networksAdvanced"] == [{"name": "gptoss-h200-vllm-tools-tools"}]
    assert tool["_res"].urn in engine["_res"].dependencies and tool["wait"] is True
    # the launcher in the engine container plans --tool-server python-tool:PORT from the container's env
    env = dict(e.split("=", 1) for e in engine["envs"] if isinstance(e, str) and "=" in e)
    argv = build_plan(StackSpec.model_validate(json.loads(env[C.SPEC_ENV]))).argv
    assert argv[argv.index("--tool-server") + 1] == f"{C.TOOLSERVER_DOCKER_ALIAS}:{I.PORT}"


def docker_run_spec():
    from infra.stackfile import load_stack

    return load_stack("h200-vllm-tools")


def test_stacks_without_the_tool_get_no_tool_server():
    run = run_stacks(["h200-vllm"])["h200-vllm"]
    assert not run.of_type(NETWORK) and len(run.of_type(CONTAINER)) == 1
    assert "networksAdvanced" not in run.one(CONTAINER).inputs


def test_k8s_tool_server_objects_validate_and_hold_the_isolation_rules(k8s_run):
    name = BT.k8s_service_name(K8S_STACK)
    deployments, services, policies = (_by_name(k8s_run, t) for t in (DEPLOYMENT, SERVICE, NETPOL))
    for res in [deployments[name]["_res"], services[name]["_res"], policies[name]["_res"], policies[f"{name}-client"]["_res"]]:
        obj = manifest(res)
        assert kubernetes_validate.validate(obj, K.KUBERNETES_VERSION, strict=True)
    pod = deployments[name]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    # pod security "restricted": non-root, no escalation, no capabilities, RuntimeDefault seccomp
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] == I.UID and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert pod["volumes"] == I.kubernetes_volumes() and pod["volumes"][0]["emptyDir"]["medium"] == "Memory"
    assert c["resources"]["limits"]["memory"] == "2048Mi"  # isolation.py's: above 2 x the stack's 256 MiB per call
    assert {e["name"]: e["value"] for e in c["env"]} == {"TOOLSERVER_TIMEOUT_S": "30", "TOOLSERVER_MEMORY_MB": "256",
                                                          "TOOLSERVER_MAX_OUTPUT_BYTES": "65536",
                                                          "TOOLSERVER_MAX_CONCURRENT": "4"}
    assert all("valueFrom" not in e for e in c["env"])  # no secret reaches it
    # the engine's selectors never pick the tool pods
    tool_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
    engine = deployments[K.k8s_names(K8S_STACK, k8s_spec()).app]
    for selector in (engine["spec"]["selector"]["matchLabels"], services[engine["metadata"]["name"]]["spec"]["selector"]):
        assert not set(selector.items()) <= set(tool_labels.items())
    assert services[name]["spec"]["type"] == "ClusterIP" and services[name]["spec"]["selector"].items() <= tool_labels.items()
    # policies: tool pods take the engine pods only, on the tool port, and reach nothing
    tp = policies[name]["spec"]
    assert tp["policyTypes"] == ["Ingress", "Egress"] and tp["egress"] == []
    assert tp["ingress"] == [{"from": [{"podSelector": {"matchLabels": engine_pod_selector(K8S_STACK)}}],
                              "ports": [{"protocol": "TCP", "port": I.PORT}]}]
    cp = policies[f"{name}-client"]["spec"]
    assert cp["podSelector"]["matchLabels"] == engine_pod_selector(K8S_STACK) and cp["policyTypes"] == ["Egress"]
    assert cp["egress"][0]["to"] == [{"podSelector": {"matchLabels": tp["podSelector"]["matchLabels"]}}]
    # the engine starts after the tool server and its fences, and its plan points at the Service
    engine_res = engine["_res"]
    for res in (deployments[name]["_res"], policies[name]["_res"]):
        assert res.urn in engine_res.dependencies
    env = {e["name"]: e.get("value") for e in engine["spec"]["template"]["spec"]["containers"][0]["env"]}
    in_pod = StackSpec.model_validate(json.loads(env[C.SPEC_ENV]))  # what the launcher plans from in the pod
    argv = build_plan(in_pod).argv
    assert argv[argv.index("--tool-server") + 1] == f"{name}:{I.PORT}"


def k8s_spec():
    from infra.stackfile import load_stack

    return load_stack(K8S_STACK)


def test_runpod_refuses_the_tool_server_before_creating_anything():
    err = refused("runpod-h100-sglang", TOOLS)
    assert err.field == "builtin_tools.python.enabled" and "one container per pod" in str(err)
