"""Golden tests of every stack's rendered files, determinism, and the render benchmark.

Regenerate goldens after an intended change with: UPDATE_GOLDEN=1 python3 -m pytest tests/core/test_render.py
and review the diff like code.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

from infra.plan import build_plan
from infra.render import render_plan_files, render_stack
from infra.stackfile import list_stacks, load_stack

GOLDEN = Path(__file__).parent / "golden"
STACKS = list_stacks()
REQUIRED = {"h100-sglang", "h100-vllm", "h200-vllm", "h200-sglang", "a100-vllm", "a100-sglang", "b200-vllm",
            "l40s-sglang-20b", "rtx4090-vllm-20b", "h100x2-sglang", "mi300x-vllm", "local"}


def test_required_stacks_exist():
    assert REQUIRED <= set(STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_golden(stack, tmp_path):
    out = render_stack(stack, tmp_path)
    produced = {p.name: p.read_text() for p in sorted(out.iterdir())}
    gold_dir = GOLDEN / stack
    if os.environ.get("UPDATE_GOLDEN"):
        gold_dir.mkdir(parents=True, exist_ok=True)
        for old in gold_dir.iterdir():
            old.unlink()
        for name, text in produced.items():
            (gold_dir / name).write_text(text)
    expected = {p.name: p.read_text() for p in sorted(gold_dir.iterdir())}
    assert produced.keys() == expected.keys()
    for name in produced:
        assert produced[name] == expected[name], f"{stack}/{name} differs from golden"


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


def test_render_is_deterministic(tmp_path):
    a = {s: render_plan_files(load_stack(s), build_plan(load_stack(s))) for s in STACKS}
    b = {s: render_plan_files(load_stack(s), build_plan(load_stack(s))) for s in STACKS}
    assert a == b


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
