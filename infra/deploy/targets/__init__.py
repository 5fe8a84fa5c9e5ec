"""Deployment targets, by the spec's `target` value. Each is a pure module (validate, endpoint,
build_host, manifests: docker.py, runpod.py, kubernetes.py) and a Pulumi registration
(`*_pulumi.py`: a class with `name`, `validate`, `build_host`, `endpoint` and `deploy(ctx) ->
TargetResult`, see base.py), registered in TARGETS. Importing this package loads no Pulumi:
TARGETS is built on first use.
"""
from __future__ import annotations

from typing import Any

from infra.deploy.targets.base import Target, TargetContext, TargetResult
from infra.spec import SpecError

__all__ = ["TARGETS", "Target", "TargetContext", "TargetResult", "get_target", "target_endpoint"]


def _registry() -> dict[str, Target]:
    from infra.deploy.targets.docker_pulumi import DockerTarget
    from infra.deploy.targets.kubernetes_pulumi import KubernetesTarget
    from infra.deploy.targets.runpod_pulumi import RunpodTarget

    return {"docker": DockerTarget(), "kubernetes": KubernetesTarget(), "runpod": RunpodTarget()}


def __getattr__(name: str) -> Any:
    if name == "TARGETS":  # built once, then an ordinary module attribute (tests may add to it)
        globals()["TARGETS"] = _registry()
        return globals()["TARGETS"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_target(spec) -> Target:
    targets = globals().get("TARGETS") or __getattr__("TARGETS")
    try:
        return targets[spec.target]
    except KeyError:
        raise SpecError("target", spec.target, "is not a known target",
                        f"use one of: {', '.join(sorted(targets))}", stack=spec.stack or None) from None


def target_endpoint(spec, plan, stack: str | None = None):
    """The stack's Endpoint from its target's pure module (no Pulumi): what `invoke render` writes
    and the deployed outputs say."""
    from infra.deploy.targets import docker, kubernetes, runpod

    modules = {"docker": docker, "kubernetes": kubernetes, "runpod": runpod}
    if spec.target not in modules:
        get_target(spec)  # the one "not a known target" error
    return modules[spec.target].endpoint(spec, plan, stack)
