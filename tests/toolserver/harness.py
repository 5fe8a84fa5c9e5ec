"""The python tool server for tests: the real server process (python -m infra.toolserver) on 127.0.0.1 and a
real MCP client (the mcp SDK's sse_client + ClientSession, as vLLM and SGLang use them).

Other tests (the engine's built-in tool tests) start it with `running_toolserver()`:
    with running_toolserver() as server:   # server.url = http://127.0.0.1:PORT/sse; the engine flag: server.hostport
        ...
As root (CI) the calls run as nobody on the system python3 (an interpreter under /root is out of nobody's reach)."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parents[2]
# A secret set on the tool server's own process: no call may ever see it.
CANARY_NAME, CANARY = "GPTOSS_TOOLSERVER_CANARY", "canary-toolserver-secret-7731"
LIMITS = {"TOOLSERVER_TIMEOUT_S": "6", "TOOLSERVER_QUEUE_WAIT_S": "1", "TOOLSERVER_MAX_CONCURRENT": "20",
          "TOOLSERVER_MEMORY_MB": "512", "TOOLSERVER_MAX_PROCS": "64", "TOOLSERVER_MAX_OUTPUT_BYTES": "65536"}
DEADLINE_S = 40  # every client operation


def child_python() -> str:
    """Root runs children as nobody, who cannot reach an interpreter under /root (pyenv): use the system one."""
    if os.geteuid() == 0:
        for exe in ("/usr/bin/python3", "/usr/local/bin/python3"):
            if os.access(exe, os.X_OK) and not os.path.realpath(exe).startswith("/root/"):
                return exe
        pytest.skip("running as root needs a python3 outside /root for the sandboxed children")
    return sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the tool server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the tool server did not listen on {port} within {deadline_s} s:\n{log.read_text()[-3000:]}")


@dataclass
class Server:
    url: str
    pid: int
    scratch: Path
    log: Path

    @property
    def hostport(self) -> str:
        """What the engines' --tool-server flag takes."""
        return self.url.removeprefix("http://").removesuffix("/sse")


@contextlib.contextmanager
def running_toolserver(env: dict[str, str] | None = None, log_dir: Path | None = None):
    """Start the tool server (limits: LIMITS, overridden by env) in a fresh scratch root; stop it on exit."""
    scratch = Path(tempfile.mkdtemp(prefix="gptoss-toolserver-", dir="/tmp"))
    scratch.chmod(0o711)  # the children (nobody when the tests run as root) only traverse it
    log = (log_dir or Path(tempfile.mkdtemp(prefix="gptoss-toolserver-log-"))) / "server.log"
    port = free_port()
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), CANARY_NAME: CANARY, **LIMITS, **(env or {})}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "infra.toolserver", "--host", "127.0.0.1", "--port", str(port),
                                 "--scratch", str(scratch), "--python", child_python()],
                                cwd=ROOT, env=full_env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, proc, log)
        yield Server(f"http://127.0.0.1:{port}/sse", proc.pid, scratch, log)
    finally:
        with contextlib.suppress(ProcessLookupError):  # a server that failed to start has no group left
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(scratch, ignore_errors=True)


async def session_call(url: str, fn, headers: dict | None = None):
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    with anyio.fail_after(DEADLINE_S):
        async with sse_client(url=url, headers=headers) as streams, ClientSession(*streams) as session:
            await session.initialize()
            return await fn(session)


async def acall(url: str, code: str, session_id: str | None = None):
    headers = {"x-session-id": session_id} if session_id else None
    return await session_call(url, lambda s: s.call_tool("python", {"code": code}), headers)


def call(url: str, code: str, session_id: str | None = None):
    """One python call over a fresh SSE session (as the engines make them); returns (text, is_error)."""
    result = anyio.run(acall, url, code, session_id)
    assert len(result.content) == 1 and result.content[0].type == "text"  # vLLM reads content[0].text
    return result.content[0].text, result.is_error


def describe(url: str):
    async def run():
        from mcp import ClientSession
        from mcp.client.sse import sse_client

        with anyio.fail_after(DEADLINE_S):
            async with sse_client(url=url) as streams, ClientSession(*streams) as session:
                init = await session.initialize()
                return init, await session.list_tools()

    return anyio.run(run)


def sandbox_processes(scratch: Path, server_pid: int) -> list[int]:
    """Pids whose command line names the scratch root (every sandboxed child's config does), minus the server."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == server_pid:
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if str(scratch).encode() in cmdline:
            out.append(int(entry))
    return out
