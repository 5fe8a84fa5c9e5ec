"""The real parsers, in the parse-only venvs (built once per machine, cached; slow when cold)."""
from __future__ import annotations

import pytest

from flagcheck_samples import HOPPER_YAML, SGLANG, VLLM, sglang_launch, vllm_launch
from devtools.flagcheck import live
from infra.flagcheck.snapshot import LAUNCHERS, check_argv, load_snapshot

pytestmark = pytest.mark.slow


def _case(case_id, launch, skip):
    return {"id": case_id, "args": launch["argv"][skip:], "files": launch["files"]}


# Parser cases (parser input, no launcher words), parsed with every stack in one probe run per engine (`checked`).
VLLM_CASES = [
    _case("good", vllm_launch(), 2),
    _case("renamed", vllm_launch(extra=["--max-num-seqz", "8"]), 2),
    _case("removed", vllm_launch(extra=["--swap-space", "4"]), 2),
    _case("false", vllm_launch(HOPPER_YAML.replace("async-scheduling: true", "async-scheduling: false")), 2),
    # the vLLM gpt-oss recipe's MI300X line: `=` forms and vLLM's dotted JSON arguments
    {"id": "amd", "args": ["openai/gpt-oss-120b", "--tensor-parallel-size=8", "--attention-backend",
                           "ROCM_AITER_UNIFIED_ATTN", "-cc.pass_config.fuse_rope_kvcache=True",
                           "-cc.use_inductor_graph_partition=True", "--gpu-memory-utilization", "0.95",
                           "--block-size=64"]},
    # values vLLM's parser does not check (verified: all four parse)
    {"id": "--kv-cache-dtype", "args": ["openai/gpt-oss-120b", "--kv-cache-dtype", "fp9"]},
    {"id": "--attention-backend", "args": ["openai/gpt-oss-120b", "--attention-backend", "FLASH_ATN"]},
    {"id": "--tool-call-parser", "args": ["openai/gpt-oss-120b", "--tool-call-parser", "harmony"]},
    {"id": "--reasoning-parser", "args": ["openai/gpt-oss-120b", "--reasoning-parser", "gpt-oss"]},
]
SGLANG_CASES = [
    _case("good", sglang_launch(), 3),
    _case("yaml", sglang_launch(["--config", "/etc/gptoss/s.yaml"], {"s.yaml": "context-length: 4096\n"}), 3),
    _case("underscore", sglang_launch(["--config", "/etc/gptoss/s.yaml"], {"s.yaml": "context_length: 4096\n"}), 3),
    {"id": "tp", "args": SGLANG[3:] + ["--tp", "2"]},
    {"id": "fp8", "args": SGLANG[3:] + ["--kv-cache-dtype", "fp8"]},
    {"id": "harmony", "args": SGLANG[3:] + ["--tool-call-parser", "harmony"]},
    {"id": "mem", "args": SGLANG[3:] + ["--mem-fraction-static", "1.5"]},
]


# Launches that must fail or pass `invoke check-flags` as written.
SAMPLES = {"ok-v": vllm_launch(), "ok-s": sglang_launch(),
           "abbrev": sglang_launch(["--tp", "2"]),  # real parser accepts, we don't
           "renamed": vllm_launch(extra=["--max-num-seqz", "8"])}
CASES = {"vllm": VLLM_CASES, "sglang": SGLANG_CASES}


@pytest.fixture(scope="module")
def checked(engine_venvs):
    """Every stack's launch plan, SAMPLES and the parser cases through `live.check_launches` (what `invoke
    check-flags` runs): one probe run per engine for the whole module (vLLM imports in ~10 s)."""
    from infra.plan import build_plan
    from infra.stackfile import list_stacks, load_stack

    launches = {s: build_plan(load_stack(s)).to_launch_json() for s in list_stacks()}
    launches.update(SAMPLES)
    for engine, cases in CASES.items():
        launches.update({f"{engine}:{c['id']}": {"backend": engine, "argv": [*LAUNCHERS[engine][0], *c["args"]],
                                                  "files": c.get("files") or {}} for c in cases})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(live.venvs, "ensure_venv", lambda e, **kw: engine_venvs[e])
        return live.check_launches(launches)


@pytest.fixture(scope="module")
def real(checked):
    """The engines' own parse of each parser case: {engine: {id: {"ok", "error", "namespace"}}}."""
    return {engine: {c["id"]: {"ok": r["parser_ok"], "error": r["parser_error"], "namespace": r["namespace"]}
                     for c in cases for r in [checked[f"{engine}:{c['id']}"]]} for engine, cases in CASES.items()}


@pytest.fixture(scope="module")
def dumps(checked, engine_venvs):
    return {e: live.live_dump(e, venv=engine_venvs[e]) for e in CASES}  # recorded by the probe runs of `checked`


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_snapshot_equals_live_parser(dumps, engine):
    diff = live.diff_dumps(load_snapshot(engine), dumps[engine])
    assert diff == [], "snapshot is stale; run `invoke check-flags --refresh-snapshot`:\n" + "\n".join(diff[:50])


def test_diff_sees_a_renamed_flag(dumps):
    mutated = {**dumps["vllm"], "options": dict(dumps["vllm"]["options"])}
    mutated["options"]["--max-num-seqz"] = mutated["options"].pop("--max-num-seqs")
    assert live.diff_dumps(dumps["vllm"], mutated) == ["- option --max-num-seqs (only in the first)",
                                                       "+ option --max-num-seqz (only in the second)"]


def test_real_vllm_parser_accepts_the_recipe_and_rejects_a_renamed_flag(real):
    res = real["vllm"]
    assert res["good"]["ok"], res["good"]["error"]
    ns = res["good"]["namespace"]
    assert ns["tool_call_parser"] == "openai" and ns["max_cudagraph_capture_size"] == 2048
    assert ns["enable_prefix_caching"] is False  # `no-enable-prefix-caching: true` from the YAML
    assert not res["renamed"]["ok"] and "--max-num-seqz" in res["renamed"]["error"]
    assert not res["removed"]["ok"] and "--swap-space" in res["removed"]["error"]
    assert res["amd"]["ok"], res["amd"]["error"]
    assert res["amd"]["namespace"]["tensor_parallel_size"] == 8
    assert check_argv("vllm", ["vllm", "serve", *VLLM_CASES[4]["args"]]) == []


@pytest.mark.parametrize("opt", ["--kv-cache-dtype", "--attention-backend", "--tool-call-parser",
                                 "--reasoning-parser"])
def test_vllm_parser_lets_registry_values_through_so_we_check_them(real, opt):
    case = next(c for c in VLLM_CASES if c["id"] == opt)
    assert real["vllm"][opt]["ok"], real["vllm"][opt]["error"]  # the engine's parse takes the bad value
    problems = check_argv("vllm", ["vllm", "serve", *case["args"]])
    assert [p.option for p in problems] == [" ".join(case["args"][1:])]


def test_vllm_really_drops_false_from_the_config_yaml(real):
    """The fact behind the `key: false` rule: the real parser ignores it without a word."""
    res = real["vllm"]["false"]
    assert res["ok"], res["error"]
    assert res["namespace"]["async_scheduling"] is None  # not False: the key vanished
    launch = vllm_launch(HOPPER_YAML.replace("async-scheduling: true", "async-scheduling: false"))
    assert [p.option for p in check_argv("vllm", launch["argv"], launch["files"])] == ["async-scheduling: false"]


def test_argparse_abbreviations_pass_the_real_parser_but_not_ours(real):
    res = real["sglang"]["tp"]
    assert res["ok"] and res["namespace"]["tp_size"] == 2  # argparse expanded --tp
    assert [p.option for p in check_argv("sglang", SGLANG + ["--tp", "2"])] == ["--tp"]


def test_real_sglang_parser(real):
    res = real["sglang"]
    assert res["good"]["ok"], res["good"]["error"]
    assert res["good"]["namespace"]["kv_cache_dtype"] == "fp8_e4m3"
    assert res["yaml"]["ok"] and res["yaml"]["namespace"]["context_length"] == 4096
    assert not res["underscore"]["ok"] and "context_length" in res["underscore"]["error"]
    assert not res["fp8"]["ok"] and "fp8" in res["fp8"]["error"]
    assert not res["harmony"]["ok"] and "harmony" in res["harmony"]["error"]
    assert res["mem"]["ok"]  # the parser takes 1.5: the range check is ours
    assert [p.option for p in check_argv("sglang", SGLANG + ["--mem-fraction-static", "1.5"])] == [
        "--mem-fraction-static 1.5"]


def test_every_stack_passes_the_real_parsers_and_bad_samples_fail(checked):
    from infra.stackfile import list_stacks

    stacks, res = list_stacks(), checked
    assert len(stacks) >= 12
    failing = {s: (res[s]["parser_error"], [str(p) for p in res[s]["problems"]]) for s in stacks
               if not res[s]["parser_ok"] or res[s]["problems"]}
    assert failing == {}
    assert res["ok-v"]["parser_ok"] and res["ok-v"]["problems"] == []
    assert res["ok-s"]["parser_ok"] and res["ok-s"]["problems"] == []
    assert res["abbrev"]["parser_ok"] and [p.option for p in res["abbrev"]["problems"]] == ["--tp"]
    assert not res["renamed"]["parser_ok"] and [p.option for p in res["renamed"]["problems"]] == ["--max-num-seqz"]


def test_invoke_check_flags_task(engine_venvs, monkeypatch, capsys):
    from invoke import Context

    from infra.tasks import flags

    monkeypatch.setattr(live.venvs, "ensure_venv", lambda e, **kw: engine_venvs[e])
    flags.check_flags(Context(), stack="h100-sglang")  # passes: no SystemExit
    # SGLang again for the failing run: its probe starts in a few seconds, vLLM's in ~10 (the task is engine-blind;
    # vLLM's real parser runs on every stack in the test above)
    good = flags._launches(["h100-sglang"])[0]["h100-sglang"]
    bad = {**good, "argv": [*good["argv"], "--tensor-parallel", "2"]}
    monkeypatch.setattr(flags, "_launches", lambda names: ({n: bad for n in names}, {}))
    with pytest.raises(SystemExit) as exc:
        flags.check_flags(Context(), stack="h100-sglang")
    assert exc.value.code == 1
    assert "--tensor-parallel" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        flags.check_flags(Context(), diff=True)
    assert exc.value.code == 0  # snapshot == live
