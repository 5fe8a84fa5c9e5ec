"""The Pulumi program for every stack in stacks/, under a recording mock engine.

Only the engine is faked (tests/pulumi_harness.py); the stack files, config reading, spec, launch
plan, component and provider SDK serialisation are the real ones.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_harness import (ALL_SENTINELS, DOCKER_STACKS, GENERATED_KEY, SENTINELS, STACKS, sentinels_for,
                            pulumi_config, run_stack)

from infra import builtin_tools as BT
from infra import constants as C
import pulumi_harness as T
from infra.deploy.image import images_build_module
from infra.launcher.stages import spec_from_env
from infra.plan import build_plan
from infra.spec import StackSpec, load_spec
from infra.stackfile import read_stack_config

IMAGE = "docker-build:index:Image"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
DOCKER_PROVIDER = "pulumi:providers:docker"
BUILD_PROVIDER = "pulumi:providers:docker-build"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
COMPONENT = "gptoss:index:Deployment"
CONTRACT_OUTPUTS = ("endpoint_url", "health_url", "model", "backend", "gpu", "image_ref", "api_key",
                    "client_env", "launch_plan", "logs_command")


def expected_spec(name: str, secrets=None) -> StackSpec:
    """The core's reading of the same stack file (no Pulumi), with the same secrets set."""
    secrets = sentinels_for(name) if secrets is None else secrets
    config = read_stack_config(name)
    config.update({key: {"secure": "v1:placeholder"} for key in secrets})
    return load_spec(config, name)


def expected_plan(name: str, secrets=None):
    return build_plan(expected_spec(name, secrets))


def as_floats(value: Any) -> Any:
    """The engine protocol carries every number as a double."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {k: as_floats(v) for k, v in value.items()}
    return [as_floats(v) for v in value]


def env_split(envs: list) -> tuple[list[str], dict[str, str]]:
    """Container env as sent: (plain KEY=VALUE entries, {secret KEY: value})."""
    plain, secret = [], {}
    for item in envs:
        if T.is_secret_wrapper(item):
            key, _, value = item["value"].partition("=")
            secret[key] = value
        else:
            plain.append(item)
    return plain, secret


@pytest.fixture(scope="module")
def runs() -> dict[str, T.ProgramRun]:
    """One run per stack with every secret set (sentinels), shared by the read-only tests."""
    return {name: run_stack(name) for name in STACKS}


def test_every_docker_stack_is_covered():
    assert "local" in DOCKER_STACKS and len(DOCKER_STACKS) >= 12, DOCKER_STACKS


def test_spec_from_pulumi_config_equals_the_core_reading(stack):
    """Pulumi hands the program strings and JSON; the spec must come out the same as from YAML."""
    from infra.deploy.config import read_pulumi_config

    seen: list[StackSpec] = []

    def program():
        config = read_pulumi_config(C.CONFIG_NAMESPACE)
        seen.append(load_spec(config.plain, config.stack, secrets_are_resolved=True))

    run_stack(stack, program=program)
    assert seen == [expected_spec(stack)]


def test_graph_image_to_remote_image_to_container_on_the_right_provider(runs, docker_stack):
    stack = docker_stack
    run = runs[stack]
    spec = expected_spec(stack)
    component = run.one(COMPONENT)
    assert component.parent.endswith(f"pulumi:pulumi:Stack::{C.PROJECT}-{stack}")
    image, remote, container, volume = run.one(IMAGE), run.one(REMOTE_IMAGE), run.one(CONTAINER), run.one(VOLUME)
    provider = run.one(DOCKER_PROVIDER)
    for child in (image, remote, container, volume, provider):
        assert child.parent == component.urn, child.name

    # image -> remote image (by the built ref) -> container (by the remote image's id)
    assert image.urn in remote.dependencies
    assert remote.plain("name") == run.stack_outputs["image_ref"]
    assert remote.urn in container.dependencies
    assert container.plain("image").startswith("sha256:")

    # Everything on the stack's Docker daemon.
    assert provider.plain("host") == spec.target_settings.host
    for res in (remote, container, volume):
        assert res.provider.startswith(provider.urn + "::"), res.name

    push = expected_plan(stack).image["push"]
    assert image.plain("push") is push
    assert image.plain("buildOnPreview") is False
    if push:
        # Built where `pulumi up` runs, pushed, deployed by tag@digest.
        assert not run.of_type(BUILD_PROVIDER)
        assert "@sha256:" in remote.plain("name")
        # Registry cache that the default buildx driver can export: inline, read back from the tag.
        assert image.plain("cacheFrom") == [{"registry": {"ref": image.plain("tags")[0]}}]
        assert image.plain("cacheTo") == [{"inline": {}}]
    else:
        # Built by (and loaded into) the daemon that runs it.
        builder = run.one(BUILD_PROVIDER)
        assert builder.plain("host") == spec.target_settings.host
        assert image.provider.startswith(builder.urn + "::")
        assert image.plain("load") is True


def test_image_build_inputs_come_from_the_plan(runs, docker_stack):
    stack = docker_stack
    image = runs[stack].one(IMAGE)
    plan = expected_plan(stack)
    img = plan.image
    context = f"build/image-context/{plan.backend}"
    assert image.plain("context") == {"location": context}
    assert image.plain("dockerfile") == {"location": f"{context}/Dockerfile"}
    # The context the program assembled is the one images/build.py defines: launcher + core, the
    # encodings, the backend's Dockerfile; nothing host-side (Pulumi code, tasks).
    root = C.REPO_ROOT / context
    assert (root / "Dockerfile").read_text() == (C.REPO_ROOT / "images" / plan.backend / "Dockerfile").read_text()
    assert (root / "infra" / "launcher").is_dir() and (root / "infra" / "plan.py").is_file()
    assert not (root / "infra" / "deploy").exists() and not (root / "infra" / "tasks").exists()
    # Build args: images/build.py's names, with the plan's base, digest, platform, engine version.
    args = image.plain("buildArgs")
    assert args["BASE_IMAGE"] == img["base_image"] and args["BASE_DIGEST"] == (img["base_digest"] or "")
    assert args["PLATFORM"] == img["platform"] and args["ENGINE_VERSION"] == img["engine_version"]
    builder = images_build_module()
    assert args == builder.build_args(plan.backend, img["platform"], base=img["base_image"], digest=img["base_digest"] or "",
                                      allow_unpinned=expected_spec(stack).image.allow_unpinned_base,
                                      download_encodings=args["TIKTOKEN_DOWNLOAD"] == "1")
    assert not any(s in json.dumps(args) for s in ALL_SENTINELS.values())  # no secret is ever a build arg
    repo = f"{img['registry']}/{img['repository']}" if img["registry"] else img["repository"]
    assert image.plain("tags") == [f"{repo}:{img['tag']}"]
    assert image.plain("platforms") == ["linux/amd64"]
    # Pushed tags are shared between stacks: destroy must not delete them.
    assert image.raw.get("retainOnDelete") is True


def test_container_matches_the_launch_plan(runs, docker_stack):
    stack = docker_stack
    run = runs[stack]
    spec, plan = expected_spec(stack), expected_plan(stack)
    settings = spec.target_settings
    container = run.one(CONTAINER)
    inputs = container.inputs

    # GPUs: the plan's count (all of them when the launcher sizes TP for a 120b on gpu auto); AMD: ROCm nodes.
    if spec.gpu_info is not None and spec.gpu_info.vendor == "amd":
        assert [d["hostPath"] for d in inputs["devices"]] == ["/dev/kfd", "/dev/dri"]
        assert "deviceRequests" not in inputs
    else:
        (request,) = inputs["deviceRequests"]
        assert request["driver"] == "nvidia" and request["capabilities"] == ["gpu"]
        all_gpus = spec.gpu == "auto" and spec.tensor_parallel == "auto" and spec.model.endswith("120b")
        assert request["count"] == (-1 if all_gpus else plan.gpu_count)
        assert plan.gpu_count >= plan.tensor_parallel

    # Port: the server's port inside, published where the stack says.
    assert inputs["ports"] == [{"internal": plan.port, "external": settings.publish_port or spec.port,
                                "ip": settings.publish_address, "protocol": "tcp"}]

    # Env: exactly the plan's env in plain text, then exactly the plan's secret env as secrets.
    plain, secret = env_split(inputs["envs"])
    assert plain == [f"{k}={v}" for k, v in sorted(plan.env.items())]
    assert sorted(secret) == sorted(plan.secret_env)
    assert secret.get("HF_TOKEN") == SENTINELS["hf_token"]
    assert secret.get("SSH_PASSWORD") == SENTINELS["ssh_password"]
    assert secret.get("API_KEY") == SENTINELS["api_key"]

    # Command: none set, so the image's launcher runs; from the spec in the env it rebuilds the
    # same command line the plan has (same GPU), which is what the container will execute.
    assert "command" not in inputs and "entrypoints" not in inputs
    env = dict(item.split("=", 1) for item in plain)
    # The spec in the env does not say which secrets are set: the launcher reads that from the secret env
    # it is given (infra.launcher.stages.spec_from_env), and plans the API-key guard from it as the deploy did.
    rebuilt = build_plan(spec_from_env({**env, **secret}, plan.backend))
    assert rebuilt.argv == plan.argv
    assert rebuilt.files == plan.files

    # Host IPC, shm, cache volume, restart, health check covering model load, labels.
    assert inputs["ipcMode"] == "host" and inputs["shmSize"] == settings.shm_size_mb
    assert inputs["mounts"] == [{"source": settings.cache_volume, "target": C.CACHE_ROOT, "type": "volume"}]
    assert inputs["restart"] == settings.restart
    health = inputs["healthcheck"]
    assert health["startPeriod"] == f"{C.STARTUP_GRACE_SECONDS[spec.model]}s"
    assert f"127.0.0.1:{plan.port}/health" in " ".join(health["tests"])
    # Fixed name and taken GPUs: replacement must delete the old container first.
    assert container.raw.get("deleteBeforeReplace") is True
    assert run.one(REMOTE_IMAGE).raw.get("customTimeouts", {}).get("create") == "60m"
    labels = {item["label"]: item["value"] for item in inputs["labels"]}
    assert labels["gptoss.stack"] == stack and labels["gptoss.backend"] == plan.backend
    assert labels["gptoss.engine-version"] == plan.image["engine_version"]


def test_outputs_follow_the_contract(runs, stack):
    """The outputs ARCHITECTURE.md names, for every target."""
    run = runs[stack]
    spec, plan = expected_spec(stack), expected_plan(stack)
    out = run.stack_outputs
    assert set(CONTRACT_OUTPUTS) - {"logs_command"} <= set(out)
    assert out["endpoint_url"].startswith(("http://", "https://")) and out["endpoint_url"].endswith("/v1")
    assert out["health_url"] == out["endpoint_url"][: -len("/v1")] + "/health"
    assert out["model"] == (spec.served_model_name or spec.model)
    assert (out["backend"], out["gpu"]) == (plan.backend, plan.gpu)
    (image,) = [r for r in run.of_type(IMAGE) if r.name == f"{stack}-build"]  # the engine's (a tool server has its own)
    assert out["image_ref"].startswith(image.plain("tags")[0])
    assert ("toolserver_image_ref" in out) == BT.runs_tool_server(spec)
    assert out["launch_plan"] == as_floats(plan.to_launch_json())
    # Secrets: the key and the client .env are secret outputs.
    assert T.is_secret_output(out["api_key"]) and out["api_key"]["value"] == SENTINELS["api_key"]
    assert T.is_secret_output(out["client_env"])
    client_env = out["client_env"]["value"]
    assert f"LLM_BASE_URL={out['endpoint_url']}\n" in client_env
    assert f"OPENAI_API_KEY={SENTINELS['api_key']}\n" in client_env
    assert f"LLM_MODEL={out['model']}\n" in client_env


def test_docker_outputs(runs, docker_stack):
    out = runs[docker_stack].stack_outputs
    spec = expected_spec(docker_stack)
    port = spec.target_settings.publish_port or spec.port
    assert out["endpoint_url"].endswith(f":{port}/v1")
    assert out["image_ref"] == runs[docker_stack].one(REMOTE_IMAGE).plain("name")
    assert out["logs_command"][0] == "docker" and out["logs_command"][-1] == out["container_name"]
    if spec.target_settings.publish_address == "127.0.0.1":
        assert out["endpoint_url"] == f"http://127.0.0.1:{port}/v1"


def test_no_secret_reaches_the_engine_in_plain_text(runs, stack):
    run = runs[stack]
    sent = run.everything_sent()
    assert T.find_plaintext_secrets(sent, ALL_SENTINELS) == []
    # Not vacuous: the secrets the plan carries did reach the engine, inside secret wrappers.
    wrapped = json.dumps(T.unwrap_secrets(sent))
    plan = expected_plan(stack)
    used = {"API_KEY": "api_key", "HF_TOKEN": "hf_token", "SSH_PASSWORD": "ssh_password"}
    for var in plan.secret_env:
        assert SENTINELS[used[var]] in wrapped, var
    if plan.image["push"]:
        assert SENTINELS["registry_password"] in wrapped


@pytest.mark.parametrize("name", ["h100-vllm", "local"])
def test_api_key_generated_only_when_reachable_from_outside(name):
    secrets = {k: v for k, v in SENTINELS.items() if k != "api_key"}
    run = run_stack(name, secrets=secrets)
    spec = expected_spec(name, secrets)
    _, secret_env = env_split(run.one(CONTAINER).inputs["envs"])
    out = run.stack_outputs
    assert T.find_plaintext_secrets(run.everything_sent(), ALL_SENTINELS) == []
    if spec.loopback_only:
        assert not run.of_type(RANDOM_PASSWORD)
        assert "API_KEY" not in secret_env and out.get("api_key") is None  # absent: contract allows
        assert "OPENAI_API_KEY=dummy\n" in out["client_env"]["value"]
    else:
        password = run.one(RANDOM_PASSWORD)
        assert password.plain("length") >= 32 and password.plain("special") is False
        assert secret_env["API_KEY"] == GENERATED_KEY
        assert T.is_secret_output(out["api_key"]) and out["api_key"]["value"] == GENERATED_KEY


def test_local_stack_as_shipped_needs_no_secret_and_no_registry():
    """The README's first command: no secrets, no registry, loopback endpoint."""
    run = run_stack("local", secrets={})
    out = run.stack_outputs
    assert out["endpoint_url"] == "http://127.0.0.1:8000/v1"
    assert out.get("api_key") is None
    assert run.one(IMAGE).plain("push") is False
    assert not run.of_type(RANDOM_PASSWORD)
    _, secret_env = env_split(run.one(CONTAINER).inputs["envs"])
    assert secret_env == {}


def test_ssh_host_on_loopback_gets_a_tunnel_command():
    overrides = {"docker": {"host": "ssh://ops@gpu-box:2222", "publish_address": "127.0.0.1"}}
    run = run_stack("h100-vllm", overrides=overrides)
    out = run.stack_outputs
    assert out["endpoint_url"] == "http://127.0.0.1:8000/v1"
    assert out["tunnel_command"] == ["ssh", "-p", "2222", "-N", "-L", "8000:127.0.0.1:8000", "--", "ops@gpu-box"]
    assert out["logs_command"][:3] == ["docker", "-H", "ssh://ops@gpu-box:2222"]


def test_public_ssh_host_endpoint_uses_the_host_name():
    run = run_stack("h100-vllm")
    assert run.stack_outputs["endpoint_url"] == "http://gpu-h100.internal:8000/v1"
    assert "tunnel_command" not in run.stack_outputs


def test_idempotent_two_runs_send_identical_requests(stack):
    first, second = run_stack(stack), run_stack(stack)
    assert first.comparable() == second.comparable(), T.first_difference(first.comparable(), second.comparable())
    assert len(first.resources) >= 3  # component, image, at least one server resource


def test_launch_plan_output_changes_when_a_flag_changes():
    """`pulumi preview` shows a diff for a flag change: the launch_plan output and the container
    env (the spec the launcher reads) both change."""
    base = run_stack("h100-vllm")
    changed = run_stack("h100-vllm", overrides={"max_num_seqs": "4"})
    assert base.stack_outputs["launch_plan"]["argv"] == changed.stack_outputs["launch_plan"]["argv"]  # vLLM: in --config
    assert base.stack_outputs["launch_plan"]["files"] != changed.stack_outputs["launch_plan"]["files"]
    assert base.one(CONTAINER).inputs["envs"] != changed.one(CONTAINER).inputs["envs"]


def test_main_py_is_what_pulumi_runs():
    """The language host runs the project directory (runpy on `__main__.py`); it must register
    the same resources and outputs as calling the program directly."""
    import runpy

    run = run_stack("local", program=lambda: runpy.run_path(str(C.REPO_ROOT), run_name="__main__"))
    direct = run_stack("local")
    assert run.comparable() == direct.comparable()
    assert run.stack_outputs["endpoint_url"] == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize("model,tp,expected", [("openai/gpt-oss-120b", None, -1), ("openai/gpt-oss-20b", None, 1),
                                               ("openai/gpt-oss-120b", "1", 1)])
def test_gpu_auto_hands_all_gpus_only_when_the_launcher_sizes_tp(model, tp, expected):
    overrides = {"model": model, **({"tensor_parallel": tp} if tp else {})}
    (request,) = run_stack("local", secrets={}, overrides=overrides).one(CONTAINER).inputs["deviceRequests"]
    assert request["count"] == expected


def test_pinned_device_ids_replace_the_count():
    overrides = {"docker": {"host": "ssh://ubuntu@gpu-h100x2.internal", "publish_address": "0.0.0.0", "device_ids": ["2", "3"]}}
    (request,) = run_stack("h100x2-sglang", overrides=overrides).one(CONTAINER).inputs["deviceRequests"]
    assert request["deviceIds"] == ["2", "3"] and "count" not in request


def test_preview_registers_the_same_graph_and_never_builds():
    """`pulumi preview` runs the same program; the image resource says not to build on preview."""
    from infra.deploy.program import deploy

    cfg, secret_keys = pulumi_config("h100-vllm")
    run = T.run_program(lambda: deploy(), project=C.PROJECT, stack="h100-vllm", config=cfg, secret_keys=secret_keys,
                        mocks=T.DeterministicMocks(random_password=GENERATED_KEY), preview=True)
    assert sorted(r.type for r in run.resources) == sorted(r.type for r in run_stack("h100-vllm").resources)
    assert run.one(IMAGE).plain("buildOnPreview") is False
    assert T.find_plaintext_secrets(run.everything_sent(), ALL_SENTINELS) == []


def test_ipv6_publish_address_makes_a_valid_url():
    run = run_stack("h100-vllm", overrides={"docker": {"host": "ssh://ubuntu@gpu-h100.internal", "publish_address": "fd00::5"}})
    assert run.stack_outputs["endpoint_url"] == "http://[fd00::5]:8000/v1"
