"""Render launch plans into files (infra.templating; deterministic: no timestamps, stable order).

`invoke render --stack NAME` / `--all` writes, per stack, into build/render/<stack>/:
  launch.json     the plan: exact argv, env, config files, secret env names (never values)
  vllm.yaml | sglang.args   the backend config file
  docker-run.sh   the equivalent `docker run` for people who do not use Pulumi
  client.env      LLM_BASE_URL / OPENAI_API_KEY placeholder / model name for clients: the target's
                  endpoint(), the same one the deployed client_env output is made from
"""
from __future__ import annotations

import json
from pathlib import Path

from infra import constants as C
from infra.deploy.targets import target_endpoint
from infra.builtin_tools import image_ref as tool_image_ref
from infra.builtin_tools import runs_tool_server
from infra.deploy.targets import docker as D
from infra.deploy.targets.docker import docker_run
from infra.deploy.targets.endpoint import client_env_text
from infra.plan import build_plan
from infra.templating import render_template, sh_quote


def image_ref(plan) -> str:
    image = plan.image
    repo = f"{image['registry']}/{image['repository']}" if image["registry"] else image["repository"]
    return f"{repo}:{image['tag']}"


def docker_run_lines(spec, plan, image: str | None = None) -> list[list[str]]:
    """The `docker run` that docker-run.sh execs (the Docker target's, infra.deploy.targets.docker),
    as the words docker receives; `image` defaults to the plan's image ref."""
    return docker_run(spec, plan, image or image_ref(plan))


# The expansions docker-run.sh makes (the images, overridable from the caller's env); every other word is quoted.
_EXPANSIONS = ("$IMAGE", "$TOOL_IMAGE")


def _script_words(line: list[str]) -> str:
    return " ".join(f'"{w}"' if w in _EXPANSIONS else sh_quote(w) for w in line)


def tool_server_steps(spec, plan) -> dict | None:
    """docker-run.sh's python tool server (a stack that runs one): the private network, the tool server, and the
    engine created on Docker's default bridge (its published port), joined to that network, then started."""
    if not runs_tool_server(spec):
        return None
    stack = plan.stack or "stack"
    return {
        "image": tool_image_ref(spec),
        "network": sh_quote(D.tools_network(stack, spec)),
        "network_create": _script_words(D.tools_network_create(spec, plan)),
        "container": sh_quote(D.tool_server_name(stack, spec)),
        "run_lines": [_script_words(line) for line in D.tool_server_run(spec, plan, "$TOOL_IMAGE")],
        "engine": sh_quote(D.container_name(stack, spec)),
    }


def render_plan_files(spec, plan) -> dict[str, str]:
    """All files for one stack, name -> content."""
    tools = tool_server_steps(spec, plan)
    # With the tool server the engine is created, joined to its network, then started (docker run takes one network).
    lines = docker_run(spec, plan, "$IMAGE", verb="create") if tools else docker_run_lines(spec, plan, image="$IMAGE")
    ctx = {
        "plan": plan,
        "image_ref": image_ref(plan),
        # Every word quoted where it is written; "$IMAGE" (and "$TOOL_IMAGE") are the only expansions.
        "docker_lines": [_script_words(line) for line in lines],
        "tools": tools,
    }
    files = dict(plan.files)
    files["launch.json"] = json.dumps(plan.to_launch_json(), indent=2, sort_keys=False) + "\n"
    files["docker-run.sh"] = render_template("docker-run.sh.j2", **ctx)
    # The target's own endpoint, the one the deployed client_env output is made from.
    files["client.env"] = client_env_text(
        target_endpoint(spec, plan, plan.stack or None), stack=plan.stack, served_model=spec.served_model_name or spec.model,
        api_key=None, key_required="API_KEY" in plan.secret_env)
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
