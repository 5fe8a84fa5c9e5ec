"""Shared helpers for the Pulumi program tests (imported as `deploy_harness`: a unique name, so
it cannot collide with other test folders' helpers). Runs a stack file through the real program
under a recording mock engine (the only fake), with sentinel values for every secret config key."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from infra import constants as C
from infra.deploy import testing as T
from infra.stackfile import list_stacks, stack_path

STACKS = list_stacks()
# Distinct, long, greppable values: any of them (or its base64) outside a secret wrapper is a leak.
SENTINELS = {key: f"SENTINEL-{key}-7c1e9a52d4b8f036" for key in C.SECRET_KEYS}
GENERATED_KEY = "SENTINEL-generated-api-key-5b9d2e81c7a4"
ALL_SENTINELS = {**SENTINELS, "generated_api_key": GENERATED_KEY}


def stack_doc(name: str) -> dict[str, Any]:
    """The stack file's `config:` exactly as written (namespaced keys)."""
    return dict((yaml.safe_load(stack_path(name).read_text()) or {}).get("config") or {})


def default_secrets(name: str) -> dict[str, str]:
    """Every sentinel, but ssh_password on Kubernetes, which refuses SSH into its pods."""
    return {k: v for k, v in SENTINELS.items() if k != "ssh_password" or target_of(name) != "kubernetes"}


def pulumi_config(name: str, *, secrets: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None,
                  drop: tuple[str, ...] = ()) -> tuple[dict[str, str], list[str]]:
    """The stack's config with this suite's sentinels (infra.deploy.testing.stack_file_config)."""
    secrets = default_secrets(name) if secrets is None else secrets
    return T.stack_file_config(name, secrets=secrets, overrides=overrides, drop=drop)


def run_stack(name: str, *, secrets: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None,
              config: tuple[dict[str, str], list[str]] | None = None, program=None) -> T.ProgramRun:
    from infra.deploy.program import deploy

    cfg, secret_keys = config or pulumi_config(name, secrets=secrets, overrides=overrides)
    return T.run_program(program or (lambda: deploy()), project=C.PROJECT, stack=name, config=cfg,
                         secret_keys=secret_keys, mocks=T.DeterministicMocks(random_password=GENERATED_KEY))


def target_of(name: str) -> str:
    return stack_doc(name).get(f"{C.CONFIG_NAMESPACE}:target") or "docker"


def implemented(name: str) -> bool:
    from infra.deploy.targets import TARGETS

    return target_of(name) in TARGETS


# One engine container each; a stack with the python tool has a second (tests/cloud/test_builtin_tools_deploy.py).
DOCKER_STACKS = [name for name in STACKS if target_of(name) == "docker"
                 and not stack_doc(name).get(f"{C.CONFIG_NAMESPACE}:builtin_tools")]

