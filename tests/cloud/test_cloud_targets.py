"""RunPod and Kubernetes targets (issue 6), for every new stack, under the recording mock engine.

Only the Pulumi engine is faked; the stack files, config reading, spec, launch plan, component,
targets and the pulumi-kubernetes / runpodinfra SDK serialisation are the real code. Kubernetes
objects are validated offline with kubernetes-validate in strict mode for Kubernetes 1.33; the KEDA
ScaledObject and Prometheus ServiceMonitor (CRDs, not in kubernetes-validate) against the strict
schemas written from their CRDs in tests/cloud/schemas/ (the HPA behaviour inside the ScaledObject
against Kubernetes' own HPA schema). The SMG router is a Helm chart: under mocks the chart is not
rendered, so its values are what is checked (typed, against the chart's schema).
"""
from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
from pulumi_harness import (ALL_SENTINELS, K8S_STACKS, NEW_STACKS, RUNPOD_STACKS, SENTINELS, manifest,
                           refused, run_stack, run_stacks, sentinels_for)

from infra import constants as C
from infra.catalogue import get_gpu, router_pin
import pulumi_harness as T
from infra.deploy.targets import kubernetes as K
from infra.plan import build_plan
from infra.spec import load_spec
from infra.stackfile import list_stacks, load_stack, read_stack_config

POD = "runpod:index:Pod"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SECRET = "kubernetes:core/v1:Secret"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
CHART = "kubernetes:helm.sh/v4:Chart"
JOB = "kubernetes:batch/v1:Job"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
KEDA_SCHEMA = json.loads((Path(__file__).parent / "schemas" / "keda-scaledobject-v1alpha1.json").read_text())
SERVICE_MONITOR_SCHEMA = json.loads((Path(__file__).parent / "schemas" / "servicemonitor-v1.json").read_text())
CONTRACT_OUTPUTS = ("endpoint_url", "health_url", "model", "backend", "gpu", "image_ref", "api_key",
                    "client_env", "launch_plan", "logs_command")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def expected_spec(name: str):
    config = read_stack_config(name)
    config.update({key: {"secure": "v1:placeholder"} for key in sentinels_for(name)})
    return load_spec(config, name)


@pytest.fixture(scope="module")
def runs(request) -> dict[str, T.ProgramRun]:
    return run_stacks(NEW_STACKS)


def k8s_resources(run: T.ProgramRun) -> list[T.Resource]:
    """The Kubernetes objects (the Helm chart is a component whose objects the provider renders)."""
    return [r for r in run.resources if r.type.startswith("kubernetes:") and r.type != CHART]


def validate_k8s(obj: dict) -> str:
    """Strict offline validation: core kinds with kubernetes-validate, KEDA with the vendored schema."""
    if obj["apiVersion"] == K.KEDA_API_VERSION:
        jsonschema.Draft202012Validator(KEDA_SCHEMA).validate(obj)
        behavior = obj["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
        if behavior is not None:  # KEDA hands it to an autoscaling/v2 HPA: check it as one
            kubernetes_validate.validate({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                                          "metadata": {"name": "x"},
                                          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"},
                                                   "maxReplicas": 2, "behavior": behavior}},
                                         K.KUBERNETES_VERSION, strict=True)
        return "keda-vendored"
    if obj["apiVersion"] == "monitoring.coreos.com/v1":
        jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(obj)
        return "servicemonitor-vendored"
    return kubernetes_validate.validate(obj, K.KUBERNETES_VERSION, strict=True)


# ----------------------------------------------------------------------------- stacks

def test_new_stacks_exist_and_build_a_plan():
    for name in NEW_STACKS:
        assert name in list_stacks()
        build_plan(load_stack(name))
    assert load_stack("k8s-h100-vllm").kubernetes.replicas == 2
    assert load_stack("k8s-h200x8-vllm-tp1").kubernetes.replicas == 8


def test_stack_files_hold_no_secret_values():
    for name in NEW_STACKS:
        config = read_stack_config(name)
        assert not set(config) & set(C.SECRET_KEYS), name


# ----------------------------------------------------------------------------- secrecy

@pytest.mark.parametrize("name", NEW_STACKS)
def test_no_plaintext_secret_anywhere(runs, name):
    run = runs[name]
    leaks = T.find_plaintext_secrets(run.everything_sent(), ALL_SENTINELS)
    assert leaks == [], leaks
    out = run.stack_outputs
    for key in CONTRACT_OUTPUTS:
        # RunPod has no logs API: logs_command is None, which Pulumi does not export.
        assert key in out or (key == "logs_command" and name in RUNPOD_STACKS), key
    assert T.is_secret_output(out["api_key"]) and T.is_secret_output(out["client_env"])


@pytest.mark.parametrize("name", K8S_STACKS)
def test_secrets_reach_the_cluster_only_as_secrets(runs, name):
    run = runs[name]
    by_type = {r.plain("type"): r for r in run.of_type(SECRET)}
    opaque, pull = by_type["Opaque"], by_type["kubernetes.io/dockerconfigjson"]
    # The values are wrapped as secrets in what the program sends...
    assert T.is_secret_wrapper(opaque.inputs["stringData"]) or all(
        T.is_secret_wrapper(v) for v in opaque.inputs["stringData"].values())
    assert T.is_secret_wrapper(pull.inputs["stringData"]) or T.is_secret_wrapper(pull.inputs["stringData"][".dockerconfigjson"])
    # ...and really are the stack's secrets once unwrapped (so the scan above had something to find).
    assert opaque.plain("stringData")["API_KEY"] == SENTINELS["api_key"]
    assert opaque.plain("stringData")["HF_TOKEN"] == SENTINELS["hf_token"]
    config = json.loads(pull.plain("stringData")[".dockerconfigjson"])
    entry = config["auths"]["ghcr.io"]
    assert base64.b64decode(entry["auth"]).decode() == f"your-org-bot:{SENTINELS['registry_password']}"
    # The Deployment refers to the Secret; it never carries a value.
    env = manifest(run.one(DEPLOYMENT))["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert set(refs) == {"API_KEY", "HF_TOKEN"}
    assert {r["name"] for r in refs.values()} == {opaque.plain("metadata")["name"]}


def test_the_scanner_finds_a_plain_dockerconfigjson():
    """Control: the same payload outside a secret wrapper is reported (base64 included)."""
    payload = K.dockerconfigjson("ghcr.io", "bot", SENTINELS["registry_password"])
    auth_only = json.dumps({"auths": {"ghcr.io": {"auth": json.loads(payload)["auths"]["ghcr.io"]["auth"]}}})
    assert T.find_plaintext_secrets({"stringData": {".dockerconfigjson": auth_only}}, SENTINELS)
    encoded = base64.b64encode(payload.encode()).decode()
    assert T.find_plaintext_secrets({"data": {".dockerconfigjson": encoded}}, SENTINELS)


@pytest.mark.parametrize("name", RUNPOD_STACKS)
def test_runpod_env_secrets_are_secret_and_pod_output_is_marked_secret(runs, name):
    pod = runs[name].one(POD)
    env = pod.inputs["env"]
    secret_keys = {e["key"] for e in env if T.is_secret_wrapper(e["value"])}
    assert secret_keys == {"API_KEY", "HF_TOKEN", "SSH_PASSWORD"}
    assert set(pod.raw.get("additionalSecretOutputs", [])) >= {"pod", "env"}


def test_runpod_ssh_public_key_goes_as_a_secret():
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKcloudtargettestkey0000000000000000000 test@cloud"
    run = run_stack("runpod-h100-sglang", overrides={"ssh_public_key": key})
    env = run.one(POD).inputs["env"]
    item = next(e for e in env if e["key"] == "SSH_PUBLIC_KEY")
    assert T.is_secret_wrapper(item["value"]) and item["value"]["value"] == key


# ----------------------------------------------------------------------------- Kubernetes schema

@pytest.mark.parametrize("name", K8S_STACKS)
def test_every_kubernetes_object_validates_strictly_for_1_33(runs, name):
    resources = k8s_resources(runs[name])
    kinds = {manifest(r)["kind"] for r in resources}
    assert {"Namespace", "Secret", "PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget"} <= kinds
    for res in resources:
        assert validate_k8s(manifest(res)), res.name


@pytest.mark.parametrize("overrides", [
    {"kubernetes": {"replicas": 1, "storage_class": "nfs-rwx",
                    "autoscaling": {"enabled": True, "mode": "hpa", "max_replicas": 3, "service_monitor": True}}},
    {"kubernetes": {"replicas": 4, "cache": "node-local", "router": "smg", "service_type": "LoadBalancer"}},
    {"kubernetes": {"replicas": 1, "existing_claim": "shared-hf-cache", "service_type": "LoadBalancer",
                    "allow_public_engine": True, "node_selector": {"topology.kubernetes.io/zone": "zone-a"}}},
    {"kubernetes": {"replicas": 3, "storage_class": "nfs-rwx",
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}]}},
], ids=["hpa", "node-local-lb", "existing-claim-lb", "rwx-tolerations"])
def test_variants_validate_strictly_too(overrides):
    run = run_stack("k8s-h100-vllm", overrides=overrides)
    for res in k8s_resources(run):
        assert validate_k8s(manifest(res)), res.name
    if "hpa" in json.dumps(overrides):
        hpa = manifest(run.one(HPA))
        assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] == "vllm:num_requests_waiting"
        assert "replicas" not in manifest(run.one(DEPLOYMENT))["spec"]
    if "existing_claim" in overrides["kubernetes"]:
        assert not run.of_type("kubernetes:core/v1:PersistentVolumeClaim")
        volumes = manifest(run.one(DEPLOYMENT))["spec"]["template"]["spec"]["volumes"]
        assert {"name": "cache", "persistentVolumeClaim": {"claimName": "shared-hf-cache"}} in volumes


def test_strict_mode_catches_a_typo():
    """Control: strict validation rejects an unknown field that non-strict would let through."""
    spec = load_stack("k8s-h100-vllm")
    plan = build_plan(spec)
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": K.deployment_spec("x", spec, plan, image="img", secret_vars=["API_KEY"], with_pull_secret=True)}
    assert validate_k8s(dep)
    dep["spec"]["template"]["spec"]["containers"][0]["startupProbes"] = dep["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    kubernetes_validate.validate(dep, K.KUBERNETES_VERSION, strict=False)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K.KUBERNETES_VERSION, strict=True)
    so = {"apiVersion": K.KEDA_API_VERSION, "kind": "ScaledObject", "metadata": {"name": "x"},
          "spec": {"scaleTargetRef": {"name": "x"}, "triggers": [{"type": "prometheus", "metadata": {}}], "maxReplicas": 3}}
    with pytest.raises(jsonschema.ValidationError):
        validate_k8s(so)


# ----------------------------------------------------------------------------- Kubernetes semantics

@pytest.mark.parametrize("name", K8S_STACKS)
def test_gpus_probes_replicas_and_nodes_match_the_spec(runs, name):
    spec, plan = expected_spec(name), build_plan(expected_spec(name))
    gpu = get_gpu(spec.gpu)
    dep = manifest(runs[name].one(DEPLOYMENT))
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    # GPUs: TP per pod, on the catalogue's GPU product.
    assert container["resources"]["limits"] == {gpu.k8s_resource: str(plan.tensor_parallel)}
    assert pod["nodeSelector"] == {gpu.k8s_product_label: gpu.k8s_product}
    assert pod["tolerations"] == spec.kubernetes.tolerations

    # Replicas: fixed, or owned by the autoscaler.
    auto = spec.kubernetes.autoscaling
    if auto.enabled:
        assert "replicas" not in dep["spec"]
        so = manifest(runs[name].one(SCALED_OBJECT))["spec"]
        assert (so["minReplicaCount"], so["maxReplicaCount"]) == (auto.min_replicas, auto.max_replicas)
        trigger = so["triggers"][0]["metadata"]
        assert K.QUEUE_METRIC[spec.backend] in trigger["query"] and trigger["threshold"] == str(auto.queue_depth_target)
    else:
        assert dep["spec"]["replicas"] == spec.kubernetes.replicas
        assert not runs[name].of_type(SCALED_OBJECT) and not runs[name].of_type(HPA)

    # Probes: a loading 120b pod gets the whole startup grace before liveness counts.
    grace = C.STARTUP_GRACE_SECONDS[spec.model]
    sp = container["startupProbe"]
    assert sp["httpGet"]["path"] == "/health" and sp["periodSeconds"] * sp["failureThreshold"] >= grace
    assert sp["failureThreshold"] == math.ceil(grace / sp["periodSeconds"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http", "scheme": "HTTP"}
    assert container["ports"] == [{"name": "http", "containerPort": plan.port, "protocol": "TCP"}]

    # Rolling update that needs no spare GPU; in-memory /dev/shm; caches on the claim.
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{spec.kubernetes.shm_size_gi}Gi"}} in pod["volumes"]
    assert {"name": "cache", "mountPath": C.CACHE_ROOT} in container["volumeMounts"]

    # The launcher entrypoint runs the plan: no command override, the plan's env verbatim.
    assert "command" not in container and "args" not in container
    plain_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    # offline: the download Job filled the shared cache; HOME: the engine user's, a writable emptyDir
    assert plain_env == {**plan.env, "HF_HUB_OFFLINE": "1", "HOME": "/home/gptoss"}

    # Labels are valid label values (the model id lives in an annotation).
    for value in dep["spec"]["template"]["metadata"]["labels"].values():
        assert LABEL_VALUE.match(value) and len(value) <= 63, value
    assert dep["spec"]["template"]["metadata"]["annotations"]["gptoss.model"] == spec.model
    # The Pulumi await covers a full model load.
    assert int(dep["metadata"]["annotations"]["pulumi.com/timeoutSeconds"]) > grace


@pytest.mark.parametrize("name", K8S_STACKS)
def test_cache_claim_access_mode_follows_replicas(runs, name):
    spec = expected_spec(name)
    pvc = manifest(runs[name].one("kubernetes:core/v1:PersistentVolumeClaim"))
    shared = spec.kubernetes.replicas > 1 or spec.kubernetes.autoscaling.enabled
    assert pvc["spec"]["storageClassName"] == spec.kubernetes.storage_class
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany" if shared else "ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == f"{spec.kubernetes.cache_size_gi}Gi"


@pytest.mark.parametrize("name", K8S_STACKS)
def test_kubernetes_outputs(runs, name):
    out = T.unwrap_secrets(runs[name].stack_outputs)
    assert out["endpoint_url"] == "http://127.0.0.1:8000/v1"
    assert out["tunnel_command"][:3] == ["kubectl", "--namespace", "gptoss"] and "port-forward" in out["tunnel_command"]
    assert out["logs_command"][0] == "kubectl" and "logs" in out["logs_command"]
    assert out["cluster_endpoint_url"].endswith("-smg-router.gptoss.svc.cluster.local:8000/v1")
    assert out["tunnel_command"][-2].endswith("-smg-router") and out["router"] == "smg"
    assert out["model"] == "openai/gpt-oss-120b"


def _without_key(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("OPENAI_API_KEY=") and "requires a key" not in line]


@pytest.mark.parametrize("name", [*K8S_STACKS, *RUNPOD_STACKS])
def test_deployed_endpoint_is_the_rendered_one(runs, name):
    """endpoint_url, tunnel_command and client_env come from the target's endpoint(), as `invoke render` does:
    the two client.env files differ only in the key (the deployed one carries it)."""
    from infra.deploy.targets import target_endpoint
    from infra.render import render_plan_files

    spec = expected_spec(name)
    plan = build_plan(spec)
    endpoint = target_endpoint(spec, plan)
    out = T.unwrap_secrets(runs[name].stack_outputs)
    assert (out["endpoint_url"], out["health_url"]) == (endpoint.base_url, endpoint.health_url)
    assert out["tunnel_command"] == list(endpoint.via)
    rendered = render_plan_files(spec, plan)["client.env"]
    assert _without_key(out["client_env"]) == _without_key(rendered)
    assert f"OPENAI_API_KEY={SENTINELS['api_key']}" in out["client_env"].splitlines()


@pytest.mark.parametrize("name,overrides", [
    ("local", {}),
    ("h100-vllm", {}),  # ssh:// host publishing on 0.0.0.0: the host's name, no tunnel
    ("h100-vllm", {"docker": {"host": "ssh://ops@gpu-box:2222", "publish_address": "127.0.0.1"}}),  # the tunnel
])
def test_deployed_docker_endpoint_is_the_rendered_one(name, overrides):
    from infra.deploy.targets import docker
    from infra.render import render_plan_files

    config = read_stack_config(name)
    config["docker"] = {**config["docker"], **overrides.get("docker", {})}
    config.update({key: {"secure": "v1:placeholder"} for key in sentinels_for(name)})
    spec = load_spec(config, name)
    plan = build_plan(spec)
    out = T.unwrap_secrets(run_stack(name, overrides=overrides).stack_outputs)
    endpoint = docker.endpoint(spec, plan)
    assert (out["endpoint_url"], out["health_url"]) == (endpoint.base_url, endpoint.health_url)
    assert out.get("tunnel_command") == (list(endpoint.via) if endpoint.via else None)
    assert _without_key(out["client_env"]) == _without_key(render_plan_files(spec, plan)["client.env"])


def test_a_load_balanced_engine_gets_its_address_at_deploy_time_and_render_says_so():
    from infra.deploy.targets import kubernetes

    overrides = {"kubernetes": {"router": "none", "replicas": 1, "service_type": "LoadBalancer", "allow_public_engine": True}}
    out = T.unwrap_secrets(run_stack("k8s-h100-vllm", overrides=overrides).stack_outputs)
    assert out["endpoint_url"] == "http://pending-load-balancer:8000/v1" and "tunnel_command" not in out
    assert "LLM_BASE_URL=http://pending-load-balancer:8000/v1" in out["client_env"].splitlines()
    config = read_stack_config("k8s-h100-vllm")
    config["kubernetes"] = {**config["kubernetes"], **overrides["kubernetes"]}
    assert kubernetes.endpoint(load_spec(config, "k8s-h100-vllm")).base_url == f"http://{kubernetes.LOAD_BALANCER_PLACEHOLDER}:8000/v1"


def test_pdb_and_service_select_the_pods(runs):
    run = runs["k8s-h100-vllm"]
    labels = manifest(run.one(DEPLOYMENT))["spec"]["template"]["metadata"]["labels"]
    svc = manifest(run.one("kubernetes:core/v1:Service"))["spec"]
    pdb = manifest(run.one("kubernetes:policy/v1:PodDisruptionBudget"))["spec"]
    assert svc["selector"].items() <= labels.items()
    assert pdb["selector"]["matchLabels"].items() <= labels.items() and pdb["maxUnavailable"] == 1
    assert svc["ports"][0]["targetPort"] == "http"


# ----------------------------------------------------------------------------- RunPod semantics

@pytest.mark.parametrize("name", RUNPOD_STACKS)
def test_runpod_pod_matches_the_seeds_setup(runs, name):
    spec, plan = expected_spec(name), build_plan(expected_spec(name))
    run = runs[name]
    pod = run.one(POD)
    args = T.unwrap_secrets(pod.inputs)
    assert args["gpuTypeId"] == get_gpu(spec.gpu).runpod_id
    assert args["gpuCount"] == plan.gpu_count
    assert args["cudaVersion"] == "13.0"  # both release images are CUDA 13.0 (images.yaml): hosts with driver >= 580
    assert args["ports"] == "8000/tcp,22/tcp"
    assert args["volumeInGb"] == 100 and args["volumeMountPath"] == C.CACHE_ROOT
    assert args["imageName"] == T.unwrap_secrets(run.stack_outputs["image_ref"])
    assert "dockerArgs" not in args  # the image's launcher entrypoint runs the plan
    plain = {e["key"]: e["value"] for e in pod.inputs["env"] if not T.is_secret_wrapper(e["value"])}
    assert plain == plan.env
    out = T.unwrap_secrets(run.stack_outputs)
    assert out["endpoint_url"] == "http://127.0.0.1:8000/v1"
    assert out["tunnel_command"][:4] == ["ssh", "-N", "-L", "8000:127.0.0.1:8000"]
    assert out["direct_endpoint_url"].startswith("http://") and out["pod_id"]


def test_runpod_network_volume_replaces_the_pod_volume():
    run = run_stack("runpod-a100-vllm", overrides={"runpod": {"network_volume_id": "vol-abc", "data_center_id": "EU-RO-1"}})
    args = T.unwrap_secrets(run.one(POD).inputs)
    assert args["networkVolumeId"] == "vol-abc" and args["dataCenterId"] == "EU-RO-1" and "volumeInGb" not in args


def test_runpod_private_image_goes_through_a_template_with_the_registry_auth():
    run = run_stack("runpod-h100-sglang", overrides={"runpod": {"container_registry_auth_id": "auth-123"}})
    template = run.one("runpod:index:Template")
    targs = T.unwrap_secrets(template.inputs)
    assert targs["containerRegistryAuthId"] == "auth-123" and targs["isPublic"] is False
    assert targs["imageName"] == T.unwrap_secrets(run.stack_outputs["image_ref"])
    assert not targs.get("env")  # secrets stay on the pod, as Pulumi secrets
    pod = T.unwrap_secrets(run.one(POD).inputs)
    assert pod["templateId"]  # the template's id (a mock id here)
    # without an auth id there is no template
    assert not [r for r in run_stack("runpod-h100-sglang").resources if r.type == "runpod:index:Template"]


# ----------------------------------------------------------------------------- refusals

def test_more_gpus_per_pod_than_the_gpu_type_offers_is_refused():
    err = refused("k8s-h100-vllm", {"model": "openai/gpt-oss-20b", "gpu_count": 16})
    assert err.field == "gpu_count" and "at most 8" in str(err) and "replicas" in err.fix
    # 120b with TP 16: the core refuses it first (TP above the model's KV heads), still before any resource.
    err = refused("k8s-h200-sglang", {"gpu_count": 16})
    assert err.field in ("tensor_parallel", "gpu_count")


def test_idle_gpus_per_pod_are_refused():
    err = refused("k8s-h100-vllm", {"model": "openai/gpt-oss-20b", "gpu_count": 2})
    assert err.field == "gpu_count" and "tensor_parallel" in str(err)


def test_runpod_gpu_not_on_runpod_is_refused():
    err = refused("runpod-h100-sglang", {"gpu": "mi355x-288gb", "backend": "vllm"})
    assert err.field == "gpu" and "not offered on RunPod" in str(err)


def test_missing_registry_is_refused():
    for name in ("runpod-a100-vllm", "k8s-h100-vllm"):
        err = refused(name, {"image": {"push": False}})
        assert err.field == "image.registry"


def test_gpu_auto_is_refused_for_cloud_targets():
    for name in ("runpod-a100-vllm", "k8s-h100-vllm"):
        err = refused(name, {"gpu": "auto"})
        assert err.field == "gpu"


def test_sglang_autoscaling_needs_metrics_here():
    err = refused("k8s-h200-sglang", {"extra_args": None})
    assert err.field == "kubernetes.autoscaling.enabled" and "--enable-metrics" in err.fix


def test_network_volume_needs_its_data_center():
    err = refused("runpod-a100-vllm", {"runpod": {"network_volume_id": "vol-abc"}})
    assert err.field == "runpod.data_center_id"


def _stable(value):
    """Dependency URN lists are built from sets inside the SDK: compare them as sets."""
    if isinstance(value, dict):
        return {k: (sorted(v) if k in ("dependencies", "urns") and isinstance(v, list) else _stable(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


@pytest.mark.parametrize("name", ["k8s-h200-sglang", "runpod-a100-vllm"])
def test_idempotent(runs, name):
    """Two runs register identical inputs (no timestamps or randomness outside RandomPassword)."""
    again = run_stack(name)
    assert _stable(again.comparable()) == _stable(runs[name].comparable())


def test_cache_claim_is_writable_by_the_engine_user(runs):
    for name in K8S_STACKS:
        dep = manifest(runs[name].one(DEPLOYMENT))
        assert dep["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == C.ENGINE_UID


def test_runpod_gpu_auto_is_refused_naming_the_catalogued_runpod_gpus():
    from infra.catalogue import gpus

    err = refused("runpod-a100-vllm", {"gpu": "auto"})
    assert err.field == "gpu"
    offered = [g.id for g in gpus().values() if g.runpod_id]
    assert "mi355x-288gb" not in offered and all(g in err.fix for g in offered)


def test_runpod_more_gpus_than_one_host_is_refused_by_the_spec():
    err = refused("runpod-a100-vllm", {"gpu_count": 16, "tensor_parallel": 8})
    assert err.field == "gpu_count" and "at most 8" in str(err)


# ----------------------------------------------------------------------------- scale-out (issue 13)

def _pod(run):
    return manifest(run.one(DEPLOYMENT))["spec"]["template"]


@pytest.mark.parametrize("name", K8S_STACKS)
def test_router_discovers_exactly_the_engine_pods(runs, name):
    from infra.deploy.targets.k8s import router as RT

    spec, run = expected_spec(name), runs[name]
    chart = run.one(CHART)
    args = chart.plain("values") and T.unwrap_secrets(chart.inputs)
    assert (RT.SMG_CHART, RT.SMG_CHART_VERSION) == ("oci://ghcr.io/smg-project/charts/smg", "1.9.0")
    # Pinned by the (stand-in) lock's digest: the chart by reference, the router image by a transform.
    pin = router_pin("smg-chart")
    assert (args["chart"], args["version"]) == (f"{RT.SMG_CHART}@{pin['digest']}", "1.9.0")
    assert len(chart.raw["transforms"]) == 1
    values = args["values"]
    RT.check_smg_values(values)
    RT.SmgValues.model_validate(values)  # typed: no key the chart does not know
    router = values["router"]
    assert router["policy"] == "cache_aware" and router["serviceDiscovery"]["enabled"]
    key, value = router["serviceDiscovery"]["selector"].split("=")
    labels = _pod(run)["metadata"]["labels"]
    assert labels[key] == value  # the engine pods match...
    assert value not in (router["podLabels"].get(key), None) and key not in router["podLabels"]  # ...the router pods do not
    assert router["serviceDiscovery"]["port"] == spec.port and router["serviceDiscovery"]["namespace"] == "gptoss"
    # The API key reaches the router by reference only.
    assert router["extraArgs"][-2:] == ["--api-key", f"$({RT.ROUTER_API_KEY_ENV})"]
    assert router["extraEnv"] == [{"name": RT.ROUTER_API_KEY_ENV,
                                   "valueFrom": {"secretKeyRef": {"name": K.k8s_names(name, spec).secret, "key": "API_KEY"}}}]
    # Clients go through the router; the engine Service stays internal.
    assert manifest(run.one("kubernetes:core/v1:Service"))["spec"]["type"] == "ClusterIP"


def test_smg_values_schema_refuses_what_the_chart_refuses():
    from infra.deploy.targets.k8s import router as RT

    spec = load_stack("k8s-h100-vllm")
    values = K.router_values("k8s-h100-vllm", spec, with_api_key=True)
    for bad in ({"policy": "least_load"}, {"port": 0}, {"replicas": 0}):
        with pytest.raises(jsonschema.ValidationError):
            RT.check_smg_values({**values, "router": {**values["router"], **bad}})
    with pytest.raises(ValueError):
        RT.SmgValues.model_validate({**values, "router": {**values["router"], "polcy": "cache_aware"}})
    # Every policy the spec offers is one the chart's schema accepts.
    from typing import get_args
    from infra.spec import KubernetesTarget as KT
    assert set(get_args(KT.model_fields["router_policy"].annotation)) <= set(
        RT.SMG_VALUES_SCHEMA["properties"]["router"]["properties"]["policy"]["enum"])


@pytest.mark.parametrize("name", K8S_STACKS)
def test_drain_grace_covers_prestop_and_engine_shutdown(runs, name):
    spec, plan = expected_spec(name), build_plan(expected_spec(name))
    pod = _pod(runs[name])["spec"]
    drain = spec.kubernetes.drain
    (container,) = pod["containers"]
    prestop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert prestop == drain.prestop_seconds > 0
    assert pod["terminationGracePeriodSeconds"] >= prestop + drain.shutdown_timeout_seconds
    if spec.backend == "vllm":
        i = plan.argv.index("--shutdown-timeout")
        assert int(plan.argv[i + 1]) == drain.shutdown_timeout_seconds
    else:  # SGLang drains on SIGTERM by default and has no such option
        assert not any("shutdown" in a for a in plan.argv)
    assert runs[name].one("kubernetes:policy/v1:PodDisruptionBudget")


def test_target_engine_options_exist_in_the_pinned_engines():
    """--revision and --shutdown-timeout against the real parsers' snapshots (vLLM 0.33, SGLang 0.5.23)."""
    from infra.flagcheck.snapshot import known_options

    assert {"--revision", "--shutdown-timeout"} <= set(known_options("vllm"))
    assert "--revision" in known_options("sglang")
    assert not [o for o in known_options("sglang") if "shutdown" in o]  # so none is passed
    assert set(K.DATA_PARALLEL_OPTIONS) & set(known_options("vllm")) and set(K.DATA_PARALLEL_OPTIONS) & set(known_options("sglang"))


@pytest.mark.parametrize("name", K8S_STACKS)
def test_weights_are_downloaded_once_at_the_pinned_revision(runs, name):
    spec, plan = expected_spec(name), build_plan(expected_spec(name))
    run = runs[name]
    job = manifest(run.one(JOB))
    revision = C.MODEL_REVISIONS[spec.model]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][-2:] == [spec.model, revision]
    assert {"name": "cache", "persistentVolumeClaim": {"claimName": K.k8s_names(name, spec).cache}} in job["spec"]["template"]["spec"]["volumes"]
    assert plan.argv[plan.argv.index("--revision") + 1] == revision
    assert _pod(run)["metadata"]["annotations"]["gptoss.model-revision"] == revision
    # The Deployment waits for the Job (Pulumi awaits its completion).
    assert run.one(JOB).urn in run.one(DEPLOYMENT).dependencies


def test_eight_tp1_pods_on_one_8_gpu_node(runs):
    spec, plan = expected_spec("k8s-h200x8-vllm-tp1"), build_plan(expected_spec("k8s-h200x8-vllm-tp1"))
    dep = manifest(runs["k8s-h200x8-vllm-tp1"].one(DEPLOYMENT))
    assert dep["spec"]["replicas"] == 8 and plan.tensor_parallel == 1
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert not set(K.DATA_PARALLEL_OPTIONS) & set(plan.argv)
    assert manifest(runs["k8s-h200x8-vllm-tp1"].one("kubernetes:core/v1:PersistentVolumeClaim"))["spec"]["accessModes"] == ["ReadWriteMany"]


def test_keda_scales_on_the_per_pod_queue_average_with_guard_rails(runs):
    so = manifest(runs["k8s-h200-sglang"].one(SCALED_OBJECT))["spec"]
    trigger = so["triggers"][0]
    assert trigger["metricType"] == "AverageValue" and trigger["metadata"]["query"].startswith("sum(sglang:num_queue_reqs{")
    up = so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]
    assert up["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": C.K8S_SCALE_UP_PERIOD_SECONDS}]
    assert up["stabilizationWindowSeconds"] == C.K8S_SCALE_UP_STABILIZATION_SECONDS > 0
    assert so["minReplicaCount"] >= 1
    sm = manifest(runs["k8s-h200-sglang"].one(SERVICE_MONITOR))
    svc = manifest(runs["k8s-h200-sglang"].one("kubernetes:core/v1:Service"))
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert validate_k8s(sm) == "servicemonitor-vendored"


@pytest.mark.parametrize("name", K8S_STACKS)
def test_the_scrape_sends_the_api_key_from_the_stacks_secret(runs, name):
    """The engine answers /metrics only with the key (vLLM: the API-key guard), so the ServiceMonitor sends
    it as a bearer token by reference to the stack's Secret, in the same namespace; never the value."""
    run = runs[name]
    if not run.of_type(SERVICE_MONITOR):
        pytest.skip(f"{name} has no ServiceMonitor")
    sm = manifest(run.one(SERVICE_MONITOR))
    opaque = next(r for r in run.of_type(SECRET) if r.plain("type") == "Opaque")
    assert "API_KEY" in opaque.plain("stringData")
    secret = manifest(opaque)
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": secret["metadata"]["name"], "key": "API_KEY"}}
    assert sm["metadata"]["namespace"] == secret["metadata"]["namespace"]
    assert SENTINELS["api_key"] not in json.dumps(sm)
    assert validate_k8s(sm) == "servicemonitor-vendored"


def test_strict_crd_schemas_catch_typos():
    so = {"apiVersion": K.KEDA_API_VERSION, "kind": "ScaledObject", "metadata": {"name": "x"},
          "spec": {"scaleTargetRef": {"name": "x"}, "triggers": [{"type": "prometheus", "metadata": {}}],
                   "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleUp": {"stabilisationWindowSeconds": 1}}}}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(so)
    sm = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"},
          "spec": {"selector": {}, "endpoints": [{"port": "http", "intervall": "30s"}]}}
    with pytest.raises(jsonschema.ValidationError):
        validate_k8s(sm)


def test_shared_cache_for_many_pods_needs_a_storage_class():
    err = refused("k8s-h100-vllm", {"kubernetes": {"replicas": 2}})
    assert err.field == "kubernetes.storage_class" and "ReadWriteMany" in str(err) and "node-local" in err.fix


def test_engine_data_parallelism_is_refused():
    for flag in (["--data-parallel-size", "2"], ["--data-parallel-size=2"]):
        err = refused("k8s-h100-vllm", {"extra_args": flag})
        assert err.field == "extra_args[0]" and "replicas" in err.fix
    err = refused("k8s-h200-sglang", {"extra_args": ["--enable-metrics", "--dp-size", "2"]})
    assert err.field == "extra_args[1]"
    # vLLM's short alias of --data-parallel-size-local, written with '=' (the one option parser knows it)
    err = refused("k8s-h100-vllm", {"extra_args": ["--max-num-seqs", "8", "-dpl=2"]})
    assert err.field == "extra_args[2]" and err.value == "-dpl=2"
    for flag in (["-dp", "2"], ["--data-parallel-size-local", "1"]):
        assert refused("k8s-h100-vllm", {"extra_args": flag}).field == "extra_args[0]"
    err = refused("k8s-h200-sglang", {"extra_args": ["--enable-metrics", "--data-parallel-size", "2"]})  # SGLang's alias
    assert err.field == "extra_args[1]"


def test_scale_to_zero_and_llm_d_are_refused_with_the_fix():
    err = refused("k8s-h200-sglang", {"kubernetes": {"storage_class": "x", "autoscaling": {"enabled": True, "min_replicas": 0}}})
    assert err.field == "kubernetes.autoscaling.min_replicas"
    err = refused("k8s-h100-vllm", {"kubernetes": {"replicas": 2, "storage_class": "x", "router": "llm-d"}})
    assert err.field == "kubernetes.router" and "smg" in err.fix


def test_node_local_cache_uses_a_node_directory_and_no_job():
    run = run_stack("k8s-h100-vllm", overrides={"kubernetes": {"replicas": 2, "cache": "node-local"}})
    assert not run.of_type(JOB) and not run.of_type("kubernetes:core/v1:PersistentVolumeClaim")
    volumes = _pod(run)["spec"]["volumes"]
    assert {"name": "cache", "hostPath": {"path": C.K8S_NODE_CACHE_PATH, "type": "DirectoryOrCreate"}} in volumes
    env = {e["name"] for e in _pod(run)["spec"]["containers"][0]["env"]}
    assert "HF_HUB_OFFLINE" not in env


def test_one_pod_needs_no_router():
    run = run_stack("k8s-h100-vllm", overrides={"kubernetes": {"replicas": 1}})
    assert not run.of_type(CHART)
    assert T.unwrap_secrets(run.stack_outputs)["router"] == "none"
