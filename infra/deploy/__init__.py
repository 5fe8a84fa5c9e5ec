"""Pulumi side of gptoss-stacks (the only package whose modules import pulumi, and only the
registering ones: the targets' pure parts import without it, so `invoke render` never loads it).

- component.py: `GptOssDeployment` (type `gptoss:index:Deployment`) and its typed args
- image.py:     the engine image (pulumi_docker_build)
- targets/:     where the server runs: each target's pure module (validation, endpoint, manifests)
                and its `*_pulumi.py` registration
- config.py:    Pulumi config -> spec mapping, secrets kept as secret Outputs
- program.py:   what `__main__.py` runs
- testing.py:   recording mock engine and the no-plaintext-secret scanner for tests
"""
from __future__ import annotations

__all__ = ["TYPE_TOKEN", "GptOssDeployment", "GptOssDeploymentArgs"]


def __getattr__(name: str):
    # Loaded on first use, so importing a pure submodule (infra.deploy.targets.docker) loads no pulumi.
    if name in __all__:
        from infra.deploy import component

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
