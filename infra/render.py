"""Render launch plans into files (infra.templating; deterministic: no timestamps, stable order).

`invoke render --stack NAME` / `--all` writes, per stack, into build/render/<stack>/:
  launch.json     the plan: exact argv, env, config files, secret env names (never values)
  vllm.yaml | sglang.args   the backend config file
  docker-run.sh   the equivalent `docker run` for people who do not use Pulumi
  client.env      LLM_BASE_URL / OPENAI_API_KEY placeholder / model name for clients
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from urllib.parse import urlparse

from infra import constants as C
from infra.plan import build_plan
from infra.templating import render_template, sh_quote


def endpoint_base_url(spec) -> str:
    """Where clients reach the API, as far as the stack file can tell (Pulumi outputs are exact)."""
    if spec.target == "docker":
        t = spec.target_settings
        port = t.publish_port or spec.port
        if t.host.startswith("ssh://"):
            host = urlparse(t.host).hostname or "<gpu-host>"
        elif t.publish_address in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        else:
            host = t.publish_address
        return f"http://{host}:{port}/v1"
    if spec.target == "kubernetes":
        ns = spec.target_settings.namespace
        return f"http://gptoss-{spec.stack or 'stack'}.{ns}.svc.cluster.local:{spec.port}/v1"
    return "http://<pod-public-ip>:<tcp-port-for-8000>/v1"




def _gpu_devices(spec, plan) -> list[str]:
    """docker run flags that hand the GPUs to the container."""
    gpu = spec.gpu_info
    if gpu is not None and gpu.vendor == "amd":
        # ROCm: the kernel driver and render nodes, not the NVIDIA runtime's --gpus.
        return ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "video", "--security-opt", "seccomp=unconfined"]
    t = spec.target_settings
    if spec.target == "docker" and t.device_ids:
        # The quotes are Docker's: a comma-separated list is one CSV field of the --gpus value.
        return ["--gpus", f"\"device={','.join(t.device_ids)}\""]
    return ["--gpus", str(plan.gpu_count)]


def image_ref(plan) -> str:
    image = plan.image
    repo = f"{image['registry']}/{image['repository']}" if image["registry"] else image["repository"]
    return f"{repo}:{image['tag']}"


def docker_run_lines(spec, plan, image: str | None = None) -> list[list[str]]:
    """The `docker run` that docker-run.sh execs, as the words docker receives, one group per script
    line (the script is these words shell-quoted; `image` defaults to the plan's image ref)."""
    t = spec.target_settings
    docker = spec.target == "docker"
    name = t.container_name if docker and t.container_name else f"gptoss-{plan.stack or 'stack'}"
    publish = t.publish_address if docker else "127.0.0.1"
    port = (t.publish_port or plan.port) if docker else plan.port
    address = f"[{publish}]" if ":" in publish else publish
    lines = [
        ["run", "--rm", "--name", name],
        [*_gpu_devices(spec, plan), "--ipc=host", "--shm-size", f"{t.shm_size_mb if docker else 16384}m"],
        ["-p", f"{address}:{port}:{plan.port}"],
        ["-v", f"{t.cache_volume if docker else 'gptoss-cache'}:{C.CACHE_ROOT}"],
    ]
    lines += [["-e", f"{k}={v}"] for k, v in plan.env.items()]
    lines += [["-e", k] for k in plan.secret_env]  # by name: docker copies the value from the caller's env
    lines.append([image or image_ref(plan)])
    return lines


def render_plan_files(spec, plan) -> dict[str, str]:
    """All files for one stack, name -> content."""
    lines = docker_run_lines(spec, plan, image="$IMAGE")
    ctx = {
        "plan": plan,
        "image_ref": image_ref(plan),
        # Every word quoted where it is written; "$IMAGE" is the one expansion the script makes.
        "docker_lines": [" ".join('"$IMAGE"' if w == "$IMAGE" else sh_quote(w) for w in line) for line in lines],
    }
    files = dict(plan.files)
    files["launch.json"] = json.dumps(plan.to_launch_json(), indent=2, sort_keys=False) + "\n"
    files["docker-run.sh"] = render_template("docker-run.sh.j2", **ctx)
    files["client.env"] = render_template(
        "client.env.j2", plan=plan, base_url=endpoint_base_url(spec),
        served_model=spec.served_model_name or spec.model)
    return dict(sorted(files.items()))


def render_stack(name: str, out_root: Path | None = None, stacks_dir: Path | None = None) -> Path:
    from infra.stackfile import load_stack

    spec = load_stack(name, stacks_dir)
    plan = build_plan(spec)
    out = (out_root or C.RENDER_DIR) / name
    out.mkdir(parents=True, exist_ok=True)
    for fname, content in render_plan_files(spec, plan).items():
        path = out / fname
        path.write_text(content, encoding="utf-8")
        if fname.endswith(".sh"):
            path.chmod(0o755)
    return out
