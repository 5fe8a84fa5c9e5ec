"""Helpers for the cloud target tests (a unique module name, so it cannot collide with other
test folders' helpers). Runs a stack file through the real Pulumi program (config reading, spec,
launch plan, GptOssDeployment component, target, provider SDK serialisation) under the recording
mock engine of infra.deploy.testing: the engine is the only fake."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from infra import constants as C
from infra.deploy import testing as T
from infra.spec import SpecError
from infra.stackfile import stack_path

RUNPOD_STACKS = ["runpod-h100-sglang", "runpod-a100-vllm"]
K8S_STACKS = ["k8s-h100-vllm", "k8s-h200-sglang", "k8s-h200x8-vllm-tp1"]
NEW_STACKS = RUNPOD_STACKS + K8S_STACKS
# Distinct, long, greppable values: any of them (or its base64) outside a secret wrapper is a leak.
SENTINELS = {key: f"CLOUDSENTINEL-{key}-3f9a61c2e8d4b705" for key in C.SECRET_KEYS}
GENERATED_KEY = "CLOUDSENTINEL-generated-api-key-81d0c7e2a6"
ALL_SENTINELS = {**SENTINELS, "generated_api_key": GENERATED_KEY}
# Kubernetes refuses SSH into the pods (ssh_password included): its stacks get every other secret.
K8S_SENTINELS = {key: value for key, value in SENTINELS.items() if key != "ssh_password"}


def sentinels_for(name: str) -> dict[str, str]:
    return K8S_SENTINELS if name in K8S_STACKS else SENTINELS


def stack_doc(name: str) -> dict[str, Any]:
    return dict((yaml.safe_load(stack_path(name).read_text()) or {}).get("config") or {})


def pulumi_config(name: str, *, secrets: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, str], list[str]]:
    """The stack's config with this suite's sentinels (infra.deploy.testing.stack_file_config)."""
    return T.stack_file_config(name, secrets=sentinels_for(name) if secrets is None else secrets, overrides=overrides)


def run_stack(name: str, *, secrets: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None,
              monitor: T.RecordingMonitor | None = None) -> T.ProgramRun:
    from infra.deploy.program import deploy

    cfg, secret_keys = pulumi_config(name, secrets=secrets, overrides=overrides)
    return T.run_program(lambda: deploy(), project=C.PROJECT, stack=name, config=cfg, secret_keys=secret_keys,
                         mocks=T.DeterministicMocks(random_password=GENERATED_KEY), monitor=monitor)


def run_stacks(names: list[str]) -> dict[str, T.ProgramRun]:
    """Each stack's run, for a module-scoped fixture (the autouse fixture registering the cloud targets
    is function-scoped, so they are registered here for the duration as well)."""
    from infra.deploy import targets
    from infra.deploy.targets import kubernetes_pulumi as kubernetes, runpod_pulumi as runpod

    saved = dict(targets.TARGETS)
    targets.TARGETS.setdefault("kubernetes", kubernetes.KubernetesTarget())
    targets.TARGETS.setdefault("runpod", runpod.RunpodTarget())
    try:
        return {name: run_stack(name) for name in names}
    finally:
        targets.TARGETS.clear()
        targets.TARGETS.update(saved)


def manifest(resource: T.Resource) -> dict[str, Any]:
    """A registered Kubernetes resource as the object the provider would send to the API server
    (secret wrappers removed: validation is about shape, secrecy is checked separately)."""
    return T.unwrap_secrets(resource.inputs)


def refused(name: str, overrides: dict, secrets: Mapping[str, str] | None = None) -> SpecError:
    """Run the program; it must raise SpecError having registered nothing but the stack."""
    monitor = T.RecordingMonitor(T.DeterministicMocks())
    with pytest.raises(SpecError) as info:
        run_stack(name, overrides=overrides, secrets=secrets, monitor=monitor)
    types = {r.get("type") for r in monitor.registrations}
    assert types <= {T.STACK_TYPE}, types
    return info.value
