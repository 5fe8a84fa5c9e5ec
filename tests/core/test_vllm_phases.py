"""scripts/device/vllm_phases.py (issue 23's start-time table) on the real H200 start-up logs."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "device" / "vllm_phases.py"
LOGS = ROOT / "tests" / "fixtures" / "engine-logs" / "device"
spec = importlib.util.spec_from_file_location("vllm_phases", SCRIPT)
vllm_phases = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vllm_phases)


def test_cold_start_phases_of_the_h200_plan_log():
    """Issue 23's reading of this log: weights 3.6 s, 177 s until "Available KV cache memory" (compilation
    31.7 s of it), graph capture 37 s."""
    p = vllm_phases.phases((LOGS / "vllm-0.26-h200-120b-plan-interactive.log").read_text(errors="replace"))
    assert p["complete"] and p["profile"] == 177 and p["compile_s"] == 31.68 and p["capture_s"] == 37
    assert p["load_s"] == 3.635446 and p["weights_gib"] == 61.43 and p["compile_cache"] == "miss"
    assert p["total"] == p["to_engine"] + p["weights"] + p["profile"] + p["graphs"] + p["to_serving"] == 264


def test_the_script_runs_standalone_on_a_bare_python_and_says_what_is_missing(tmp_path):
    cut = tmp_path / "cut.log"  # a start that died after the weights loaded
    text = (LOGS / "vllm-0.26-h200-120b-plan-throughput.log").read_text(errors="replace")
    cut.write_text(text[: text.index("Available KV cache memory")])
    run = subprocess.run([sys.executable, "-I", str(SCRIPT), str(cut)], capture_output=True, text=True, timeout=30)
    out = json.loads(run.stdout)
    assert run.returncode == 0 and out["complete"] is False and "profile" not in out and out["load_s"] == 3.049335


def test_compare_holds_a_real_log_to_the_rendered_plan(tmp_path):
    """scripts/device/issue23_compare.py: the launcher's self-check between a plan that issue23_plans.py
    rendered and the H200 log of that very plan (the rendered h200-vllm plan, 2026-12-02)."""
    plans = importlib.util.spec_from_file_location("issue23_plans", ROOT / "scripts" / "device" / "issue23_plans.py")
    mod = importlib.util.module_from_spec(plans)
    plans.loader.exec_module(mod)
    assert mod.main(tmp_path) == 0
    run = subprocess.run([sys.executable, "-I", str(ROOT / "scripts" / "device" / "issue23_compare.py"),
                          str(LOGS / "vllm-0.26-h200-120b-plan-interactive.log"), str(tmp_path / "h200-plan.fit.json")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "every compared figure is within 5% of the plan" in run.stdout
    assert json.loads(run.stdout.splitlines()[-1])["kv_tokens"] == 1_621_101
    assert (tmp_path / "h100-plan.yaml").read_text().count("max-num-batched-tokens: 1024") == 1
