"""What every deployment target (docker, runpod, kubernetes) gets and returns.

A target turns (spec, launch plan, built image, secrets) into running server resources, all
children of the `GptOssDeployment` component. Where the endpoint is comes from the target's pure
`endpoint(spec, plan)` (infra/deploy/targets/endpoint.py), which `invoke render` calls too.
Everything a target can refuse, it refuses in `validate`, which runs before any resource is registered.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from infra import constants as C

if TYPE_CHECKING:  # annotations only: this module (and the pure target modules) import without pulumi
    import pulumi


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
    # The python tool server's built image (infra/deploy/toolserver_image.py), when the stack runs one.
    toolserver_image_ref: pulumi.Output[str] | None = None
    toolserver_image_digest: pulumi.Output[str] | None = None


@dataclass
class TargetResult:
    """What registering the server produced. The endpoint itself is `endpoint(spec, plan)`;
    `host` is set only where the address is learnt at deploy time (a cloud load balancer's)."""

    host: pulumi.Input[str] | None = None
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

    def endpoint(self, spec: Any, plan: Any) -> Any:
        """Where clients reach the server (infra.deploy.targets.endpoint.Endpoint). Pure."""

    def deploy(self, ctx: TargetContext) -> TargetResult:
        """Register the target's resources (parent=ctx.parent)."""


class PureParts:
    """A registration's `validate`, `build_host` and `endpoint`: its target's pure module's (`pure`)."""

    pure: Any  # the module: docker, runpod or kubernetes

    @property
    def name(self) -> str:
        return self.pure.__name__.rsplit(".", 1)[-1]  # the spec's `target` value

    def validate(self, spec: Any, plan: Any) -> None:
        self.pure.validate(spec, plan)

    def build_host(self, spec: Any) -> str | None:
        return self.pure.build_host(spec)

    def endpoint(self, spec: Any, plan: Any, stack: str | None = None) -> Any:
        return self.pure.endpoint(spec, plan, stack)


def startup_grace_seconds(model: str) -> int:
    """How long a server may take to load before health checks count (weights download + load)."""
    return C.STARTUP_GRACE_SECONDS.get(model, max(C.STARTUP_GRACE_SECONDS.values()))


def health_path() -> str:
    return "/health"
