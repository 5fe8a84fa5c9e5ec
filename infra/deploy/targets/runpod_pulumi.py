"""RunPod target, the Pulumi registration: the pod (and a private Template for a registry
credential) with the `runpodinfra` SDK. The pod's arguments, refusals and endpoint are runpod.py's.
"""
from __future__ import annotations

from typing import Any

import pulumi

from infra.deploy.targets import runpod as R
from infra.deploy.targets.base import PureParts, TargetContext, TargetResult


def pod_env(ctx: TargetContext) -> list:
    """PodEnvArgs: the plan's env (plain, sorted) then the secrets, each value a Pulumi secret."""
    import runpodinfra as runpod

    env = [runpod.PodEnvArgs(key=k, value=v) for k, v in sorted(ctx.plan.env.items())]
    secrets = dict(ctx.secret_env)
    if ctx.spec.ssh_public_key:
        # Not secret in itself, but the issue keeps PUBLIC_KEY with the secrets (it names who may log in).
        secrets["SSH_PUBLIC_KEY"] = pulumi.Output.from_input(ctx.spec.ssh_public_key)
    for var in sorted(secrets):
        env.append(runpod.PodEnvArgs(key=var, value=pulumi.Output.secret(secrets[var])))
    return env


class RunpodTarget(PureParts):
    pure = R

    def deploy(self, ctx: TargetContext) -> TargetResult:
        import runpodinfra as runpod

        spec, plan, stack = ctx.spec, ctx.plan, ctx.stack
        template_args: dict[str, Any] = {}
        auth_id = spec.target_settings.container_registry_auth_id
        if auth_id:
            # Private image: the Template carries the console-made registry credential; env and
            # secrets stay on the Pod so the Template holds nothing sensitive.
            template = runpod.Template(
                f"{stack}-template",
                **R.template_args_for(stack, spec, plan, auth_id),
                image_name=ctx.image_ref,
                opts=pulumi.ResourceOptions(parent=ctx.parent),
            )
            template_args["template_id"] = template.id
        pod = runpod.Pod(
            f"{stack}-pod",
            image_name=ctx.image_ref,
            env=pod_env(ctx),
            **template_args,
            **R.pod_args(stack, spec, plan),
            opts=pulumi.ResourceOptions(
                parent=ctx.parent,
                # The provider echoes env (secrets) and registry credentials in `pod`; it and
                # `env` are secret in state whatever the (unmaintained) schema says.
                additional_secret_outputs=["pod", "env"],
            ),
        )
        extra: dict[str, Any] = {
            "pod_id": pod.id,
            "runpod_gpu_type": spec.gpu_info.runpod_id,
            "direct_endpoint_url": R.direct_endpoint(spec, plan),
            "connection_lookup": R.connection_lookup(spec, plan),
        }
        # Where clients connect (through the tunnel when runpod.ssh) is R.endpoint's, read by the component.
        return TargetResult(logs_command=None, extra_outputs=extra, depends_on=[pod])
