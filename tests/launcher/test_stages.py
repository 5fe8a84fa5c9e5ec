"""The launcher's stages (infra.launcher.stages), each alone on a LaunchState, and the env rule: the
container env is given once at the entry point and nothing after it reads os.environ.

Real core throughout (spec, envmap, presets, fit, plan); only the GPUs come from NVML snapshots.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from contextlib import contextmanager

import pytest
from launcher_support import ROOT, clean_env, launcher_env, pythonpath, snap_path, snapshot

from infra import constants as C
from infra.catalogue import gpus, platform_for
from infra.launcher import stages as S
from infra.launcher.errors import LaunchError
from infra.launcher.main import parse_args, prepare, start
from infra.launcher.secretroute import SECRET_SOURCES, routes_from_plan
from infra.plan import api_key_guard_args

KEY = "sk-stages-SENTINEL-5b7c"
H200 = "h200-1gpu.json"


def state(backend="vllm", snap=H200, **env) -> S.LaunchState:
    return S.LaunchState(env=clean_env(**env), backend=backend, snapshot=snapshot(snap) if snap else None)


def through(st: S.LaunchState, last) -> S.LaunchState:
    """Run the stages up to and including `last`."""
    for stage in S.STAGES:
        st = stage(st)
        if stage is last:
            return st
    raise AssertionError(f"{last} is not a stage")


# ----------------------------------------------------------------------------- each stage alone

def test_the_stages_and_their_order():
    assert [s.__name__ for s in S.STAGES] == ["read_container_env", "detect_gpus", "make_plan", "route_secrets", "engine_env"]


def test_read_container_env_checks_the_launchers_variables_and_nothing_else():
    st = S.read_container_env(state(SHOW_LOADING_PROGRESS="yes", GPTOSS_RUN_AS_ROOT="1", MODEL="openai/gpt-oss-20b",
                                    HF_TOKEN="hf_x", TMPDIR=str(ROOT)))
    assert st.show_progress and st.run_as_root and st.ssh.mode == "off"
    assert st.spec.backend == "vllm" and st.spec.gpu == "auto" and st.spec.secrets_set == {"hf_token"}
    assert st.runtime_dir == str(ROOT)
    assert st.detection is None and st.plan is None  # nothing detected or planned yet
    with pytest.raises(LaunchError, match="GPTOSS_BACKEND='tgi'"):
        S.read_container_env(state(backend="tgi"))
    assert S.read_container_env(state(TMPDIR="/nonexistent-dir")).runtime_dir == "/tmp"


def test_detect_gpus_from_the_snapshot_given():
    st = S.detect_gpus(S.read_container_env(state(snap="h100-2gpu.json")))
    assert (st.detection.gpu.id, st.detection.count) == ("h100-80gb", 2) and st.plan is None


def test_rocm_refusal_names_the_catalogues_amd_gpus():
    amd = [g.id for g in gpus().values() if platform_for(g) == "rocm"]
    assert amd  # the catalogue's, not a list in the launcher
    with pytest.raises(LaunchError) as err:
        S.detect_gpus(S.read_container_env(state(snap=None, GPTOSS_PLATFORM="rocm")))
    assert f"gpu: {' or '.join(amd)}" in str(err.value)


def test_make_plan_places_the_plans_files_in_the_config_dir():
    st = S.read_container_env(state())
    st.config_dir = "/srv/cfg"
    st = S.make_plan(S.detect_gpus(st))
    assert st.argv[st.argv.index("--config") + 1] == "/srv/cfg/vllm.yaml" and list(st.files) == ["/srv/cfg/vllm.yaml"]
    assert st.argv[:3] == st.plan.argv[:3] and not st.secret_env and not st.engine_env


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_route_secrets_follows_the_plans_pass_as(backend):
    st = through(state(backend, API_KEY=KEY), S.make_plan)
    (api,) = st.plan.secrets
    routed = S.route_secrets(st)
    if api["pass_as"] == {"env": "VLLM_API_KEY"}:
        assert routed.secret_env == {"VLLM_API_KEY": KEY} and not routed.secret_files
    else:
        assert api["pass_as"] == {"config_key": "api-key"} and not routed.secret_env
        (path, text) = next(iter(routed.secret_files.items()))
        assert text == f'api-key: "{KEY}"\n' and routed.argv[-2:] == ["--config", path]
    assert KEY not in " ".join(routed.argv)


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_changing_pass_as_changes_the_routing(backend):
    """The launcher decides nothing of its own: another pass_as in the plan, another route."""
    st = through(state(backend, API_KEY=KEY, HF_TOKEN="hf_stages"), S.make_plan)
    st.plan.secrets = [{"env": "API_KEY", "pass_as": {"env": "SOME_OTHER_NAME"}},
                       {"env": "HF_TOKEN", "pass_as": {"launcher": "sshd"}}]
    routed = S.route_secrets(st)
    assert routed.secret_env == {"SOME_OTHER_NAME": KEY} and not routed.secret_files
    assert "--config" not in routed.argv[len(st.plan.argv):]
    engine = S.engine_env(routed).engine_env
    assert engine["SOME_OTHER_NAME"] == KEY and "VLLM_API_KEY" not in engine and "HF_TOKEN" not in engine


def test_a_route_the_launcher_does_not_know_is_refused():
    st = through(state(API_KEY=KEY), S.make_plan)
    st.plan.secrets = [{"env": "API_KEY", "pass_as": {"argv": "--api-key"}}]
    with pytest.raises(LaunchError, match="cannot route") as err:
        S.route_secrets(st)
    assert KEY not in str(err.value)


def test_a_config_key_route_never_displaces_a_config_already_there():
    st = through(state("vllm", API_KEY=KEY), S.make_plan)  # vLLM's own --config holds the plan's settings
    st.plan.secrets = [{"env": "API_KEY", "pass_as": {"config_key": "api-key"}}]
    with pytest.raises(LaunchError, match="--config"):
        S.route_secrets(st)


def test_engine_env_drops_the_launchers_inputs_and_adds_the_routed_secrets():
    st = through(state(API_KEY=KEY, HUGGING_FACE_HUB_TOKEN="hf_legacy", PUBLIC_KEY="ssh-ed25519 AAAA x",
                       SSH_PASSWORD="long-enough-pw", MY_VAR="kept"), S.route_secrets)
    assert st.engine_env == {}  # not built before its stage
    assert {"env": "SSH_PASSWORD", "pass_as": {"launcher": "sshd"}} in st.plan.secrets  # the plan says: not the engine's
    env = S.engine_env(st).engine_env
    assert not set(SECRET_SOURCES + C.SSH_ENV_VARS) - {"HF_TOKEN"} & set(env)
    assert env["HF_TOKEN"] == "hf_legacy" and env["VLLM_API_KEY"] == KEY and env["MY_VAR"] == "kept"
    assert "MY_VAR" in st.inherited and "HF_TOKEN" not in st.inherited  # renamed by the launcher: shown


def test_api_key_on_a_stack_planned_without_one_is_planned_as_a_given_key():
    """The image READMEs: API_KEY set turns auth on. The plan then adds the guard and the route: the
    launcher adds neither itself."""
    spec = json.dumps({"backend": "vllm", "gpu": "auto", "api_key_mode": "none"})
    lc = prepare(clean_env(API_KEY=KEY, GPTOSS_STACK_SPEC=spec), "vllm", snapshot(H200))
    assert lc.api_key and lc.env["VLLM_API_KEY"] == KEY
    assert routes_from_plan(lc.plan.secrets)[0].target == "VLLM_API_KEY"
    assert lc.plan.argv[-2:] == api_key_guard_args("vllm") == lc.argv[-2:]
    assert any("api_key_mode: none" in w and "unset API_KEY" in w for w in lc.warnings)
    keyless = prepare(clean_env(GPTOSS_STACK_SPEC=spec), "vllm", snapshot(H200))
    assert not keyless.api_key and "--middleware" not in keyless.argv and "VLLM_API_KEY" not in keyless.env


def test_summary_says_how_the_key_is_passed_from_the_route():
    vllm = prepare(clean_env(API_KEY=KEY), "vllm", snapshot(H200))
    sglang = prepare(clean_env(API_KEY=KEY), "sglang", snapshot(H200))
    assert "key on (VLLM_API_KEY env, every route but /health" in " ".join(vllm.summary)
    assert "key on (0600 --config file, every HTTP route" in " ".join(sglang.summary)
    assert "| key off" in " ".join(prepare(clean_env(), "vllm", snapshot(H200)).summary)


@pytest.mark.parametrize("model, words", [("openai/gpt-oss-120b", "120b uses all GPUs"), ("openai/gpt-oss-20b", "20b uses 1 GPU")])
def test_summary_tp_rule_is_the_specs(model, words):
    lc = prepare(clean_env(MODEL=model), "vllm", snapshot("h100-2gpu.json"))
    assert f"(auto: {words})" in " ".join(lc.summary)


# ----------------------------------------------------------------------------- env passed in, os.environ never read

class Poisoned(Mapping):
    """Stands in for os.environ: records and refuses every read."""

    def __init__(self):
        self.reads: list[str] = []

    def __getitem__(self, key):
        self.reads.append(key)
        raise KeyError(f"os.environ[{key!r}] read after the entry point")

    def __iter__(self):
        self.reads.append("<iter>")
        return iter(())

    def __len__(self):
        self.reads.append("<len>")
        return 0


@contextmanager
def poisoned_environ():
    """os.environ poisoned for the block (not a fixture: pytest itself writes os.environ between phases)."""
    prepare(clean_env(), "vllm", snapshot(H200))  # imports done first: this is about decisions, not imports
    saved, poisoned = os.environ, Poisoned()
    os.environ = poisoned
    try:
        yield poisoned
    finally:
        os.environ = saved


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_prepare_decides_from_the_env_given_alone(backend):
    env = clean_env(API_KEY=KEY, MAX_MODEL_LEN="16384", SHOW_LOADING_PROGRESS="true", TMPDIR="/dev/shm")
    snap = snapshot(H200)
    with poisoned_environ() as poisoned:
        lc = prepare(env, backend, snap)
    assert lc.api_key and lc.show_progress and lc.plan.settings["max_model_len"] == 16384
    assert all(not p.startswith("/dev/shm/") for p in lc.secret_files)  # TMPDIR from the env given, then refused
    assert poisoned.reads == []


def test_after_main_parses_its_arguments_only_the_env_given_is_read(capsys):
    """main reads os.environ once (argparse and gettext read it too, for the terminal and locale); from
    there on, the env it took is all there is."""
    env = clean_env(GPTOSS_BACKEND="sglang", MODEL="openai/gpt-oss-20b")
    args = parse_args(["--dry-run", "--json", "--gpu-snapshot", str(snap_path(H200))], env)
    with poisoned_environ() as poisoned:
        assert start(args, env, 0.0) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "sglang" and out["model"] == "openai/gpt-oss-20b"  # GPTOSS_BACKEND from the env given
    assert poisoned.reads == []


RUN_POISONED = """
import os, sys
from collections.abc import Mapping
import infra.launcher.encodings, infra.launcher.privileges, infra.launcher.ssh  # run()'s imports, done first
from infra.launcher import main as M
from infra.launcher.nvml import load_snapshot
class Poisoned(Mapping):
    def __getitem__(self, key): raise SystemExit(f"os.environ[{key!r}] read after the entry point")
    def __iter__(self): raise SystemExit("os.environ iterated after the entry point")
    def __len__(self): raise SystemExit("len(os.environ) after the entry point")
env = dict(os.environ)
M.prepare(env, "vllm", load_snapshot(sys.argv[1]))  # the stages' imports, done first
args = M.parse_args(["--gpu-snapshot", sys.argv[1], "--config-dir", sys.argv[2]], env)  # main's own work
os.environ = Poisoned()
sys.exit(M.start(args, env, 0.0))
"""


def test_run_execs_with_the_env_given_and_never_reads_os_environ(tmp_path, encodings_dir, engine_bin):
    """The real start: SSH plan, run-as-root flag, files and exec all from what prepare decided."""
    env = launcher_env(tmp_path, encodings_dir, GPTOSS_BACKEND="vllm", STANDIN_RECORD=str(tmp_path / "rec.json"),
                       API_KEY=KEY, GPTOSS_RUN_AS_ROOT="true", PYTHONPATH=pythonpath())
    env["PATH"] = f"{engine_bin}{os.pathsep}{env['PATH']}"
    r = subprocess.run([sys.executable, "-c", RUN_POISONED, str(snap_path(H200)), str(tmp_path / "cfg")],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads((tmp_path / "rec.json").read_text())
    assert rec["vllm_api_key_set"] and not rec["api_key_in_env"] and KEY not in " ".join(rec["argv"]) + r.stdout
    assert (tmp_path / "cfg" / "vllm.yaml").is_file()
