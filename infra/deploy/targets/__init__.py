"""Deployment targets, by the spec's `target` value: a class with `name`, `validate(spec, plan)`,
`build_host(spec)` and `deploy(ctx) -> TargetResult` (see base.py), registered in TARGETS.
"""
from __future__ import annotations

from infra.deploy.targets.base import Target, TargetContext, TargetResult
from infra.deploy.targets.docker import DockerTarget
from infra.deploy.targets.kubernetes import KubernetesTarget
from infra.deploy.targets.runpod import RunpodTarget
from infra.spec import SpecError

TARGETS: dict[str, Target] = {"docker": DockerTarget(), "kubernetes": KubernetesTarget(), "runpod": RunpodTarget()}


def get_target(spec) -> Target:
    try:
        return TARGETS[spec.target]
    except KeyError:
        raise SpecError("target", spec.target, "is not a known target",
                        f"use one of: {', '.join(sorted(TARGETS))}", stack=spec.stack or None) from None


__all__ = ["TARGETS", "Target", "TargetContext", "TargetResult", "get_target", "DockerTarget", "KubernetesTarget", "RunpodTarget"]
