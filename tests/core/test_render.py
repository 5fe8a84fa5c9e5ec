"""Golden tests of every stack's rendered files, determinism, where client.env points, and the render benchmark.

The tests never write a golden. After an intended change: `.venv/bin/python tests/core/goldens.py`
prints what differs; `... --reason "why"` writes the goldens and records the reason in
tests/core/golden/REASONS.md (review the diff like code).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import goldens
import pytest

from infra.constants import STACKS_DIR
from infra.plan import build_plan
from infra.render import render_plan_files, render_stack
from infra.stackfile import list_stacks, load_stack

GOLDEN = goldens.GOLDEN
STACKS = list_stacks()
REQUIRED = {"h100-sglang", "h100-vllm", "h200-vllm", "h200-sglang", "a100-vllm", "a100-sglang", "b200-vllm",
            "l40s-sglang-20b", "rtx4090-vllm-20b", "h100x2-sglang", "mi300x-vllm", "local"}


def test_required_stacks_exist():
    assert REQUIRED <= set(STACKS)


def test_goldens_are_never_rewritten_by_a_test_run():
    """UPDATE_GOLDEN=1 used to rewrite the goldens and compare them with themselves (a test that
    could not fail); the variable now fails the run, pointing at the script that asks for a reason."""
    assert not os.environ.get("UPDATE_GOLDEN"), (
        "UPDATE_GOLDEN no longer rewrites goldens: run `.venv/bin/python tests/core/goldens.py` to see the diff, "
        "then `... --reason \"why\"` to write it")


@pytest.mark.parametrize("stack", STACKS)
def test_golden(stack, tmp_path):
    out = render_stack(stack, tmp_path)
    produced = {p.name: p.read_text() for p in sorted(out.iterdir())}
    diffs = goldens.differences({stack: produced}, {stack: goldens.read_golden().get(stack, {})})
    assert not diffs, (goldens.summary(diffs) + "\nIf intended: `.venv/bin/python tests/core/goldens.py "
                       "--reason \"why\"` writes them and records the reason")


def test_updating_goldens_needs_a_reason_prints_the_diff_and_records_it(tmp_path, capsys):
    golden = tmp_path / "golden"
    for stack in ("local", "k8s-h100-vllm"):
        shutil.copytree(GOLDEN / stack, golden / stack)
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for stack in ("local", "k8s-h100-vllm"):
        (stacks / f"Pulumi.{stack}.yaml").write_text((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text())
    (golden / "local" / "client.env").write_text("LLM_BASE_URL=http://stale:1/v1\n")
    before = (golden / "local" / "client.env").read_text()
    assert goldens.main([], golden=golden, stacks_dir=stacks) == 1  # no reason: nothing written
    out = capsys.readouterr().out
    assert "local/client.env: +" in out and "-LLM_BASE_URL=http://stale:1/v1" in out and "k8s-h100-vllm" not in out
    assert (golden / "local" / "client.env").read_text() == before and not (golden / goldens.REASONS).exists()
    assert goldens.main(["--reason", "test: local's client.env"], golden=golden, stacks_dir=stacks) == 0
    assert (golden / "local" / "client.env").read_text() == (GOLDEN / "local" / "client.env").read_text()
    assert (golden / goldens.REASONS).read_text() == "## test: local's client.env\n- local/client.env\n\n"
    assert goldens.main([], golden=golden, stacks_dir=stacks) == 0


# Every stack in stacks/ whose clients do not connect straight to the server, and how they get there.
ROUTED_K8S = {"k8s-h100-vllm", "k8s-h200-sglang", "k8s-h200x8-vllm-tp1"}
TUNNELLED = {"runpod-a100-vllm", "runpod-h100-sglang"}


def client_env(stack: str) -> dict[str, str]:
    text = render_plan_files(load_stack(stack), build_plan(load_stack(stack)))["client.env"]
    return {"text": text, **dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))}


def test_routed_and_tunnelled_stacks_are_the_ones_listed():
    from infra.deploy.targets import target_endpoint

    routed, tunnelled = set(), set()
    for stack in STACKS:
        spec = load_stack(stack)
        if spec.target == "kubernetes" and spec.target_settings.resolved_router != "none":
            routed.add(stack)
        elif target_endpoint(spec, build_plan(spec)).access == "ssh-tunnel":
            tunnelled.add(stack)
    assert (routed, tunnelled) == (ROUTED_K8S, TUNNELLED)  # a new stack of either kind: add it here and below


@pytest.mark.parametrize("stack", sorted(ROUTED_K8S))
def test_routed_kubernetes_clients_go_to_the_router_service_not_the_engine(stack):
    """The golden sent clients to the engine Service (gptoss-<stack>.<ns>.svc), bypassing the SMG router."""
    from infra.deploy.targets.kubernetes import k8s_names

    names = k8s_names(stack, load_stack(stack))
    env = client_env(stack)
    assert env["LLM_BASE_URL"] == "http://127.0.0.1:8000/v1"  # the port-forward's local end, as endpoint_url says
    assert f"kubectl --namespace {names.namespace} port-forward service/{names.router_service} 8000:8000" in env["text"]
    assert f"In-cluster clients use http://{names.router_service}.{names.namespace}.svc.cluster.local:8000/v1" in env["text"]
    assert f"{names.app}.{names.namespace}.svc" not in env["text"] and names.router_service != names.app


@pytest.mark.parametrize("stack", sorted(TUNNELLED))
def test_tunnelled_stacks_point_clients_at_the_tunnel(stack):
    env = client_env(stack)
    assert env["LLM_BASE_URL"] == "http://127.0.0.1:8000/v1"
    assert "run first: ssh -N -L 8000:127.0.0.1:8000 -p '<public-port-of-22>' 'root@<public-ip>'" in env["text"]


def test_an_ssh_docker_host_on_its_loopback_is_the_tunnel_in_client_env(tmp_path):
    """render said the remote name (http://gpu-box:8000/v1) where the deployed output says the tunnel's 127.0.0.1."""
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.tun.yaml").write_text(
        "config:\n  gptoss-stacks:backend: vllm\n  gptoss-stacks:gpu: h100-80gb\n"
        "  gptoss-stacks:docker:\n    host: ssh://ops@gpu-box:2222\n    publish_address: 127.0.0.1\n")
    text = (render_stack("tun", tmp_path / "out", stacks_dir=stacks) / "client.env").read_text()
    assert "LLM_BASE_URL=http://127.0.0.1:8000/v1\n" in text
    assert "run first: ssh -p 2222 -N -L 8000:127.0.0.1:8000 -- ops@gpu-box\n" in text


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_files_are_consistent(stack, tmp_path):
    out = render_stack(stack, tmp_path)
    launch = json.loads((out / "launch.json").read_text())
    assert {"stack", "backend", "model", "gpu", "argv", "env", "files"} <= set(launch)
    for name, content in launch["files"].items():
        assert (out / name).read_text() == content
        if launch["backend"] == "vllm":
            assert f"/etc/gptoss/{name}" in launch["argv"]  # the --config file the engine reads
        else:
            # the args file is the exact command line after `python3 -m sglang.launch_server`
            lines = [ln for ln in content.splitlines() if not ln.startswith("#")]
            assert lines == launch["argv"][3:]
    subprocess.run(["bash", "-n", str(out / "docker-run.sh")], check=True)
    client = (out / "client.env").read_text()
    assert "LLM_BASE_URL=http" in client and f"LLM_MODEL={launch['model']}" in client
    # secrets are passed by name only
    for name in launch["secret_env"]:
        assert f"-e {name} \\" in (out / "docker-run.sh").read_text()


RENDER_ALL = ("import hashlib, json, sys; sys.path.insert(0, 'tests/core'); import goldens; "
              "print(hashlib.sha256(json.dumps(goldens.render_all(), sort_keys=True).encode()).hexdigest())")


def test_render_is_deterministic_across_processes():
    """Two renders in one process share every cache and hash seed, so they could not disagree; two
    processes with different hash seeds (set iteration order) can."""
    repo = Path(__file__).resolve().parents[2]
    digests = {subprocess.run([sys.executable, "-c", RENDER_ALL], cwd=repo, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120).stdout.strip()
               for seed in ("1", "2")}
    assert len(digests) == 1 and len(next(iter(digests))) == 64


NO_PULUMI = """
import sys
class NoPulumi:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pulumi", "pulumi_docker", "pulumi_kubernetes", "pulumi_random", "pulumi_docker_build", "runpodinfra"):
            raise ImportError("pulumi imported by " + name)
sys.meta_path.insert(0, NoPulumi())
sys.path.insert(0, "tests/core")
import goldens
from infra.deploy.targets import docker, endpoint, kubernetes, runpod, target_endpoint
assert len(goldens.render_all()) > 10
print(sorted(m for m in sys.modules if m.startswith("pulumi")))
"""


def test_render_and_the_targets_pure_parts_import_no_pulumi():
    """The endpoint, validation and manifests of every target are plain Python: `invoke render` and the
    tests of the manifests never load Pulumi (only the *_pulumi.py registrations do)."""
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", NO_PULUMI], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]


def test_render_never_contains_secret_values(tmp_path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.sec.yaml").write_text(
        "config:\n  gptoss-stacks:backend: vllm\n  gptoss-stacks:gpu: h200-141gb\n"
        "  gptoss-stacks:api_key:\n    secure: v1:SENTINEL-API-CIPHERTEXT\n"
        "  gptoss-stacks:hf_token:\n    secure: v1:SENTINEL-HF-CIPHERTEXT\n")
    out = render_stack("sec", tmp_path / "out", stacks_dir=stacks)
    blob = "".join(p.read_text() for p in out.iterdir())
    assert "SENTINEL" not in blob
    launch = json.loads((out / "launch.json").read_text())
    assert launch["secret_env"] == ["API_KEY", "HF_TOKEN"]


def test_render_all_benchmark(benchmark):
    def render_all():
        return [render_plan_files(load_stack(s), build_plan(load_stack(s))) for s in STACKS]

    result = benchmark(render_all)
    assert len(result) == len(STACKS)


def test_no_stack_throttles_concurrency_below_its_preset_and_fit_is_reported(tmp_path):
    from infra.catalogue import defaults, matching_presets
    from infra.plan import _facts

    keys = {"weights_gib", "kv_cache_gib", "kv_tokens", "max_concurrency_at_max_model_len", "activation_gib",
            "cuda_graph_gib", "non_torch_gib", "budget_gib", "fits"}
    for stack in STACKS:
        spec = load_stack(stack)
        p = build_plan(spec)
        preset = defaults(spec.backend).settings["max_num_seqs"]
        for row in matching_presets(_facts(spec, spec.gpu_info, spec.resolved_tp)):
            preset = row.settings.get("max_num_seqs", preset)
        if spec.max_num_seqs is None:
            assert p.settings["max_num_seqs"] >= preset, stack
        launch = p.to_launch_json()
        if p.gpu != "auto":
            # vLLM's figures are a first start's; fit.warm_start holds a warm one's (infra.fit._warm_start)
            warm = {"warm_start"} if spec.backend == "vllm" else set()
            assert set(launch["fit"]) == keys | warm and launch["fit"]["fits"], stack
    assert vllm_seqs("h200-vllm") >= 64
    argv = build_plan(load_stack("h200-sglang")).argv
    assert int(argv[argv.index("--max-running-requests") + 1]) >= 64


def vllm_seqs(stack):
    import yaml

    return yaml.safe_load(build_plan(load_stack(stack)).files["vllm.yaml"])["max-num-seqs"]
