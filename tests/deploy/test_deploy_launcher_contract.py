"""The container the program registers, handed to the real in-image launcher.

The container sets no command: the image's entrypoint (infra.launcher) rebuilds the launch plan
from the container env. Here the launcher runs for real (`--dry-run --json` with an NVML snapshot
of the stack's GPU) with exactly the env the program gave the Container, and must arrive at the
core's launch plan: same argv, same engine config file, same GPU count and TP.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pulumi_harness import DOCKER_STACKS, SENTINELS, run_stack

from infra import constants as C
from infra.catalogue import get_gpu
import pulumi_harness as T
from infra.plan import Detected, build_plan
from infra.spec import load_spec
from infra.stackfile import read_stack_config

SNAPSHOTS = C.REPO_ROOT / "tests" / "fixtures" / "nvml"
# (gpu, gpu_count) -> an NVML snapshot of such a host; `auto` runs on the real H200 snapshot.
SNAPSHOT_FOR = {
    ("a100-80gb", 1): "a100-1gpu.json", ("h100-80gb", 1): "h100-1gpu.json", ("h100-80gb", 2): "h100-2gpu.json",
    ("h200-141gb", 1): "h200-1gpu.json", ("b200-180gb", 1): "b200-1gpu.json", ("l40s-48gb", 1): "l40s-1gpu.json",
    ("rtx4090-24gb", 1): "rtx4090-1gpu.json", ("auto", 1): "h200-1gpu.json",
}


def launcher_dry_run(env: dict[str, str], snapshot: str) -> dict:
    full = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(C.REPO_ROOT), **env}
    proc = subprocess.run([sys.executable, "-m", "infra.launcher", "--dry-run", "--json", "--gpu-snapshot", snapshot],
                          env=full, capture_output=True, text=True, cwd=C.REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", DOCKER_STACKS)
def test_launcher_given_the_container_env_runs_the_plans_command(name):
    config = read_stack_config(name)
    config.update({key: {"secure": "v1:placeholder"} for key in SENTINELS})
    spec = load_spec(config, name)
    snapshot = SNAPSHOT_FOR.get((spec.gpu, spec.gpu_count))
    if snapshot is None or not (SNAPSHOTS / snapshot).is_file():
        pytest.skip(f"no NVML snapshot of {spec.gpu_count} x {spec.gpu} in tests/fixtures/nvml")
    snapshot_path = str(SNAPSHOTS / snapshot)
    # The launcher plans for the GPUs it finds, with the fit check on their free memory (which
    # may trim an auto-sized max_num_seqs); the same core call, given the same host, is the reference.
    devices = json.loads((SNAPSHOTS / snapshot).read_text())["devices"]
    gpu = spec.gpu_info or get_gpu("h200-141gb")
    plan = build_plan(spec, detected=Detected(gpu, len(devices), min(d["memory_free"] for d in devices)))

    container = run_stack(name).one("docker:index/container:Container")
    assert "command" not in container.inputs
    env = dict(item.split("=", 1) for item in T.unwrap_secrets(container.inputs["envs"]))
    # GPTOSS_BACKEND comes from the image (ENV in images/<backend>/Dockerfile).
    decided = launcher_dry_run({**env, "GPTOSS_BACKEND": plan.backend}, snapshot_path)

    assert (decided["gpu"], decided["gpu_count"], decided["tensor_parallel"]) == (plan.gpu, plan.gpu_count, plan.tensor_parallel)
    assert decided["port"] == plan.port
    extra = decided["argv"][len(plan.argv):]
    assert decided["argv"][: len(plan.argv)] == plan.argv
    # SGLang has no env var for the API key: the launcher adds a 0600 config file holding it.
    assert extra in ([], ["--config", extra[-1] if extra else ""])
    assert bool(decided["api_key"]) == ("API_KEY" in plan.secret_env)
    files = {path.rsplit("/", 1)[-1]: text for path, text in decided["files"].items()}
    assert files == plan.files
    # The launcher never prints a secret, even in its JSON decision.
    assert not any(s in json.dumps(decided) for s in SENTINELS.values())
