"""Docker targets: the python tool server (issue 22) beside the engine container.

A stack with `builtin_tools.python.enabled` (and no `address` of the user's own) gets:
- a Docker network of its own, `internal` (Docker gives it no route out: no egress, and no port of it
  can be published), that the engine container joins besides its usual one;
- the tool server container on that network only, reachable as `python-tool` (constants.TOOLSERVER_DOCKER_ALIAS),
  with no published port, isolated as infra/toolserver/isolation.py says (non-root, read-only root, a small
  tmpfs for the conversations' files, every capability dropped, no-new-privileges, process / memory / CPU
  limits; `builtin_tools.python.runtime` as Docker's --runtime for gVisor or Kata). It gets the per-call limits
  (infra.builtin_tools.server_env) and nothing else: no Docker socket, no mount, no secret.

The engine container is created after the tool server is healthy: both engines connect to the tool
server when they start (`--tool-server`), and vLLM refuses to start when it cannot.
"""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from infra import builtin_tools as BT
from infra.deploy.targets import docker as D
from infra.toolserver import isolation as I


def sandbox_options(spec) -> dict:
    """The tool server container's isolation (infra/toolserver/isolation.py container(), the one source) as
    pulumi_docker.Container arguments. The provider has no pids-limit argument: the uid's RLIMIT_NPROC (nproc)
    caps the container's processes instead (uid 10002 runs nothing else on the host)."""
    c = I.container(BT.container_limits(spec))
    memory = int(c["memory"].removesuffix("m"))
    runtime = BT.python_tool(spec).runtime
    return {
        **({"runtime": runtime} if runtime else {}),  # gVisor (runsc), Kata: registered with the daemon
        "user": c["user"],
        "read_only": c["read_only"],
        "tmpfs": dict(c["tmpfs"]),
        "capabilities": docker.ContainerCapabilitiesArgs(drops=list(c["cap_drop"])),
        "security_opts": list(c["security_opt"]),
        "memory": memory,
        "memory_swap": int(c["memory_swap"].removesuffix("m")),
        "cpus": str(c["cpus"]),
        "ulimits": [docker.ContainerUlimitArgs(name="nproc", soft=c["pids_limit"], hard=c["pids_limit"])],
        "ipc_mode": c["ipc"],
        "privileged": False,
        "command": list(c["command"]),
    }


def attach(ctx, on_host: pulumi.ResourceOptions) -> tuple[dict, list[pulumi.Resource]]:
    """For a stack with the python tool: register the network and the tool server, and return the engine
    container's extra arguments (the network) and what it must wait for. ({}, []) without the tool."""
    spec, stack = ctx.spec, ctx.stack
    if not BT.runs_tool_server(spec):
        return {}, []
    network = docker.Network(
        f"{stack}-tools-net", name=D.tools_network(stack, spec), internal=True, driver="bridge",
        labels=[docker.NetworkLabelArgs(label="gptoss.stack", value=stack)], opts=on_host)
    # The image the component built (tag@digest when pushed, else the tag loaded into this daemon); a rebuild
    # under the same tag still replaces the container (the digest trigger), as for the engine image.
    image = docker.RemoteImage(f"{stack}-toolserver-image", name=ctx.toolserver_image_ref, keep_locally=True,
                               triggers={"digest": ctx.toolserver_image_digest}, opts=on_host)
    server = docker.Container(
        f"{stack}-toolserver",
        name=D.tool_server_name(stack, spec),
        image=image.image_id,
        envs=[f"{k}={v}" for k, v in sorted(BT.server_env(spec).items())],
        network_mode=network.name,
        networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=[D.tool_server_alias(spec)])],
        healthcheck=docker.ContainerHealthcheckArgs(tests=["CMD", *BT.port_probe()], interval="10s", timeout="5s",
                                                    retries=3, start_period="10s", start_interval="2s"),
        wait=True,  # healthy before the engine, which connects at start, is created
        restart="unless-stopped",
        labels=[docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(ctx.labels.items())],
        must_run=True,
        **sandbox_options(spec),
        opts=pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(delete_before_replace=True)),
    )
    return {"networks_advanced": [docker.ContainerNetworksAdvancedArgs(name=network.name)]}, [server]
