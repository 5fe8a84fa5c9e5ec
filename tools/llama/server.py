"""Run the tiny gpt-oss model behind a real ``llama-server`` on 127.0.0.1.

Usage (a local endpoint to try the invoke tasks against):
    python -m tools.llama.server [--port 8080] [--api-key-env VAR]
    invoke smoke-test --url http://127.0.0.1:8080 [--api-key-env VAR]

``llama-server`` speaks the same OpenAI chat, reasoning (``reasoning_content``), streaming
and tool-call protocol for gpt-oss as vLLM and SGLang; ``--api-key`` makes it answer 401
without the key.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tools.llama.build import build_llama_server, chat_template_path
from tools.llama.model import ensure_tiny_model

ALIAS = "tiny/gpt-oss-harmony"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """A ``llama-server`` process serving the tiny model; stops itself on exit."""

    def __init__(self, binary: Path, model: Path, *, port: int | None = None, api_key: str | None = None,
                 parallel: int = 4, ctx: int = 16384, threads: int = 1, log_path: Path | None = None,
                 alias: str = ALIAS):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.alias = alias
        self.log_path = log_path or Path(f"/tmp/llama-server-{self.port}.log")
        self.argv = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port),
                     "--jinja", "--alias", alias, "-np", str(parallel), "-c", str(ctx), "-t", str(threads),
                     "-tb", str(threads), "--no-webui"]
        self._env = dict(os.environ)
        if api_key:
            # LLAMA_API_KEY is llama-server's env form of --api-key: the key stays off the command line
            self._env["LLAMA_API_KEY"] = api_key
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "LlamaServer":
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=self._env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama-server not healthy within {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="serve the tiny gpt-oss model with llama-server on 127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--api-key-env", help="environment variable holding the API key to require")
    args = ap.parse_args(argv)
    binary = build_llama_server()
    model = ensure_tiny_model(chat_template_path())
    key = os.environ[args.api_key_env] if args.api_key_env else None

    def _stop(signum, frame):  # SIGTERM too (background jobs ignore SIGINT): stop the server
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    with LlamaServer(binary, model, port=args.port, api_key=key) as srv:
        print(f"serving {srv.alias} at {srv.url}/v1 (log: {srv.log_path}); Ctrl-C stops", flush=True)
        try:
            srv.proc.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
