"""gpt-oss's built-in tools as engine options (issue 22): where the engine reaches the python tool server.

Both engines take `--tool-server host:port[,host:port...]` and connect, as MCP clients, to
`http://host:port/sse` of each (vLLM 0.32/0.33 vllm/entrypoints/mcp/tool_server.py MCPToolServer; SGLang
0.5.23 sglang/srt/entrypoints/openai/tool_server.py). The MCP server's name (its `server_info.name`) is the
tool's harmony name, so the python server must call itself `python`. A request turns it on with
`tools: [{"type": "code_interpreter", "container": {"type": "auto"}}]` (REQUEST_TOOL); no engine env is
needed (VLLM_GPT_OSS_SYSTEM_TOOL_MCP_LABELS only maps `type: mcp` tools onto built-in ones).
"""
from __future__ import annotations

import re

from infra import constants as C
from infra.toolserver import isolation as I

# The Responses API tool type that asks the engine for its python tool (both engines).
REQUEST_TOOL = {"type": "code_interpreter", "container": {"type": "auto"}}


def k8s_service_name(stack: str) -> str:
    """The Kubernetes Service (and Deployment) of a stack's python tool server: a DNS-1035 label. The
    engine pods reach it by this short name (same namespace), so the plan needs no cluster facts."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"{C.NAME_PREFIX}{stack}".lower()).strip("-")[:45].rstrip("-")
    return f"{base}-python-tool"


def python_tool(spec):
    """The stack's builtin_tools.python section (its defaults when the stack has no builtin_tools)."""
    from infra.spec import BuiltinTools

    return (spec.builtin_tools or BuiltinTools()).python


def tool_server_address(spec) -> str | None:
    """host:port of the stack's python tool server as the engine reaches it; None without the tool."""
    py = python_tool(spec)
    if not py.enabled:
        return None
    if py.address is not None:
        return py.address
    if spec.target == "kubernetes":
        return f"{k8s_service_name(spec.stack)}:{I.PORT}"
    return f"{C.TOOLSERVER_DOCKER_ALIAS}:{I.PORT}"  # docker: its alias on the stack's private network


def engine_args(spec) -> list[str]:
    """The engine options for the stack's built-in tools (the plan adds them below extra_args)."""
    address = tool_server_address(spec)
    return ["--tool-server", address] if address else []


# ---------------------------------------------------------------- the tool server the stack runs
# What the deploy targets give the tool server (infra/deploy/targets/toolserver_docker.py, k8s/toolserver.py). The
# tool server (infra/toolserver) listens on isolation.PORT and reads its limits from TOOLSERVER_* variables
# (infra/toolserver/sandbox.py Limits); its container isolation is isolation.py's. It never gets a secret.


def runs_tool_server(spec) -> bool:
    """The deploy runs a python tool server beside the engine (enabled, and no address of the user's own)."""
    py = python_tool(spec)
    return py.enabled and py.address is None


def server_env(spec) -> dict[str, str]:
    """The stack's per-call limits as the tool server's environment."""
    py = python_tool(spec)
    return {"TOOLSERVER_TIMEOUT_S": str(py.timeout_s), "TOOLSERVER_MEMORY_MB": str(py.memory_mb),
            "TOOLSERVER_MAX_OUTPUT_BYTES": str(py.max_output_kb * 1024),
            "TOOLSERVER_MAX_CONCURRENT": str(py.max_concurrency)}


def container_limits(spec) -> I.ContainerLimits:
    """The container's limits: isolation.py's, with memory kept above twice one call's (a memory hog meets its
    own RLIMIT_AS first; the server survives it)."""
    memory = max(I.DEFAULT_LIMITS.memory_mb, 2 * python_tool(spec).memory_mb)
    return I.ContainerLimits(memory_mb=memory, cpus=I.DEFAULT_LIMITS.cpus, pids=I.DEFAULT_LIMITS.pids,
                             scratch_mb=I.DEFAULT_LIMITS.scratch_mb)


# What the tool server image runs, for its tag (images/toolserver/build.py assembles the context): the server's
# code, what its build check imports, the Dockerfile and the pinned requirements. The digest pins the exact bytes.
TAG_SOURCES = ("infra/__init__.py", "infra/toolserver", "infra/launcher/buildsetup.py",
               "images/toolserver/Dockerfile", "images/toolserver/requirements.txt")


def toolserver_base() -> dict:
    """The tool server's base image row (catalogue `toolserver: python`) with its locked digest (None if unlocked)."""
    from infra.catalogue import _images_doc, locked_digest

    row = _images_doc()["toolserver"]["python"]
    return {**row, "digest": locked_digest(row["image"], row["tag"])}


def project_version() -> str:
    import tomllib

    return tomllib.loads((C.REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def image_tag(base: dict | None = None) -> str:
    """`<project version>-<12 hex>`: a hash of TAG_SOURCES' bytes and the base image + digest, so a change to what
    the image runs is a new tag (never `latest`), and the same tree deploys the same tag."""
    import hashlib

    base = base or toolserver_base()
    h = hashlib.sha256(f"{base['image']}:{base['tag']}@{base.get('digest') or 'unpinned'}\0".encode())
    for source in TAG_SOURCES:
        path = C.REPO_ROOT / source
        files = sorted(f for f in path.rglob("*.py") if "__pycache__" not in f.parts) if path.is_dir() else [path]
        for f in files:
            h.update(f"{f.relative_to(C.REPO_ROOT).as_posix()}\0".encode() + f.read_bytes() + b"\0")
    return f"{project_version()}-{h.hexdigest()[:12]}"


def image_ref(spec) -> str:
    """The tool server image by tag (images/toolserver/build.py): beside the engine image in the stack's registry,
    else the local name. A deploy runs the built image by tag@digest (infra/deploy/toolserver_image.py)."""
    name = f"{C.TOOLSERVER_IMAGE}:{image_tag()}"
    return f"{spec.image.registry}/{name}" if spec.image.registry else name


def port_probe() -> list[str]:
    """A health probe run inside the tool server's container: its port accepts a connection."""
    return ["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', {I.PORT}), 2).close()"]
