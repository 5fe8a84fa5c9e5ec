"""RunPod target: one GPU pod, as the gpt-oss-vllm and gpt-oss-sglang RunPod READMEs set it up by hand (issue 6), with the `runpodinfra`
Pulumi SDK (resource `runpod:index:Pod`; provider token from the `runpod:token` config secret).

This module is the pure part (refusals, the pod's arguments as plain data, where the endpoint is);
runpod_pulumi.py registers the pod (same protocol as the other targets, infra/deploy/targets/base.py).

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

from infra import constants as C
from infra.catalogue import base_image
from infra.deploy.targets.endpoint import LOOPBACK_HOST, Endpoint
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
    return f"{C.NAME_PREFIX}{stack}"


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


def direct_endpoint(spec, plan) -> str:
    return f"http://{PUBLIC_IP_PLACEHOLDER}:{API_PORT_PLACEHOLDER.format(port=plan.port)}/v1"


def tunnel_command(spec, plan) -> list[str] | None:
    """The RunPod READMEs' Option B: forward the API port over the pod's SSH (22/tcp), then use localhost."""
    if not spec.target_settings.ssh:
        return None
    port = str(spec.port)
    return ["ssh", "-N", "-L", f"{port}:127.0.0.1:{int(plan.port)}", "-p", SSH_PORT_PLACEHOLDER,
            f"root@{PUBLIC_IP_PLACEHOLDER}"]


def connection_lookup(spec, plan) -> str:
    return ("RunPod console > Pods > this pod > Connect: the public IP and the public ports mapped to "
            + ports_string(spec, plan) + " (the RunPod Pulumi SDK does not return them)")


def build_host(spec) -> str | None:
    return None  # the image is pushed; RunPod pulls it


def endpoint(spec, plan, stack: str | None = None) -> Endpoint:
    """With runpod.ssh, the RunPod READMEs' SSH tunnel to the pod's API port, so the endpoint is local;
    without, the pod's direct TCP port, whose public IP and port RunPod assigns at start (placeholders)."""
    tunnel = tunnel_command(spec, plan)
    if tunnel:
        return Endpoint(host=LOOPBACK_HOST, port=spec.port, access="ssh-tunnel", via=tuple(tunnel),
                        reaches=f"the pod's port {int(plan.port)} (its public IP and the public port of 22/tcp: "
                                "RunPod console > Pods > this pod > Connect)")
    return Endpoint(host=PUBLIC_IP_PLACEHOLDER, port=API_PORT_PLACEHOLDER.format(port=plan.port), access="direct",
                    reaches=f"Fill in the placeholders from {connection_lookup(spec, plan)}")


__all__ = ["validate", "endpoint", "pod_args", "ports_string", "tunnel_command", "SDK_GAPS", "POD_TYPE"]
