"""Docker host target, the pure part: one container on a GPU host's Docker daemon, local or over SSH.

What the target decides without Pulumi: its refusals (`validate`), where the endpoint is
(`endpoint`: the published address, or the SSH tunnel's loopback), and the `docker run` words that
docker-run.sh execs (`docker_run`; with the python tool, `tool_server_run` and the network first).
The Pulumi registration is docker_pulumi.py (the tool server's: toolserver_docker.py).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from infra import builtin_tools as BT
from infra import constants as C
from infra.deploy.targets.endpoint import LOOPBACK_HOST, Endpoint
from infra.spec import SpecError
from infra.toolserver import isolation as I

LOOPBACK = C.LOOPBACK_HOSTS
ALL_ADDRESSES = C.ALL_ADDRESSES


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
    return _run_settings(spec).container_name or f"{C.NAME_PREFIX}{stack}"


def published_port(spec) -> int:
    return spec.target_settings.publish_port or spec.port


def client_host(spec) -> str:
    """The address a client on the deploying machine uses. A remote daemon publishing on its own
    loopback is reached through an SSH tunnel, so that address is local too."""
    settings = spec.target_settings
    host = settings.host
    if settings.publish_address in LOOPBACK:
        return LOOPBACK_HOST
    if is_local_daemon(host):
        return LOOPBACK_HOST if settings.publish_address in ALL_ADDRESSES else settings.publish_address
    if settings.publish_address not in ALL_ADDRESSES:
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


def gpu_request_count(spec, plan) -> int:
    """GPUs to hand the container: the plan's count (TP), except when the launcher is to size TP
    from what it finds (gpu auto, tensor_parallel auto, 120b: all GPUs, as the image READMEs do): -1 = all."""
    if spec.gpu == "auto" and spec.tp_uses_all_gpus:
        return -1
    return int(plan.gpu_count)


def validate(spec, plan) -> None:
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


def build_host(spec) -> str | None:
    # Without a registry the image must be built by (and stay on) the daemon that runs it.
    push = spec.image.push if spec.image.push is not None else bool(spec.image.registry)
    return None if push else daemon_host(spec)


def endpoint(spec, plan=None, stack: str | None = None) -> Endpoint:
    """Where a client on the deploying machine reaches the container (infra.deploy.targets.endpoint)."""
    tunnel = tunnel_command(spec)
    if tunnel:
        return Endpoint(host=client_host(spec), port=published_port(spec), access="ssh-tunnel", via=tuple(tunnel),
                        reaches=f"{ssh_destination(spec.target_settings.host)}'s loopback")
    return Endpoint(host=client_host(spec), port=published_port(spec), access="direct")


def _run_settings(spec):
    """The Docker settings docker-run.sh uses: the stack's, or the defaults for a stack of another target."""
    from infra.spec import DockerTarget

    return spec.target_settings if spec.target == "docker" else DockerTarget()


def docker_run_gpu_flags(spec, plan) -> list[str]:
    """`docker run` flags that hand the GPUs to the container."""
    gpu = spec.gpu_info
    if gpu is not None and gpu.vendor == "amd":
        # ROCm: the kernel driver and render nodes, not the NVIDIA runtime's --gpus.
        return ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "video", "--security-opt", "seccomp=unconfined"]
    settings = _run_settings(spec)
    if settings.device_ids:
        # The quotes are Docker's: a comma-separated list is one CSV field of the --gpus value.
        return ["--gpus", f"\"device={','.join(settings.device_ids)}\""]
    return ["--gpus", str(plan.gpu_count)]


def docker_run(spec, plan, image: str, verb: str = "run") -> list[list[str]]:
    """The `docker run` that docker-run.sh execs, as the words docker receives, one group per script
    line (verb "create": the same container, created to join the tool network before it starts).
    A stack of another target gets the same container with the Docker defaults on the loopback."""
    settings = _run_settings(spec)
    name = container_name(plan.stack or "stack", spec)
    port = (settings.publish_port or plan.port) if spec.target == "docker" else plan.port
    address = f"[{settings.publish_address}]" if ":" in settings.publish_address else settings.publish_address
    lines = [
        [verb, "--rm", "--name", name],
        [*docker_run_gpu_flags(spec, plan), "--ipc=host", "--shm-size", f"{settings.shm_size_mb}m"],
        ["-p", f"{address}:{port}:{plan.port}"],
        ["-v", f"{settings.cache_volume}:{C.CACHE_ROOT}"],
    ]
    lines += [["-e", f"{k}={v}"] for k, v in plan.env.items()]
    lines += [["-e", k] for k in plan.secret_env]  # by name: docker copies the value from the caller's env
    lines.append([image])
    return lines


# ---------------------------------------------------------------- the python tool server (issue 22)

def tools_network(stack: str, spec) -> str:
    """The stack's private Docker network: `internal` (no route out, nothing publishable); tool server + engine."""
    return f"{container_name(stack, spec)}-tools"


def tool_server_name(stack: str, spec) -> str:
    return f"{container_name(stack, spec)}-python-tool"


def tool_server_alias(spec) -> str:
    """The tool server's name on that network: the host of the plan's --tool-server address (python-tool)."""
    return BT.tool_server_address(spec).rsplit(":", 1)[0]


def tools_network_create(spec, plan) -> list[str]:
    stack = plan.stack or "stack"
    return ["network", "create", "--internal", "--label", f"gptoss.stack={stack}", tools_network(stack, spec)]


def tool_server_run(spec, plan, image: str) -> list[list[str]]:
    """The tool server's `docker run` in docker-run.sh (one group per script line): on the stack's private network
    only, as the plan's alias, no published port, infra/toolserver/isolation.py's options, the per-call limits as
    its env and nothing else (no secret, no mount, no Docker socket)."""
    stack = plan.stack or "stack"
    limits = BT.container_limits(spec)
    runtime = BT.python_tool(spec).runtime
    return [
        ["run", "--detach", "--rm", "--name", tool_server_name(stack, spec)],
        ["--network", tools_network(stack, spec), "--network-alias", tool_server_alias(spec)],
        [*I.docker_run_options(limits), *(["--runtime", runtime] if runtime else [])],
        *[["-e", f"{k}={v}"] for k, v in sorted(BT.server_env(spec).items())],
        [image, *I.container(limits)["command"]],
    ]
