"""What every deployment target (docker today; runpod and kubernetes in issue 6) gets and returns.

A target turns (spec, launch plan, built image, secrets) into running server resources, all
children of the `GptOssDeployment` component, and reports where the endpoint is. Everything a
target can refuse, it refuses in `validate`, which runs before any resource is registered.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi

from infra import constants as C


@dataclass(frozen=True)
class TargetContext:
    """Inputs a target needs. `secret_env` values are Pulumi secrets (env var name -> value)."""

    stack: str
    spec: Any                                   # infra.spec.StackSpec
    plan: Any                                   # infra.plan.LaunchPlan
    image_ref: pulumi.Output[str]               # what to run: tag@digest when pushed, else the local tag
    image_digest: pulumi.Output[str]
    secret_env: Mapping[str, pulumi.Output[str]]
    registry_username: str | None
    registry_password: pulumi.Output[str] | None
    labels: Mapping[str, str]
    parent: pulumi.Resource


@dataclass
class TargetResult:
    """Where the server answers. `host`/`port` are what a client on the deploying machine uses."""

    host: pulumi.Input[str]
    port: pulumi.Input[int]
    scheme: str = "http"
    logs_command: pulumi.Input[list[str]] | None = None
    # Target-specific outputs (e.g. docker: container_name, tunnel_command; runpod: pod_id).
    extra_outputs: dict[str, Any] = field(default_factory=dict)
    # Resources the component's outputs should wait on (the server itself).
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class Target(Protocol):
    name: str

    def validate(self, spec: Any, plan: Any) -> None:
        """Raise infra.spec.SpecError for anything this target cannot do. No Pulumi calls."""

    def build_host(self, spec: Any) -> str | None:
        """Docker daemon that builds (and, without push, keeps) the image; None = local default."""

    def deploy(self, ctx: TargetContext) -> TargetResult:
        """Register the target's resources (parent=ctx.parent) and say where the endpoint is."""


def startup_grace_seconds(model: str) -> int:
    """How long a server may take to load before health checks count (weights download + load)."""
    return C.STARTUP_GRACE_SECONDS.get(model, max(C.STARTUP_GRACE_SECONDS.values()))


def health_path() -> str:
    return "/health"
