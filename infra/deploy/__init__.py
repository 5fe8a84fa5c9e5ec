"""Pulumi side of gptoss-stacks (the only package that imports pulumi).

- component.py: `GptOssDeployment` (type `gptoss:index:Deployment`) and its typed args
- image.py:     the engine image (pulumi_docker_build)
- targets/:     where the server runs (docker today; runpod/kubernetes in issue 6)
- config.py:    Pulumi config -> spec mapping, secrets kept as secret Outputs
- program.py:   what `__main__.py` runs
- testing.py:   recording mock engine and the no-plaintext-secret scanner for tests
"""
from __future__ import annotations

from infra.deploy.component import TYPE_TOKEN, GptOssDeployment, GptOssDeploymentArgs

__all__ = ["TYPE_TOKEN", "GptOssDeployment", "GptOssDeploymentArgs"]
