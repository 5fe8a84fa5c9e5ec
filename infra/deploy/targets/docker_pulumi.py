"""Docker host target, the Pulumi registration (the pure part, endpoint included, is docker.py).

Resources (all children of the component): a `pulumi_docker.Provider` for the daemon, a
`RemoteImage` for the built ref, a cache `Volume` (HF weights + torch.compile/JIT caches, kept on
destroy: it is a cache shared by the host's stacks and costs a 63 GB download to refill), and
the `Container` (GPUs, host IPC, port, env from the launch plan with secrets as secrets,
healthcheck sized for model loading, restart policy, labels).
"""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from infra import constants as C
from infra.deploy.targets import docker as D
from infra.deploy.targets import toolserver_docker
from infra.deploy.targets.base import PureParts, TargetContext, TargetResult, health_path, startup_grace_seconds


def gpu_devices(spec, plan) -> dict:
    """Container arguments that hand it its GPUs. NVIDIA: a device request (or pinned device ids).
    AMD: the ROCm device nodes, as AMD's docker instructions do."""
    settings = spec.target_settings
    gpu = spec.gpu_info
    if gpu is not None and gpu.vendor == "amd":
        return {
            "devices": [docker.ContainerDeviceArgs(host_path="/dev/kfd"), docker.ContainerDeviceArgs(host_path="/dev/dri")],
            "group_adds": ["video"],
            "security_opts": ["seccomp=unconfined"],
        }
    if settings.device_ids:
        request = docker.ContainerDeviceRequestArgs(driver="nvidia", device_ids=list(settings.device_ids), capabilities=["gpu"])
    else:
        request = docker.ContainerDeviceRequestArgs(driver="nvidia", count=D.gpu_request_count(spec, plan), capabilities=["gpu"])
    return {"device_requests": [request]}


def healthcheck(spec, plan) -> docker.ContainerHealthcheckArgs:
    # python3 is in every engine image (curl is not guaranteed); /health needs no API key.
    probe = (f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{plan.port}{health_path()}', timeout=5)")
    return docker.ContainerHealthcheckArgs(
        tests=["CMD", "python3", "-c", probe],
        start_period=f"{startup_grace_seconds(spec.model)}s",
        start_interval="10s",
        interval="30s",
        timeout="10s",
        retries=3,
    )


class DockerTarget(PureParts):
    pure = D

    def deploy(self, ctx: TargetContext) -> TargetResult:
        spec, plan, stack = ctx.spec, ctx.plan, ctx.stack
        settings = spec.target_settings
        child = pulumi.ResourceOptions(parent=ctx.parent)

        provider_args: dict = {"host": settings.host}
        if ctx.registry_password is not None and spec.image.registry:
            # The daemon pulls the pushed image with these; the password stays a secret.
            provider_args["registry_auth"] = [docker.ProviderRegistryAuthArgs(
                address=spec.image.registry.split("/")[0], username=ctx.registry_username or "",
                password=ctx.registry_password)]
        provider = docker.Provider(f"{stack}-docker", **provider_args, opts=child)
        on_host = pulumi.ResourceOptions(parent=ctx.parent, provider=provider)

        image = docker.RemoteImage(
            f"{stack}-image",
            name=ctx.image_ref,
            # Engine images are ~20 GB and shared by the host's stacks: destroy leaves them.
            keep_locally=True,
            # An unpushed ref is a bare tag; the digest makes a rebuild replace the container.
            triggers={"digest": ctx.image_digest},
            # Pulling a ~20 GB engine image over a slow link outlasts provider defaults.
            opts=pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(
                custom_timeouts=pulumi.CustomTimeouts(create="60m", update="60m"))),
        )
        volume = docker.Volume(
            f"{stack}-cache",
            name=settings.cache_volume,
            labels=[docker.VolumeLabelArgs(label="gptoss.cache", value="true")],
            opts=pulumi.ResourceOptions(parent=ctx.parent, provider=provider, retain_on_delete=True),
        )

        env = container_env(ctx)
        labels = [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(ctx.labels.items())]
        name = D.container_name(stack, spec)
        port = D.published_port(spec)
        tools, tools_first = toolserver_docker.attach(ctx, on_host)  # the python tool server (issue 22)
        container = docker.Container(
            f"{stack}-server",
            name=name,
            image=image.image_id,
            # No command: the image's entrypoint (the launcher) rebuilds this plan from the
            # GPTOSS_STACK_SPEC env, with the GPU it finds and any env overrides, and execs it.
            envs=env,
            mounts=[docker.ContainerMountArgs(target=C.CACHE_ROOT, type="volume", source=volume.name)],
            ports=[docker.ContainerPortArgs(internal=int(plan.port), external=port, ip=settings.publish_address, protocol="tcp")],
            # NCCL and the engines' worker processes share memory through /dev/shm: host IPC as in
            # the image READMEs' `--ipc=host` (gpt-oss-vllm, gpt-oss-sglang); shm_size only matters if an operator switches IPC to private.
            ipc_mode="host",
            shm_size=settings.shm_size_mb,
            healthcheck=healthcheck(spec, plan),
            restart=settings.restart,
            labels=labels,
            # Engines drain in-flight requests on SIGTERM; give them time before SIGKILL.
            stop_timeout=30,
            destroy_grace_seconds=30,
            must_run=True,
            **gpu_devices(spec, plan),
            **tools,
            # The name is fixed and the GPUs are taken: the old container must go before the new
            # one starts (create-before-delete would fail on the name, or on the GPUs).
            opts=pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(delete_before_replace=True, depends_on=tools_first)),
        )
        # Where clients connect (and the tunnel_command output) is D.endpoint's, read by the component.
        extra = {"container_name": name, "docker_host": settings.host}
        return TargetResult(
            logs_command=D.logs_command(stack, spec),
            extra_outputs=extra,
            depends_on=[container],
        )


def container_env(ctx: TargetContext) -> list[pulumi.Input[str]]:
    """KEY=VALUE list: the plan's env (plain, sorted, so diffs stay readable) then each secret as
    its own secret element (so only those are hidden in the diff and the state)."""
    env: list[pulumi.Input[str]] = [f"{k}={v}" for k, v in sorted(ctx.plan.env.items())]
    for var, value in sorted(ctx.secret_env.items()):
        env.append(pulumi.Output.secret(pulumi.Output.concat(var, "=", value)))
    return env
