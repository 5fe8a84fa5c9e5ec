"""RunPod target: one GPU pod, as the gpt-oss-vllm and gpt-oss-sglang RunPod READMEs set it up by hand (issue 6), with the `runpodinfra`
Pulumi SDK (resource `runpod:index:Pod`; provider token from the `runpod:token` config secret).

Interface (same protocol as the Docker target, infra/deploy/targets/base.py):

    target = RunpodTarget()
    target.validate(spec, plan)          # SpecError for anything impossible; registers nothing
    target.build_host(spec) -> None      # the image is pushed; RunPod pulls it
    result = target.deploy(ctx)          # ctx: TargetContext -> TargetResult

The RunPod READMEs' pod, field by field (`pod_args` builds it as plain data, tests compare it):
    GPU type            catalogue `runpod_id` (H200, H100 80GB HBM3, A100-SXM4-80GB, L40S, RTX 4090)
    image               the pushed ref (tag@digest) from the image build
    volume              runpod.volume_gb (100 GB, the RunPod READMEs) at CACHE_ROOT, or a network volume
                        (runpod.network_volume_id) reused across pods for the HF + compile caches
    ports               "8000/tcp,22/tcp": TCP, not RunPod's HTTP proxy (its ~30 s Cloudflare
                        timeout cuts long generations, the RunPod READMEs); 22 only with runpod.ssh
    env                 the launch plan's env (plain) + API_KEY, HF_TOKEN, SSH_PASSWORD and the
                        stack's SSH public key as Pulumi secrets (RunPod also injects PUBLIC_KEY
                        from the account settings itself)
    command             none: the image's entrypoint (the launcher) rebuilds the plan from
                        GPTOSS_STACK_SPEC in the env

What the SDK cannot express (runpodinfra 1.9.99, generated mid-2024) is listed in
`SDK_GAPS`; the endpoint outputs say where to read the two values the SDK does not return.
"""
from __future__ import annotations

from typing import Any

import pulumi

from infra import constants as C
from infra.catalogue import base_image
from infra.deploy.targets.base import TargetContext, TargetResult
from infra.spec import SpecError

POD_TYPE = "runpod:index:Pod"
SSH_PORT = 22
PUBLIC_IP_PLACEHOLDER = "<public-ip>"
# Placeholders for what RunPod assigns when the pod starts (pod.runtime.ports: publicPort for
# each privatePort); the SDK's Pod output has no `runtime`, so Pulumi cannot know them.
API_PORT_PLACEHOLDER = "<public-port-of-{port}>"
SSH_PORT_PLACEHOLDER = "<public-port-of-22>"

SDK_GAPS = (
    "the pod's public IP and the public ports RunPod maps to 8000/tcp and 22/tcp (GraphQL "
    "pod.runtime.ports) are not outputs of runpod:index:Pod, so the direct TCP endpoint and the SSH "
    "tunnel command carry placeholders to fill from the console's Connect tab",
    "no registry credentials on a Pod and no resource to create RunPod container-registry auth: "
    "only runpod:index:Template takes an existing containerRegistryAuthId, so a private image needs an "
    "auth made in the RunPod console, named by runpod.container_registry_auth_id (the target then adds "
    "a private Template for it), or a public image",
    "no health check / restart policy / shm size on a Pod (RunPod sets them for every pod)",
    "no logs API: server logs are only in the console",
    "the Pod output `pod` echoes env (API key, HF token) and registry password in plain fields; the "
    "SDK does not mark it secret, so this target adds additional_secret_outputs for it",
)


def _err(spec, field: str, value: Any, problem: str, fix: str) -> SpecError:
    return SpecError(field, value, problem, fix, stack=spec.stack or None)


def pod_name(stack: str) -> str:
    return f"gptoss-{stack}"


def ports_string(spec, plan) -> str:
    ports = [f"{int(plan.port)}/tcp"]
    if spec.target_settings.ssh:
        ports.append(f"{SSH_PORT}/tcp")
    return ",".join(ports)


def runpod_gpus() -> list[str]:
    """Catalogue GPUs that RunPod rents (those with a runpod_id)."""
    from infra.catalogue import gpus

    return [g.id for g in gpus().values() if g.runpod_id]


def validate(spec, plan) -> None:
    settings = spec.target_settings
    gpu = spec.gpu_info
    if gpu is None:
        raise _err(spec, "gpu", spec.gpu, "a RunPod pod is rented by GPU type, so the GPU must be named",
                   f"set gpu to one of the catalogued GPUs RunPod offers ({', '.join(runpod_gpus())})")
    if not gpu.runpod_id:
        raise _err(spec, "gpu", spec.gpu, f"{gpu.name} is not offered on RunPod (no runpod_id in the catalogue)",
                   "pick a GPU RunPod offers, or use the docker/kubernetes target for this GPU")
    # gpu_count above the GPU's max_per_node is refused by the spec itself (infra/spec.py).
    if settings.network_volume_id and settings.data_center_id is None:
        # A network volume lives in one data center; the pod must be placed there.
        raise _err(spec, "runpod.data_center_id", None,
                   f"runpod.network_volume_id ({settings.network_volume_id}) pins the pod to the volume's data center",
                   "set runpod.data_center_id to the volume's data center (RunPod console > Storage)")


def pod_args(stack: str, spec, plan) -> dict[str, Any]:
    """The Pod's plain (non-secret, non-Output) arguments."""
    settings = spec.target_settings
    gpu = spec.gpu_info
    args: dict[str, Any] = {
        "name": pod_name(stack),
        "gpu_type_id": gpu.runpod_id,
        "gpu_count": int(plan.gpu_count),
        "cloud_type": settings.cloud_type,
        "container_disk_in_gb": settings.container_disk_gb,
        "ports": ports_string(spec, plan),
        "volume_mount_path": C.CACHE_ROOT,
        # Direct TCP ports need a public IP (always on Secure Cloud, optional on Community).
        "support_public_ip": True,
        # start_ssh makes RunPod's own images start sshd; in ours the launcher starts it from the
        # SSH_PUBLIC_KEY / PUBLIC_KEY env, so this only mirrors the setting.
        "start_ssh": settings.ssh,
    }
    if settings.network_volume_id:
        args["network_volume_id"] = settings.network_volume_id
    else:
        args["volume_in_gb"] = settings.volume_gb
    if settings.data_center_id:
        args["data_center_id"] = settings.data_center_id
    cuda = base_image(spec.backend, gpu).get("cuda")
    if cuda:  # only hosts whose driver runs the image's CUDA (images.yaml; the launcher checks it again)
        args["cuda_version"] = cuda
    return args


def template_args_for(stack: str, spec, plan, auth_id: str) -> dict[str, Any]:
    """A private Template that only adds the registry credential (RunPod's one place for it)."""
    pod = pod_args(stack, spec, plan)
    return {
        "name": f"{pod['name']}-template",
        "container_registry_auth_id": auth_id,
        "is_public": False,
        "is_serverless": False,
        "container_disk_in_gb": pod["container_disk_in_gb"],
        "volume_in_gb": pod.get("volume_in_gb", 0),
        "volume_mount_path": pod["volume_mount_path"],
        "ports": pod["ports"],
        "start_ssh": pod["start_ssh"],
        "readme": f"gptoss-stacks {stack}: {plan.backend} serving {plan.model}",
        # Required by the schema. Empty: the image's entrypoint (the launcher) decides the command,
        # and the env (with the secrets) is set on the Pod, which overrides the template's.
        "docker_args": "",
        "env": [],
    }


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


def direct_endpoint(spec, plan) -> str:
    return f"http://{PUBLIC_IP_PLACEHOLDER}:{API_PORT_PLACEHOLDER.format(port=plan.port)}/v1"


def tunnel_command(spec, plan) -> list[str] | None:
    """The RunPod READMEs' Option B: forward the API port over the pod's SSH (22/tcp), then use localhost."""
    if not spec.target_settings.ssh:
        return None
    port = str(spec.port)
    return ["ssh", "-N", "-L", f"{port}:127.0.0.1:{int(plan.port)}", "-p", SSH_PORT_PLACEHOLDER,
            f"root@{PUBLIC_IP_PLACEHOLDER}"]


class RunpodTarget:
    name = "runpod"

    def validate(self, spec, plan) -> None:
        validate(spec, plan)

    def build_host(self, spec) -> str | None:
        return None

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
                **template_args_for(stack, spec, plan, auth_id),
                image_name=ctx.image_ref,
                opts=pulumi.ResourceOptions(parent=ctx.parent),
            )
            template_args["template_id"] = template.id
        pod = runpod.Pod(
            f"{stack}-pod",
            image_name=ctx.image_ref,
            env=pod_env(ctx),
            **template_args,
            **pod_args(stack, spec, plan),
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
            "direct_endpoint_url": direct_endpoint(spec, plan),
            "connection_lookup": "RunPod console > Pods > this pod > Connect: the public IP and the public "
                                 "ports mapped to " + ports_string(spec, plan) + " (the RunPod Pulumi SDK "
                                 "does not return them)",
        }
        tunnel = tunnel_command(spec, plan)
        if tunnel:
            extra["tunnel_command"] = tunnel
            # Through the tunnel the endpoint is local: what smoke-test/bench use once it runs.
            host, port = "127.0.0.1", spec.port
        else:
            host, port = PUBLIC_IP_PLACEHOLDER, API_PORT_PLACEHOLDER.format(port=plan.port)
        return TargetResult(host=host, port=port, logs_command=None, extra_outputs=extra, depends_on=[pod])


def deploy(ctx: TargetContext) -> TargetResult:
    validate(ctx.spec, ctx.plan)
    return RunpodTarget().deploy(ctx)


__all__ = ["RunpodTarget", "deploy", "validate", "pod_args", "ports_string", "tunnel_command", "SDK_GAPS", "POD_TYPE"]
