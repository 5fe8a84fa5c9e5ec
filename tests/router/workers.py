"""Two real vLLM CPU workers and the real SMG router, started the way the Kubernetes target renders them.

Workers: the ``local`` stack's plan (tests/vllm_cpu/server.py) with the API key and the engine drain
option the Kubernetes target adds (``--shutdown-timeout``, from KubernetesTarget.engine_args of
K8S_STACK). Router: ``smg launch`` with the arguments infra.deploy.targets.k8s.smg_args derives from
the chart values the Kubernetes target renders for K8S_STACK (discovery replaced by the workers'
URLs). Everything on 127.0.0.1; every process is stopped by its own PID (process group).
Usage (an endpoint to try by hand): python -m tests.router.workers [--policy round_robin]
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.deploy.targets.k8s.smg_args import launch_args, router_env
from infra.deploy.targets.kubernetes import router_values
from infra.stackfile import load_stack
from tests.vllm_cpu.server import CPU_ARGS, VllmServer, free_port, make_server, say, stop_group

K8S_STACK = "k8s-h100-vllm"  # the stack whose rendered router and drain settings are run


def drain_args() -> list[str]:
    """The engine's graceful-stop option as the Kubernetes target renders it for K8S_STACK."""
    spec = load_stack(K8S_STACK)
    args = spec.target_settings.engine_args("vllm", spec.model)
    i = args.index("--shutdown-timeout")
    return args[i:i + 2]


def make_worker(workdir: Path, api_key: str, port: int | None = None) -> VllmServer:
    local = load_stack("local")
    return make_server(workdir, api_key=api_key, port=port, extra_args=[*local.extra_args, *CPU_ARGS, *drain_args()])


def rendered_values(policy: str | None = None) -> dict:
    """The chart values the Kubernetes target renders for K8S_STACK (with an API key), for ``policy``
    when given (as a stack setting `kubernetes.router_policy` would)."""
    spec = load_stack(K8S_STACK)
    if policy is not None:
        spec = spec.model_copy(update={"kubernetes": spec.kubernetes.model_copy(update={"router_policy": policy})})
    return router_values(K8S_STACK, spec, with_api_key=True)


def smg_binary() -> str:
    found = shutil.which("smg", path=os.path.dirname(sys.executable)) or shutil.which("smg")
    if not found:
        raise FileNotFoundError("smg not found: pip install -e '.[dev]' installs smg==1.9.0")
    return found


@dataclass
class SmgRouter:
    values: dict
    worker_urls: list[str]
    api_key: str = field(repr=False)
    workdir: Path
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"smg-{self.port}.log"

    @property
    def policy(self) -> str:
        return self.values["router"]["policy"]

    def start(self, timeout: float = 60.0) -> "SmgRouter":
        env = router_env(self.values, {"API_KEY": self.api_key})
        argv = [smg_binary(), "launch", *launch_args(self.values, worker_urls=self.worker_urls, host="127.0.0.1",
                                                     port=self.port, prometheus_port=self.metrics_port, env=env)]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        # SMG 1.9.0 takes the key on its command line only (the pod gets it the same way, from the
        # Secret through $(VAR)); it is never printed here: the line below names the policy and URLs.
        say(f"starting smg ({self.policy}) on {self.url} in front of {' '.join(self.worker_urls)} (log {self.log_path})")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, "NO_COLOR": "1", "RUST_LOG_STYLE": "never"})
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"smg exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if all(self.health().get(u) for u in self.worker_urls):  # every worker registered and healthy
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"smg not serving a model within {timeout:.0f}s; see {self.log_path}")

    def health(self) -> dict[str, bool]:
        """The router's view of its workers (GET /workers, which needs the key): URL -> healthy."""
        r = httpx.get(self.url + "/workers", headers={"Authorization": f"Bearer {self.api_key}"}, timeout=5)
        r.raise_for_status()
        return {w["url"]: bool(w.get("is_healthy")) for w in r.json().get("workers", [])}

    def wait_workers(self, healthy: set[str], timeout: float) -> float:
        """Seconds until exactly ``healthy`` are the healthy workers; TimeoutError after ``timeout``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                if {u for u, ok in self.health().items() if ok} == healthy:
                    return time.monotonic() - t0
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"router workers not {sorted(healthy)} within {timeout:.0f}s: {self.health()}")

    def stop(self) -> None:
        stop_group(self.proc, 20)
        if getattr(self, "_log", None):
            self._log.close()


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description="two vLLM CPU workers behind the rendered SMG router")
    ap.add_argument("--policy", default=None)
    ap.add_argument("--api-key-env", required=True, help="environment variable holding the API key")
    ap.add_argument("--ports", default="", help="worker ports, comma-separated (default: free ones)")
    args = ap.parse_args()
    key = os.environ[args.api_key_env]
    root = Path(os.environ.get("TMPDIR", "/tmp")) / "gptoss-router"
    ports = [int(p) for p in args.ports.split(",") if p] or [None, None]
    workers = [make_worker(root / f"w{i}", key, port=p).start(wait=False) for i, p in enumerate(ports)]
    router = None
    try:
        for w in workers:
            w.wait_healthy()
        router = SmgRouter(rendered_values(args.policy), [w.url for w in workers], key, root).start()
        print(f"router at {router.url}/v1 (workers {' '.join(w.url for w in workers)}); Ctrl-C stops", flush=True)
        router.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if router:
            router.stop()
        for w in workers:
            w.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
