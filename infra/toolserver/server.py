"""The python tool server: an MCP server over SSE (the `mcp` SDK) with one prompt-visible tool, `python`.

Engines (vLLM `--tool-server host:port`, SGLang `--tool-server`) connect to http://host:port/sse, read the server
name (`python`, the harmony namespace) and its instructions (the namespace description in the prompt), and call
tool `python` with {"code": "<the model's message>"}; they read `result.content[0].text`. Both tools carry meta
include_in_prompt=False, so vLLM renders the namespace like harmony's built-in python tool (description only). vLLM sends an
`x-session-id` header (its request id) on every call of one Responses request and calls `cleanup_session` at the
end (a tool hidden from the prompt by meta include_in_prompt=False); SGLang sends neither, so the SSE session
stands in for the conversation.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import sys
import time
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent

from infra.toolserver import isolation
from infra.toolserver.sandbox import ConfigError, Limits, Outcome, reap_orphans, remove_tree, run_code, scratch_usage

log = logging.getLogger("toolserver")
SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
TOOL_DESCRIPTION = "Execute Python code in a sandbox and return its output (stdout and stderr together)."


def instructions(limits: Limits, python_version: str) -> str:
    """The python namespace description the engine puts in the prompt: what the model can rely on."""
    return (
        "Use this tool to execute Python code in your chain of thought. The code will not be shown to the user. "
        "This tool should be used for internal reasoning, but not for code that is intended to be visible to the "
        "user.\n"
        f"When you send a message containing Python code to python, it is executed in a fresh Python {python_version} "
        "process, like a notebook cell: the value of a last bare expression is printed. Variables, imports and other "
        "interpreter state do NOT persist between calls; files written to the current directory persist for the "
        "rest of this conversation (at most "
        f"{limits.scratch_mb} MB). Use print() to see results. python will respond with the output (stdout and "
        f"stderr, at most {limits.max_output_bytes // 1024} KiB) or time out after {limits.timeout_s} seconds. "
        f"Memory is limited to {limits.memory_mb} MB. There is no internet or network access; only the standard "
        "library and the packages installed in the sandbox are available."
    )


class Sessions:
    """Per-conversation scratch dirs under root: created 0700 (owned by the child uid when the server is root),
    removed on cleanup_session, after session_ttl_s idle, or oldest-first beyond max_sessions."""

    def __init__(self, root: Path, limits: Limits):
        self.root, self.limits = root, limits
        self.last_used: dict[str, float] = {}
        self.active: dict[str, int] = {}

    def path(self, key: str) -> Path:
        return self.root / hashlib.sha256(key.encode()).hexdigest()[:32]

    def acquire(self, key: str) -> Path:
        self._expire(keep=key)
        path = self.path(key)
        if not path.is_dir():
            path.mkdir(mode=0o700)
            if os.geteuid() == 0:
                os.chown(path, self.limits.child_uid, self.limits.child_uid)
        self.last_used[key] = time.monotonic()
        self.active[key] = self.active.get(key, 0) + 1
        return path

    def release(self, key: str) -> str | None:
        """After a call: a note if the conversation's files went over scratch_mb and were removed."""
        self.active[key] -= 1
        if not self.active[key]:
            del self.active[key]
        self.last_used[key] = time.monotonic()
        path = self.path(key)
        used = scratch_usage(path)
        if used > self.limits.scratch_mb << 20 and key not in self.active:
            remove_tree(path)
            return (f"the files in the working directory reached {used >> 20} MB (limit {self.limits.scratch_mb} MB) "
                    "and were all removed")
        return None

    def cleanup(self, key: str) -> None:
        if key not in self.active:
            remove_tree(self.path(key))
            self.last_used.pop(key, None)

    def _expire(self, keep: str) -> None:
        now = time.monotonic()
        idle = [k for k, t in self.last_used.items() if k not in self.active and k != keep]
        stale = {k for k in idle if now - self.last_used[k] > self.limits.session_ttl_s}
        over = len(self.last_used) - len(stale) - self.limits.max_sessions + (keep not in self.last_used)
        if over > 0:
            stale |= set(sorted((k for k in idle if k not in stale), key=self.last_used.get)[:over])
        for k in stale:
            self.cleanup(k)


def session_key(ctx) -> str:
    headers = ctx.headers or {}
    sid = headers.get(isolation.SESSION_HEADER)
    if sid and SESSION_ID.fullmatch(sid):
        return "h:" + sid
    request = ctx.request_context.request
    sse = getattr(request, "query_params", {}).get("session_id") if request is not None else None
    return "s:" + (sse if sse and SESSION_ID.fullmatch(sse) else "default")


class ToolServer:
    def __init__(self, limits: Limits, scratch_root: Path, python: str, require_landlock: bool = False):
        self.limits, self.python, self.require_landlock = limits, python, require_landlock
        self.sessions = Sessions(scratch_root, limits)
        self.slots = asyncio.Semaphore(limits.max_concurrent)
        self.live: set[int] = set()

    async def call(self, code: str, key: str) -> Outcome:
        if not isinstance(code, str) or not code.strip():
            return Outcome("[python tool] error: empty code; send the Python source to run", True)
        if len(code.encode("utf-8", "replace")) > self.limits.max_code_bytes:
            return Outcome(f"[python tool] error: the code is longer than {self.limits.max_code_bytes} bytes; "
                           "send a shorter program", True)
        try:
            await asyncio.wait_for(self.slots.acquire(), timeout=self.limits.queue_wait_s)
        except asyncio.TimeoutError:
            return Outcome(f"[python tool] error: busy: {self.limits.max_concurrent} calls are running and none "
                           f"finished within {self.limits.queue_wait_s} s; try again shortly", True)
        try:
            scratch = self.sessions.acquire(key)
            note = None
            try:
                out = await run_code(code, scratch, self.limits, python=self.python,
                                     require_landlock=self.require_landlock, live=self.live)
            finally:
                note = self.sessions.release(key)
                reap_orphans(self.live)
            if note:
                out.text += f"[python tool] note: {note}\n"
            # one line per call, never the code or its output
            log.info("call conversation=%s error=%s output_bytes=%d", self.sessions.path(key).name[:8], out.is_error,
                     len(out.text))
            return out
        except Exception as exc:  # noqa: BLE001 - the model gets a readable error, the server keeps serving
            log.exception("python call failed")
            return Outcome(f"[python tool] error: the sandbox could not run the code ({type(exc).__name__}: "
                           f"{str(exc)[:200]})", True)
        finally:
            self.slots.release()


def probe(limits: Limits, python: str, scratch_root: Path, require_landlock: bool) -> tuple[str, str]:
    """Start-up self-check through the real sandbox: (python version, confinement summary). Raises on failure."""
    code = ("import sys, socket, ctypes\n"
            "try:\n    socket.socket(); net = 'open'\nexcept OSError:\n    net = 'blocked'\n"
            "abi = ctypes.CDLL(None).syscall(444, None, 0, 1)\n"
            "print('%d.%d.%d' % sys.version_info[:3], net, 'landlock-abi-%d' % abi if abi > 0 else 'no-landlock')")
    server = ToolServer(limits, scratch_root, python, require_landlock)
    out = asyncio.run(server.call(code, "probe"))
    server.sessions.cleanup("probe")
    parts = out.text.split()
    if out.is_error or len(parts) != 3 or parts[1] != "blocked":
        raise RuntimeError(f"the sandbox self-check failed: {out.text.strip()[:500]}")
    return parts[0], f"sockets blocked (seccomp), {parts[2]}"


def build_server(limits: Limits, scratch_root: Path, python: str, require_landlock: bool = False):
    version, summary = probe(limits, python, scratch_root, require_landlock)
    log.info("python tool sandbox ready: Python %s, %s", version, summary)
    if "no-landlock" in summary:
        log.warning("Landlock is unavailable (kernel < 5.13, not in the LSM list, or a runtime such as gVisor): calls "
                    "can read each other's scratch files; the container's read-only root and tmpfs still bound writes")
    core = ToolServer(limits, scratch_root, python, require_landlock)
    mcp = MCPServer(name=isolation.SERVER_NAME, instructions=instructions(limits, version), log_level="WARNING")

    # Hidden from the prompt (vLLM drops tools whose meta says include_in_prompt False): the namespace then renders
    # exactly like harmony's built-in python tool (its description, no function signature), the format gpt-oss
    # was trained on: `to=python` with the raw code as the message, which the engine sends as {"code": ...}.
    @mcp.tool(name=isolation.TOOL_NAME, description=TOOL_DESCRIPTION, meta={"include_in_prompt": False},
              structured_output=False)
    async def python_tool(code: str, ctx: Context) -> CallToolResult:
        out = await core.call(code, session_key(ctx))
        return CallToolResult(content=[TextContent(type="text", text=out.text)], is_error=out.is_error)

    @mcp.tool(name="cleanup_session", description="Remove this conversation's files.",
              meta={"include_in_prompt": False}, structured_output=False)
    async def cleanup_session(ctx: Context) -> str:
        core.sessions.cleanup(session_key(ctx))
        return "ok"

    mcp.core = core  # tests and the CLI reach the running state through it
    return mcp


def check_environment(env: dict[str, str]) -> None:
    """The tool server must never hold the stack's secrets: refuse to start with one in its environment."""
    held = sorted(name for name in env if name in isolation.FORBIDDEN_ENV or name.startswith(isolation.FORBIDDEN_ENV_PREFIXES))
    if held:
        raise ConfigError(f"the tool server's environment holds {', '.join(held)}; it must not hold the stack's "
                          "secrets or cloud credentials: remove them from its container/process environment")


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m infra.toolserver", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in its container)")
    ap.add_argument("--port", type=int, default=isolation.PORT)
    ap.add_argument("--scratch", default=os.environ.get("TOOLSERVER_SCRATCH_DIR", isolation.SCRATCH_DIR),
                    help="root of the per-conversation dirs (a size-capped tmpfs)")
    ap.add_argument("--python", default=os.environ.get("TOOLSERVER_PYTHON", sys.executable),
                    help="the interpreter that runs the model's code")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s toolserver %(levelname)s %(message)s")
    try:
        if not 1 <= a.port <= 65535:
            raise ConfigError(f"--port {a.port} is not a TCP port; pass 1-65535")
        check_environment(dict(os.environ))
        limits = Limits.from_env()
        root = Path(a.scratch)
        if not root.is_dir() or not os.access(root, os.W_OK | os.X_OK):
            raise ConfigError(f"--scratch {a.scratch!r} is not a writable directory; mount a tmpfs there "
                              "(infra/toolserver/isolation.py) or pass another")
        if os.geteuid() == 0 and not root.stat().st_mode & 0o001:
            raise ConfigError(f"--scratch {a.scratch!r}: as root the server runs calls as uid {limits.child_uid}, "
                              f"who must traverse it: chmod o+x {a.scratch}")
        require = os.environ.get("TOOLSERVER_REQUIRE_LANDLOCK", "") in ("1", "true")
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: same-uid children cannot read /proc/<server>/environ|mem
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of a call come back here, to be killed and reaped
        server = build_server(limits, root, a.python, require)
    except (ConfigError, RuntimeError) as exc:
        print(f"toolserver: {exc}", file=sys.stderr)
        return 2
    log.info("python tool server on http://%s:%d/sse (max %d concurrent calls)", a.host, a.port,
             limits.max_concurrent)
    server.run(transport="sse", host=a.host, port=a.port)
    return 0
