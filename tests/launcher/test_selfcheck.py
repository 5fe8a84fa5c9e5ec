"""Start-up self-check: the engine's own accounting parsed from real start-up logs, compared with a prediction.

The logs are real vLLM 0.26 / SGLang 0.5.15 starts of gpt-oss-120b on an H200 (tests/fixtures/engine-logs/).
The expected figures are the ones in the summary tables that came with those captures (weights, KV cache,
KV tokens, concurrency, activation, CUDA graphs), plus the lines' own values where the tables give none.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from launcher_support import HERE, ROOT, launcher_env, snap_path

from infra.launcher.progress import Monitor
from infra.launcher.selfcheck import (FIT_KEYS, MAX_LINE_CHARS, TOLERANCE, WARM_KEY, SelfCheck, StartupLog, compare,
                                     parse_log)

LOGS = ROOT / "tests" / "fixtures" / "engine-logs"
VLLM_SEQS14 = "vllm-0.26-h200-120b-seqs14-cap2048.log"
SGLANG_COLD = "sglang-0.5.15-h200-120b-running14-cold.log"
GiB = 2**30

# The captures' summary tables, one row per log.
VLLM_COMMON = {"weights_gib": 61.43, "non_torch_gib": 0.24, "budget_gib": 125.82, "max_model_len": 131072,
               "torch_total_gib": 139.8, "free_at_start_gib": 139.29, "fits": True}
EXPECTED = {
    VLLM_SEQS14: {**VLLM_COMMON, "kv_cache_gib": 62.16, "kv_tokens": 1_607_859, "max_concurrency_at_max_model_len": 12.27,
                  "activation_gib": 1.17, "cuda_graph_gib": 1.00},
    "vllm-0.26-h200-120b-seqs128-cap2048.log": {
        **VLLM_COMMON, "kv_cache_gib": 62.67, "kv_tokens": 1_621_072, "max_concurrency_at_max_model_len": 12.37,
        "activation_gib": 0.63, "cuda_graph_gib": 1.10},
    "vllm-0.26-h200-120b-seqs128-cap256.log": {
        **VLLM_COMMON, "kv_cache_gib": 62.67, "kv_tokens": 1_621_101, "max_concurrency_at_max_model_len": 12.37,
        "activation_gib": 1.17, "cuda_graph_gib": 0.35},
    # SGLang: KV = both pools (12.82+12.82 + 16.03+16.03 = 57.71 GB, its "SWAKVPool mem usage"); graphs = the
    # prefill and decode captures' "mem usage" lines (1.18 + 0.07 cold, 1.27 + 0.20 warm); 933,824 / 131,072 = 7.12.
    SGLANG_COLD: {"weights_gib": 70.26, "kv_cache_gib": 57.71, "kv_tokens": 933_824, "swa_kv_tokens": 747_059,
                  "max_concurrency_at_max_model_len": 7.12, "cuda_graph_gib": 1.25, "max_model_len": 131072,
                  "free_at_start_gib": 139.07, "free_after_start_gib": 10.51, "fits": True},
    "sglang-0.5.15-h200-120b-running128-warm.log": {
        "weights_gib": 70.26, "kv_cache_gib": 57.71, "kv_tokens": 933_824, "swa_kv_tokens": 747_059,
        "max_concurrency_at_max_model_len": 7.12, "cuda_graph_gib": 1.47, "max_model_len": 131072,
        "free_at_start_gib": 139.07, "free_after_start_gib": 10.30, "fits": True},
}


def _backend(name: str) -> str:
    return "vllm" if name.startswith("vllm") else "sglang"


def _log(name: str) -> str:
    return (LOGS / name).read_text(encoding="utf-8")


def _checked(name: str, predicted) -> SelfCheck:
    check = SelfCheck(_backend(name), predicted, StartupLog(_backend(name)))
    check.log.feed_text(_log(name))
    return check


def test_every_captured_log_has_expectations():
    assert sorted(p.name for p in LOGS.glob("*.log")) == sorted(EXPECTED)
    assert "issue 9" in (LOGS / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parsed_figures_equal_the_captures(name):
    got = parse_log(_backend(name), _log(name))
    want = EXPECTED[name]
    assert set(got) == set(want)
    for key, value in want.items():
        if key == "max_concurrency_at_max_model_len":
            assert round(got[key], 2) == value
        else:
            assert got[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("name", [VLLM_SEQS14, SGLANG_COLD])
def test_a_prediction_within_five_percent_passes(name):
    actual = parse_log(_backend(name), _log(name))
    predicted = {k: (v if isinstance(v, bool) else v * (1 + 0.9 * TOLERANCE)) for k, v in actual.items() if k in FIT_KEYS}
    predicted["max_model_len"] = actual["max_model_len"]
    check = _checked(name, predicted)
    assert check.warnings() == []
    report = check.report()
    assert "WARN" not in report and "every compared figure is within 5% of the plan" in report
    assert sum(r.compared for r in check.rows()) == len(predicted)


@pytest.mark.parametrize("name, key", [(VLLM_SEQS14, "kv_tokens"), (VLLM_SEQS14, "cuda_graph_gib"),
                                       (SGLANG_COLD, "weights_gib"), (SGLANG_COLD, "max_concurrency_at_max_model_len")])
def test_a_prediction_off_by_more_warns(name, key):
    actual = parse_log(_backend(name), _log(name))
    predicted = {k: v for k, v in actual.items() if k in FIT_KEYS}
    predicted[key] = actual[key] / (1 + 1.2 * TOLERANCE)  # the engine logged 6% more than predicted
    check = _checked(name, predicted)
    (warning,) = check.warnings()
    assert warning.startswith({"kv_tokens": "KV cache tokens", "cuda_graph_gib": "CUDA graphs (GiB)",
                               "weights_gib": "weights (GiB)", "max_concurrency_at_max_model_len": "full-length"}[key])
    assert "+6.0% off" in warning
    report = check.report()
    assert report.count("WARN") == 1 and f"[SELF-CHECK] warning: {warning}" in report


def test_the_plans_old_optimism_is_caught():
    """The fit that lowered max_num_seqs to 14: 60.8 GiB weights, 14 full-length sequences (issue 9)."""
    check = _checked(SGLANG_COLD, {"weights_gib": 60.8, "max_concurrency_at_max_model_len": 14.0, "fits": True})
    text = "\n".join(check.warnings())
    assert "weights (GiB): the plan predicted 60.80, the engine logged 70.26 (+15.6% off" in text
    assert "full-length sequences: the plan predicted 14.00x, the engine logged 7.12x (-49.1% off" in text


def test_fits_and_context_are_compared_exactly():
    check = _checked(VLLM_SEQS14, {"fits": False, "max_model_len": 65536})
    assert [r.key for r in check.rows() if r.warn] == ["fits", "max_model_len"]


def test_without_a_fit_object_nothing_is_compared():
    for predicted in (None, {}):
        check = _checked(VLLM_SEQS14, predicted)
        assert check.warnings() == [] and not any(r.compared for r in check.rows())
    report = _checked(VLLM_SEQS14, None).report()
    assert "launch.json has no `fit` object: nothing to compare" in report
    assert "1,607,859" in report and "61.43" in report and "WARN" not in report and " ok " not in report


def test_only_figures_both_sides_have_are_compared():
    check = _checked(SGLANG_COLD, {"weights_gib": 70.0, "activation_gib": 1.2, "non_torch_gib": 0.2, "budget_gib": 128.6})
    compared = {r.key for r in check.rows() if r.compared}
    assert compared == {"weights_gib"}  # SGLang logs no activation, non-torch or budget figure
    assert check.warnings() == []


@pytest.mark.parametrize("bad", ["61.4", None, float("nan"), float("inf"), True, [1], {"x": 1}])
def test_malformed_predictions_count_as_missing(bad):
    rows = compare({"weights_gib": bad, "fits": "yes"}, {"weights_gib": 61.43, "fits": True})
    assert not any(r.compared for r in rows)


def test_a_zero_prediction_is_a_warning_not_a_crash():
    (row,) = [r for r in compare({"non_torch_gib": 0}, {"non_torch_gib": 0.24}) if r.compared]
    assert row.warn and row.diff == float("inf")
    check = SelfCheck("vllm", {"non_torch_gib": 0}, StartupLog("vllm"))
    check.feed("Actual usage is 61.43 GiB for weight, 1.17 GiB for peak activation, 0.24 GiB for non-torch memory")
    assert "non-torch (GiB): the plan predicted 0.00, the engine logged 0.24 (inf off" in check.report()


def test_the_prediction_is_launch_json_fit_object():
    """The contract with the plan is launch.json's `fit` object (plus the plan's max_model_len)."""
    from types import SimpleNamespace

    from infra.plan import build_plan
    from infra.stackfile import load_stack

    plan = build_plan(load_stack("h200-vllm"))
    fit = {"weights_gib": 61.4, "kv_tokens": 1_600_000, "fits": True, "text": "a summary beside it"}
    with_fit = SimpleNamespace(to_launch_json=lambda: {**plan.to_launch_json(), "fit": fit}, settings=plan.settings)
    assert SelfCheck.for_plan("vllm", with_fit).predicted == {
        "weights_gib": 61.4, "kv_tokens": 1_600_000, "fits": True, "max_model_len": plan.settings["max_model_len"]}
    real = plan.to_launch_json()["fit"]
    got = SelfCheck.for_plan("vllm", plan).predicted
    if isinstance(real, dict):
        assert got == {**{k: real[k] for k in (*FIT_KEYS, WARM_KEY) if k in real},
                       "max_model_len": plan.settings["max_model_len"]}
    else:  # a text-only fit: no prediction
        assert got is None
    assert SelfCheck.for_plan("vllm", object()).predicted is None  # never raises


@pytest.mark.parametrize("start", ["plan-cold", "plan-warm1", "plan-warm2"])
def test_the_h100_plan_checks_clean_on_its_cold_and_its_warm_starts(start):
    """Issue 23 (a lent H100, 2026-12-05): the rendered h100-vllm plan predicts a first start (compile-cache miss,
    331,699 KV tokens logged); a warm start from the cache volume logged 348,555 (+5%), so it is compared with the
    plan's fit.warm_start, and neither start warns."""
    from infra.plan import build_plan
    from infra.stackfile import load_stack

    plan = build_plan(load_stack("h100-vllm"))
    check = SelfCheck.for_plan("vllm", plan)
    check.log.feed_text(_log(f"device/vllm-0.26-h100-120b-{start}.log"))
    assert check.warnings() == [], check.report()
    warm = start != "plan-cold"
    assert check.log.compile_cache_hit is warm and ("warm-start figures" in check.report()) is warm
    # without the warm figures, a warm start is more than 5% above the first-start prediction
    check.predicted.pop(WARM_KEY)
    assert bool(check.warnings()) is warm


def test_other_tensor_parallel_ranks_are_skipped():
    log = StartupLog("vllm")
    log.feed("(Worker_TP1 pid=12) INFO 11-29 21:34:01 [gpu_model_runner.py:5347] Model loading took 30.10 GiB memory")
    log.feed("(Worker_TP0 pid=11) INFO 11-29 21:34:01 [gpu_model_runner.py:5347] Model loading took 30.72 GiB memory")
    s = StartupLog("sglang")
    s.feed("[2026-11-29 22:08:00 TP1] Load weight end. elapsed=3.64 s, type=GptOssForCausalLM, avail mem=100.0 GB, mem usage=39.0 GB.")
    s.feed("[2026-11-29 22:08:00 TP0] Load weight end. elapsed=3.64 s, type=GptOssForCausalLM, avail mem=100.0 GB, mem usage=35.13 GB.")
    assert log.actual()["weights_gib"] == 30.72 and s.actual()["weights_gib"] == 35.13


@pytest.mark.parametrize("backend, line", [
    # vLLM's own refusal (kv_cache_utils), as real starts print it
    ("vllm", "(EngineCore pid=9) ValueError: To serve at least one request with the model's max seq len (131072), "
             "(4.50 GiB KV cache is needed, which is larger than the available KV cache memory (3.20 GiB)."),
    ("vllm", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity"),
    ("sglang", "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static. Current value: 0.92"),
])
def test_an_out_of_memory_start_does_not_fit(backend, line):
    log = StartupLog(backend)
    log.feed(line)
    assert log.actual() == {"fits": False}
    check = SelfCheck(backend, {"fits": True}, log)
    assert check.warnings() == ["fits: the plan predicted yes, the engine logged NO (differs; the warning threshold is 5%)"]


def test_long_lines_are_cut_and_garbage_is_ignored():
    log = StartupLog("vllm")
    log.feed("x" * (MAX_LINE_CHARS - 10) + " Model loading took 99.00 GiB memory")  # past the bound: not read
    log.feed("Model loading took ,,, GiB memory")
    log.feed("GPU KV cache size: -- tokens")
    log.feed("\x00\x1b[31m Available KV cache memory: 1e400 GiB")
    log.feed("Maximum concurrency for 131,072 tokens per request: 12.27x")
    assert log.actual() == {"max_model_len": 131072, "max_concurrency_at_max_model_len": 12.27, "fits": True}


def _all_patterns():
    """{name: compiled pattern} of every regex the self-check runs on an engine line."""
    from infra.launcher import selfcheck

    named = {f"{backend}:{'+'.join(rule.keys)}": rule.pattern for backend, rules in selfcheck.RULES.items()
             for rule in rules}
    return {**named, "no_fit": selfcheck._NO_FIT, "other_rank": selfcheck._OTHER_RANK}


@pytest.mark.parametrize("pattern", _all_patterns().values(), ids=_all_patterns().keys())
def test_every_pattern_reads_a_bounded_window_so_a_search_is_linear(pattern):
    """Linear by construction (issue 24, finding 5): a pattern whose every match attempt reads at most W characters
    (no unbounded `*`, `+`, `.*?`) costs at most a constant per start position, so a search over an n-character line
    is O(n), whatever the line; the old `\\d[\\d,]*` before ` ?GiB` re-read a digit run from each of its digits."""
    import re._parser as sre_parse

    assert sre_parse.parse(pattern.pattern, pattern.flags).getwidth()[1] <= 1024


def test_the_bounded_patterns_match_every_real_log_line_as_the_unbounded_ones_did():
    from infra.launcher import selfcheck

    unbounded = {selfcheck._NUM: r"(-?\d[\d,]*(?:\.\d+)?)", selfcheck._GAP: ".*?", selfcheck._SECS: r"[\d.]+",
                 selfcheck._RANK_DIGITS: r"\d+"}

    def as_before(pattern):
        text = pattern.pattern
        for new, old in unbounded.items():
            text = text.replace(new, old)
        return re.compile(text, pattern.flags)

    pairs = [(p, as_before(p)) for p in _all_patterns().values()]
    assert sum(new.pattern != old.pattern for new, old in pairs) == len(pairs) - 1  # all but _NO_FIT changed
    lines = [line[:MAX_LINE_CHARS] for path in sorted(LOGS.rglob("*.log"))
             for line in re.split(r"[\r\n]", path.read_text(encoding="utf-8")) if line]
    assert len(lines) > 600
    matched = 0
    for new, old in pairs:
        for line in lines:
            a, b = new.search(line), old.search(line)
            assert (a and (a.span(), a.groups())) == (b and (b.span(), b.groups())), (new.pattern, line)
            matched += bool(a)
    assert matched > 50  # the figures of seven real starts, not a vacuous agreement on nothing


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=30), st.sampled_from(["vllm", "sglang", "other"]))
def test_any_input_never_raises(lines, backend):
    check = SelfCheck(backend, {"weights_gib": 1.0, "fits": True}, StartupLog(backend))
    for line in lines:
        check.feed(line)
        check.feed("Model loading took " + line + " GiB")
    assert check.report().startswith("[SELF-CHECK]")


def test_table_without_rich(monkeypatch):
    """The engine images need not ship rich: the same cells in plain columns."""
    monkeypatch.setitem(sys.modules, "rich", None)
    report = _checked(VLLM_SEQS14, {"kv_tokens": 1_500_000}).report()
    assert "KV cache tokens" in report and "1,500,000" in report and "1,607,859" in report and "+7.2%" in report
    assert "WARN" in report


def test_table_text_is_escaped_for_rich(monkeypatch):
    """Cells are escaped before rich sees them: markup-like text prints as written and cannot break the table."""
    from infra.launcher import selfcheck

    monkeypatch.setitem(selfcheck.SOURCES["vllm"], "kv_tokens", "[/] [bold red]GPU KV cache size[/bold red]")
    report = _checked(VLLM_SEQS14, None).report()
    assert "[/] [bold red]GPU KV cache size[/bold red]" in report and "could not build the report" not in report


# ----------------------------------------------------------------------------- through the real progress path

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replay_through_monitor(name: str, predicted, **standin_env: str):
    """The stand-in engine replays a captured log into real pipes; the real Monitor reads them."""
    port = _free_port()
    env = {**os.environ, "STANDIN_STARTUP": "1", "STANDIN_REPLAY": str(LOGS / name), "STANDIN_STEP_S": "0.001",
           "STANDIN_SERVE_S": "1", **standin_env}
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    sink_r, sink_w = os.pipe()
    proc = subprocess.Popen([sys.executable, str(HERE / "engine_standin.py"), "--port", str(port)], env=env,
                            stdout=out_w, stderr=err_w)
    os.close(out_w)
    os.close(err_w)
    lines: list[str] = []
    monitor = Monitor(total_bytes=140 * GiB, health_url=f"http://127.0.0.1:{port}/health", api_url="http://0.0.0.0:8000/v1",
                      write=lines.append, interval=60, health_every=0.05,
                      selfcheck=SelfCheck(_backend(name), predicted, StartupLog(_backend(name))))
    drained: list[bytes] = []

    def drain():  # the passthrough: the whole log flows on while the monitor reads it
        while chunk := os.read(sink_r, 65536):
            drained.append(chunk)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    code = monitor.run({out_r: sink_w, err_r: sink_w})
    proc.wait(timeout=30)
    os.close(sink_w)
    t.join(timeout=10)
    return code, lines, b"".join(drained)


def test_monitor_prints_the_table_before_ready_from_a_replayed_vllm_log():
    predicted = {"weights_gib": 60.8, "kv_cache_gib": 63.1, "kv_tokens": 1_650_000, "max_concurrency_at_max_model_len": 14.0,
                 "cuda_graph_gib": 1.0, "fits": True}
    code, lines, passed = _replay_through_monitor(VLLM_SEQS14, predicted)
    assert code == 0
    assert lines[-1].startswith("=" * 60) and "[OK] MODEL READY" in lines[-1]  # READY stays the last word
    report = lines[-2]
    assert report.startswith("[SELF-CHECK] the plan's memory fit vs vLLM's own start-up log")
    assert "1,650,000" in report and "1,607,859" in report and "-2.6%" in report
    assert "[SELF-CHECK] warning: full-length sequences: the plan predicted 14.00x, the engine logged 12.27x" in report
    assert report.count("WARN") == 1
    assert passed.startswith((LOGS / VLLM_SEQS14).read_bytes())  # every byte passed through unchanged


def test_monitor_prints_what_it_saw_when_the_engine_dies():
    code, lines, passed = _replay_through_monitor(SGLANG_COLD, {"weights_gib": 70.0, "kv_tokens": 933_000},
                                                  STANDIN_EXIT="1")
    assert code == 1 and b"CUDA out of memory (stand-in crash)" in passed
    assert lines[-1].startswith("[FAILED] the engine stopped before it was ready")
    report = lines[-2]
    assert report.startswith("[SELF-CHECK] the plan's memory fit vs SGLang's own start-up log")
    assert "933,824" in report and "70.26" in report and "WARN" not in report


def _launcher(tmp_path, encodings_dir, backend: str, name: str, extra_path: str, pythonpath: str = "", **env_extra):
    port = _free_port()
    env = launcher_env(tmp_path, encodings_dir, GPTOSS_BACKEND=backend, PORT=str(port), SHOW_LOADING_PROGRESS="true",
                       STANDIN_STARTUP="1", STANDIN_REPLAY=str(LOGS / name), STANDIN_STEP_S="0.002",
                       STANDIN_SERVE_S="3", **env_extra)  # /health is polled every 2 s
    env["PATH"] = f"{extra_path}{os.pathsep}{env['PATH']}"
    if pythonpath:
        env["PYTHONPATH"] = f"{pythonpath}{os.pathsep}{env['PYTHONPATH']}"
    proc = subprocess.run([sys.executable, "-m", "infra.launcher", "--gpu-snapshot", str(snap_path("h200-1gpu.json")),
                           "--config-dir", str(tmp_path / "cfg")], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=90)
    plan = json.loads(subprocess.run([sys.executable, "-m", "infra.launcher", "--dry-run", "--json", "--gpu-snapshot",
                                      str(snap_path("h200-1gpu.json"))], env=env, cwd=ROOT, capture_output=True,
                                     text=True, timeout=60, check=True).stdout)
    return proc, plan


def _assert_report(out: str, plan: dict, figures: list[str]):
    assert "[SELF-CHECK] the plan's memory fit vs" in out
    report = out[out.index("[SELF-CHECK]"):out.index("[OK] MODEL READY")]
    for f in figures:
        assert f in report
    if isinstance(plan["fit"], dict):  # the plan predicts: its figures are compared
        assert " ok " in report or "WARN" in report
    else:
        assert "launch.json has no `fit` object: nothing to compare" in report


def test_launcher_prints_the_self_check_for_a_real_vllm_log(tmp_path, encodings_dir, engine_bin):
    proc, plan = _launcher(tmp_path, encodings_dir, "vllm", VLLM_SEQS14, str(engine_bin))
    assert proc.returncode == 0, proc.stderr
    assert "Graph capturing finished in 108 secs, took 1.00 GiB" in proc.stdout  # the engine's log passes through
    _assert_report(proc.stdout, plan, ["61.43", "62.16", "1,607,859", "12.27x", "1.17", "1.00", "0.24", "125.82"])


def test_launcher_prints_the_self_check_for_a_real_sglang_log(tmp_path, encodings_dir, sglang_pkg):
    proc, plan = _launcher(tmp_path, encodings_dir, "sglang", SGLANG_COLD, os.path.dirname(sys.executable),
                           str(sglang_pkg), MODEL="openai/gpt-oss-120b")
    assert proc.returncode == 0, proc.stderr
    _assert_report(proc.stdout, plan, ["70.26", "57.71", "933,824", "747,059", "7.12x", "1.25"])
