"""The Pulumi program: stack config -> spec -> launch plan -> GptOssDeployment -> stack outputs.

`__main__.py` calls `main()`. Tests call `deploy()` under a mock engine (tests/pulumi_harness.py).
"""
from __future__ import annotations

import pulumi

from infra import constants as C
from infra.deploy.component import GptOssDeployment, GptOssDeploymentArgs, validate
from infra.deploy.config import read_pulumi_config
from infra.fit import FitError
from infra.plan import build_plan
from infra.spec import SpecError, load_spec


def deploy(stack: str | None = None, *, fetch_build_inputs: bool | None = None) -> GptOssDeployment:
    """Validate everything, then register the component. Raises SpecError/FitError, having
    registered nothing, for a stack that cannot work. `fetch_build_inputs`: GptOssDeploymentArgs'."""
    config = read_pulumi_config(C.CONFIG_NAMESPACE, stack)
    spec = load_spec(config.plain, config.stack, secrets_are_resolved=True)
    plan = build_plan(spec)
    args = GptOssDeploymentArgs(spec=spec, plan=plan, secrets=config.secrets, fetch_build_inputs=fetch_build_inputs)
    validate(args)
    deployment = GptOssDeployment(config.stack, args)
    for name, value in deployment.outputs().items():
        pulumi.export(name, value)
    return deployment


def main() -> None:
    try:
        deploy()
    except (SpecError, FitError) as exc:
        # RunError: Pulumi prints the message alone, no Python traceback to dig through.
        raise pulumi.RunError(str(exc)) from None
