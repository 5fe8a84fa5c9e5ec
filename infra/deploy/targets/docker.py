"""Docker host target: one container on a GPU host's Docker daemon, local or over SSH.

Resources (all children of the component): a `pulumi_docker.Provider` for the daemon, a
`RemoteImage` for the built ref, a cache `Volume` (HF weights + torch.compile/JIT caches, kept on
destroy: it is a cache shared by the host's stacks and costs a 63 GB download to refill), and
the `Container` (GPUs, host IPC, port, env from the launch plan with secrets as secrets,
healthcheck sized for model loading, restart policy, labels).
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pulumi
import pulumi_docker as docker

from infra import constants as C
from infra.deploy.targets.base import TargetContext, TargetResult, health_path, startup_grace_seconds
from infra.spec import SpecError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def daemon_host(spec) -> str:
    return spec.target_settings.host


def is_local_daemon(host: str) -> bool:
    return host.startswith("unix://") or urlsplit(host).hostname in LOOPBACK


def ssh_destination(host: str) -> str | None:
    """`user@host` of an ssh:// daemon address, for the tunnel command."""
    if not host.startswith("ssh://"):
        return None
    parts = urlsplit(host)
    dest = f"{parts.username}@{parts.hostname}" if parts.username else str(parts.hostname)
    return dest


def container_name(stack: str, spec) -> str:
    return spec.target_settings.container_name or f"gptoss-{stack}"


def published_port(spec) -> int:
    return spec.target_settings.publish_port or spec.port


def client_host(spec) -> str:
    """The address a client on the deploying machine uses. A remote daemon publishing on its own
    loopback is reached through an SSH tunnel, so that address is local too."""
    settings = spec.target_settings
    host = settings.host
    if settings.publish_address in LOOPBACK:
        return "127.0.0.1"
    if is_local_daemon(host):
        return "127.0.0.1" if settings.publish_address in ("0.0.0.0", "::") else settings.publish_address
    if settings.publish_address not in ("0.0.0.0", "::"):
        return settings.publish_address
    return str(urlsplit(host).hostname)


def tunnel_command(spec) -> list[str] | None:
    """For an SSH daemon publishing on its loopback: the port forward that makes the endpoint local."""
    settings = spec.target_settings
    dest = ssh_destination(settings.host)
    if dest is None or settings.publish_address not in LOOPBACK:
        return None
    port = published_port(spec)
    # `--` ends ssh's options: a destination can never be read as one (-oProxyCommand=...).
    argv = ["ssh", "-N", "-L", f"{port}:127.0.0.1:{port}", "--", not_an_option(dest, "docker.host", spec)]
    ssh_port = urlsplit(settings.host).port
    if ssh_port:
        argv[1:1] = ["-p", str(ssh_port)]
    return argv


def logs_command(stack: str, spec) -> list[str]:
    host = daemon_host(spec)
    argv = ["docker"]
    if host != "unix:///var/run/docker.sock":
        argv += ["-H", host]
    return argv + ["logs", "--tail", "200", "--", not_an_option(container_name(stack, spec), "docker.container_name", spec)]


def not_an_option(word: str, field: str, spec) -> str:
    """A host or name placed where a command reads options; the spec refuses these already, this
    keeps a command built from anything else from turning into an option (--help, -oProxyCommand=)."""
    if not word or word.startswith("-"):
        raise SpecError(field, word, "would be read as a command-line option", "use a name that starts with a letter or digit",
                        stack=spec.stack or None)
    return word


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
        request = docker.ContainerDeviceRequestArgs(driver="nvidia", count=gpu_request_count(spec, plan), capabilities=["gpu"])
    return {"device_requests": [request]}


def gpu_request_count(spec, plan) -> int:
    """GPUs to hand the container: the plan's count (TP), except when the launcher is to size TP
    from what it finds (gpu auto, tensor_parallel auto, 120b: all GPUs, as the image READMEs do): -1 = all."""
    if spec.gpu == "auto" and spec.tp_uses_all_gpus:
        return -1
    return int(plan.gpu_count)


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


class DockerTarget:
    name = "docker"

    def validate(self, spec, plan) -> None:
        # docker.host, publish_address and the names are checked where the spec is read (infra.spec).
        settings = spec.target_settings
        gpu = spec.gpu_info
        if settings.device_ids and gpu is not None and len(settings.device_ids) < int(plan.gpu_count):
            raise SpecError("docker.device_ids", settings.device_ids,
                            f"pins {len(settings.device_ids)} GPU(s) but the plan needs {plan.gpu_count}",
                            f"list {plan.gpu_count} device ids or lower gpu_count", stack=spec.stack or None)
        if settings.device_ids and gpu is not None and gpu.vendor == "amd":
            raise SpecError("docker.device_ids", settings.device_ids, "pinning is implemented for NVIDIA GPUs only",
                            "remove docker.device_ids (use HIP_VISIBLE_DEVICES in env instead)", stack=spec.stack or None)

    def build_host(self, spec) -> str | None:
        # Without a registry the image must be built by (and stay on) the daemon that runs it.
        push = spec.image.push if spec.image.push is not None else bool(spec.image.registry)
        return None if push else daemon_host(spec)

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
        name = container_name(stack, spec)
        port = published_port(spec)
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
            # The name is fixed and the GPUs are taken: the old container must go before the new
            # one starts (create-before-delete would fail on the name, or on the GPUs).
            opts=pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(delete_before_replace=True)),
        )
        extra = {"container_name": name, "docker_host": settings.host}
        tunnel = tunnel_command(spec)
        if tunnel:
            extra["tunnel_command"] = tunnel
        return TargetResult(
            host=client_host(spec),
            port=port,
            logs_command=logs_command(stack, spec),
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
