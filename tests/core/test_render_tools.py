"""docker-run.sh of a stack with the python tool (issue 22): run by bash with a fake `docker` first on PATH that
records every call, the script must create the private network (once), start the tool server on it with
isolation.py's options and the plan's alias, create the engine, join it to that network, start it, and remove the
tool server when the engine stops. Exactly those words reach docker, each one a word (quoted where written)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from infra import builtin_tools as BT
from infra.deploy.targets import docker as D
from infra.plan import build_plan
from infra.render import render_plan_files
from infra.stackfile import load_stack
from infra.toolserver import isolation as I

STACK = "h200-vllm-tools"
FAKE_DOCKER = r"""#!/bin/sh
n=$(ls "$CALLS" | wc -l)
printf '%s\0' "$@" > "$CALLS/$(printf %03d "$n")"
if [ "$1 $2" = "network inspect" ]; then exit "${NETWORK_EXISTS:-1}"; fi
if [ "$1" = start ]; then exit "${ENGINE_EXIT:-0}"; fi
exit 0
"""


@pytest.fixture
def stack():
    spec = load_stack(STACK)
    return spec, build_plan(spec)


def run(script: str, tmp_path: Path, **env) -> tuple[int, list[list[str]]]:
    bindir, calls = tmp_path / "bin", tmp_path / "calls"
    bindir.mkdir(exist_ok=True)
    calls.mkdir(exist_ok=True)
    (bindir / "docker").write_text(FAKE_DOCKER)
    (bindir / "docker").chmod(0o755)
    path = tmp_path / "docker-run.sh"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)
    r = subprocess.run(["bash", str(path)], cwd=tmp_path, timeout=20, capture_output=True, text=True,
                       env={"PATH": f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin", "CALLS": str(calls), "API_KEY": "k", **env})
    return r.returncode, [p.read_bytes().decode().split("\0")[:-1] for p in sorted(calls.iterdir())]


def flat(lines: list[list[str]]) -> list[str]:
    return [w for line in lines for w in line]


def test_docker_run_sh_starts_the_tool_server_on_the_private_network_then_the_engine(stack, tmp_path):
    spec, plan = stack
    net, tool, engine = D.tools_network(STACK, spec), D.tool_server_name(STACK, spec), D.container_name(STACK, spec)
    rc, calls = run(render_plan_files(spec, plan)["docker-run.sh"], tmp_path)
    assert rc == 0
    image, tool_image = "ghcr.io/your-org/gptoss-vllm:0.33.0-cuda", BT.image_ref(spec)
    assert tool_image == f"ghcr.io/your-org/gptoss-toolserver:{BT.image_tag()}" and not tool_image.endswith(":latest")
    assert calls == [
        ["network", "inspect", net],
        ["network", "create", "--internal", "--label", f"gptoss.stack={STACK}", net],
        ["rm", "--force", tool],
        flat(D.tool_server_run(spec, plan, tool_image)),
        flat(D.docker_run(spec, plan, image, verb="create")),
        ["network", "connect", net, engine],
        ["start", "--attach", engine],
        ["rm", "--force", tool],  # the EXIT trap: the tool server goes with the engine
    ]
    # the tool server: that network only, as the plan's --tool-server host, nothing published, mounted or secret
    words = calls[3]
    assert words[words.index("--network") + 1] == net and words.count("--network") == 1
    host, port = plan.argv[plan.argv.index("--tool-server") + 1].rsplit(":", 1)
    assert words[words.index("--network-alias") + 1] == host == "python-tool" and port == str(I.PORT)
    assert not {"-p", "--publish", "-P", "-v", "--volume", "--mount", "--privileged"} & set(words)
    options = I.docker_run_options(BT.container_limits(spec))  # non-root, read-only, no capabilities, limits
    assert words[9:9 + len(options)] == options and "--read-only" in options and "ALL" in options
    env = [words[i + 1] for i, w in enumerate(words) if w == "-e"]
    assert env == [f"{k}={v}" for k, v in sorted(BT.server_env(spec).items())]
    assert not any(name in " ".join(env) for name in I.FORBIDDEN_ENV)
    assert words[words.index(tool_image) + 1:] == I.CONTAINER["command"]
    # the engine keeps its published port (on the default bridge) and joins the private network before it starts
    assert calls[4][0] == "create" and "-p" in calls[4] and "--network" not in calls[4]


def test_an_existing_network_is_reused_and_the_engine_exit_status_is_the_script_s(stack, tmp_path):
    spec, plan = stack
    rc, calls = run(render_plan_files(spec, plan)["docker-run.sh"], tmp_path, NETWORK_EXISTS="0", ENGINE_EXIT="3",
                    TOOL_IMAGE="localhost:5000/my-toolserver:dev", IMAGE="localhost:5000/my-engine:dev")
    assert rc == 3
    assert [c[:2] for c in calls] == [["network", "inspect"], ["rm", "--force"], ["run", "--detach"], ["create", "--rm"],
                                      ["network", "connect"], ["start", "--attach"], ["rm", "--force"]]
    assert "localhost:5000/my-toolserver:dev" in calls[2] and calls[3][-1] == "localhost:5000/my-engine:dev"


def test_stacks_without_the_tool_still_exec_one_docker_run(tmp_path):
    spec = load_stack("h200-vllm")
    script = render_plan_files(spec, build_plan(spec))["docker-run.sh"]
    assert "exec docker run" in script and "TOOL_IMAGE" not in script and "network" not in script
    rc, calls = run(script, tmp_path)
    assert rc == 0 and len(calls) == 1 and calls[0][0] == "run"


def test_hostile_container_names_are_refused_or_stay_one_word(tmp_path):
    """The names the tool lines derive from the stack (container name, stack) are quoted where written."""
    from infra.spec import load_spec

    cfg = {"backend": "vllm", "model": "openai/gpt-oss-20b", "gpu": "auto", "target": "docker",
           "image": {"push": False, "allow_unpinned_base": True}, "docker": {"container_name": "my.box_1"},
           "env": {"NOTE": "$(touch pwned) `touch pwned`"}, "builtin_tools": {"python": {"enabled": True}}}
    spec = load_spec(cfg, stack="prop")
    plan = build_plan(spec)
    rc, calls = run(render_plan_files(spec, plan)["docker-run.sh"], tmp_path)
    assert rc == 0 and not (tmp_path / "pwned").exists()
    assert calls[0] == ["network", "inspect", "my.box_1-tools"] and calls[-2] == ["start", "--attach", "my.box_1"]
    assert "NOTE=$(touch pwned) `touch pwned`" in calls[4]
