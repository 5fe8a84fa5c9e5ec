"""The project's python tool server (infra/toolserver) as a process on 127.0.0.1, for the vLLM CPU servers of
tests/endpoint: their plans carry `builtin_tools.python.address` = this server, so the engine starts with
`--tool-server 127.0.0.1:PORT` (the plan's own layer) and `builtin_python` runs against the real server.
Stopped by its process group id."""
from __future__ import annotations

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

REPO = Path(__file__).resolve().parents[2]


def sandbox_python() -> str:
    """The interpreter the sandboxed calls run: as root the tool server runs them as nobody, who cannot reach
    an interpreter under /root, so the system one; otherwise this one."""
    if os.geteuid() != 0:
        return sys.executable
    for exe in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(exe, os.X_OK) and not os.path.realpath(exe).startswith("/root/"):
            return exe
    raise RuntimeError("running as root needs a python3 outside /root for the tool server's sandboxed calls")


@dataclass
class ToolServerProcess:
    port: int
    proc: subprocess.Popen
    scratch: Path
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def overrides(self) -> dict:
        """The stack fields that point an engine at this server."""
        return {"builtin_tools": {"python": {"enabled": True, "address": self.address}}}

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


def start(workdir: Path, timeout: float = 60) -> ToolServerProcess:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scratch = Path(tempfile.mkdtemp(prefix="gptoss-tools-", dir="/tmp"))
    scratch.chmod(0o711)  # the sandboxed calls (nobody, when run as root) only pass through it
    log = workdir / "toolserver.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TOOLSERVER_TIMEOUT_S": "20"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "infra.toolserver", "--host", "127.0.0.1", "--port", str(port),
                                 "--scratch", str(scratch), "--python", sandbox_python()],
                                cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    server = ToolServerProcess(port, proc, scratch, log)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"the tool server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the tool server did not listen on {port} within {timeout:.0f} s: {log.read_text()[-2000:]}")
