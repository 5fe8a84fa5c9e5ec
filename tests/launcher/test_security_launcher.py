"""Issue 11 items 2, 8 and 9 in the launcher: the SGLang API key file (container-private, fresh 0700
directory, O_EXCL|O_NOFOLLOW, 0600, never /dev/shm), SSH_PASSWORD line breaks, GPTOSS_STACK_SPEC and
GPU snapshot shapes. The launcher runs for real (exec into the engine stand-in) where it matters."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from launcher_support import clean_env, launcher_env, run_launcher, snap_dict, snap_path, snapshot

from infra import constants as C
from infra.launcher.errors import LaunchError
from infra.launcher.main import SECRET_DIR_PREFIX, prepare, secret_dir, write_secret_file
from infra.launcher.nvml import snapshot_from_dict
from infra.launcher.ssh import plan_ssh

KEY = "sk-sglang-SENTINEL-4e1d09c7"
SNAP = str(snap_path("h200-1gpu.json"))


def _sglang_env(tmp_path, encodings_dir, sglang_pkg, tmpdir: Path, **extra):
    env = launcher_env(tmp_path, encodings_dir, GPTOSS_BACKEND="sglang", API_KEY=KEY, MODEL="openai/gpt-oss-20b",
                       STANDIN_RECORD=str(tmp_path / "rec.json"), TMPDIR=str(tmpdir), **extra)
    env["PYTHONPATH"] = f"{sglang_pkg}{os.pathsep}{env['PYTHONPATH']}"
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}"
    return env


def _start(tmp_path, env) -> str:
    r = run_launcher(["--gpu-snapshot", SNAP, "--config-dir", str(tmp_path / "cfg")], env)
    assert r.returncode == 0, r.stderr
    assert KEY not in r.stdout + r.stderr
    argv = json.loads((tmp_path / "rec.json").read_text())["argv"]
    assert KEY not in " ".join(argv)
    return argv[argv.index("--config") + 1]


# ----------------------------------------------------------------------------- item 2: the key file

def test_sglang_key_file_is_fresh_private_and_replaced_on_restart(tmp_path, encodings_dir, sglang_pkg):
    tmpdir = tmp_path / "containertmp"
    tmpdir.mkdir()
    env = _sglang_env(tmp_path, encodings_dir, sglang_pkg, tmpdir)
    first = _start(tmp_path, env)
    d = Path(first).parent
    assert d.parent == tmpdir and d.name.startswith(SECRET_DIR_PREFIX) and len(d.name) > len(SECRET_DIR_PREFIX) + 16
    assert stat.S_IMODE(os.lstat(d).st_mode) == 0o700 and stat.S_IMODE(os.lstat(first).st_mode) == 0o600
    assert open(first).read() == f'api-key: "{KEY}"\n'
    second = _start(tmp_path, env)  # the container restarts
    assert second != first and not d.exists()  # the old key directory is gone, the new one is new
    assert [p.name for p in tmpdir.iterdir()] == [Path(second).parent.name]


def test_sglang_key_file_never_goes_to_dev_shm(tmp_path, encodings_dir, sglang_pkg):
    """With --ipc=host /dev/shm is the host's, shared by every stack: TMPDIR pointing there is not followed."""
    assert not secret_dir("/dev/shm").startswith("/dev/shm")
    lc = prepare(clean_env(API_KEY=KEY, TMPDIR="/dev/shm"), "sglang", snapshot("h200-1gpu.json"), dry_run=True)
    (path,) = lc.secret_files
    assert not path.startswith("/dev/shm/") and path == lc.argv[lc.argv.index("--config") + 1]


def test_two_stacks_on_one_host_get_different_key_files():
    a = prepare(clean_env(API_KEY=KEY), "sglang", snapshot("h200-1gpu.json"), dry_run=True)
    b = prepare(clean_env(API_KEY=KEY), "sglang", snapshot("h200-1gpu.json"), dry_run=True)
    assert set(a.secret_files).isdisjoint(b.secret_files)


def test_planted_symlink_or_directory_is_refused_and_nothing_is_written(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    planted = tmp_path / f"{SECRET_DIR_PREFIX}planted"
    planted.symlink_to(victim, target_is_directory=True)
    with pytest.raises(LaunchError, match="cannot create the API key file"):
        write_secret_file(str(planted / "sglang-secret.yaml"), "api-key: x\n", None)
    assert list(victim.iterdir()) == []
    other = tmp_path / f"{SECRET_DIR_PREFIX}precreated"
    other.mkdir(mode=0o777)
    if os.geteuid() == 0:
        os.chown(other, 65534, 65534)  # made by another user: not ours to remove, and never reused
    with pytest.raises(LaunchError):
        write_secret_file(str(other / "sglang-secret.yaml"), "api-key: x\n", None)
    assert not (other / "sglang-secret.yaml").exists()


def test_file_is_created_exclusively_without_following_links(tmp_path):
    d = tmp_path / f"{SECRET_DIR_PREFIX}x"
    path = d / "sglang-secret.yaml"
    write_secret_file(str(path), "api-key: one\n", None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(d.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="handing the file to the engine user needs root")
def test_only_the_engine_user_can_enter_the_directory(tmp_path):
    owner = (65534, 65534)  # stands in for the image's gptoss user
    path = tmp_path / f"{SECRET_DIR_PREFIX}y" / "sglang-secret.yaml"
    write_secret_file(str(path), "api-key: k\n", owner)
    for p in (path, path.parent):
        st = os.lstat(p)
        assert (st.st_uid, st.st_gid) == owner
    assert stat.S_IMODE(os.lstat(path.parent).st_mode) == 0o700  # no group/other bits: nobody else enters


def test_extra_args_config_in_either_form_cannot_displace_the_key_file():
    for extra in (["--config=/tmp/mine.yaml"], ["--config", "/tmp/mine.yaml"]):
        spec = json.dumps({"backend": "sglang", "gpu": "auto", "model": "openai/gpt-oss-20b", "extra_args": extra})
        with pytest.raises(LaunchError, match="--config"):
            prepare(clean_env(API_KEY=KEY, **{C.SPEC_ENV: spec}), "sglang", snapshot("h200-1gpu.json"), dry_run=True)


# ----------------------------------------------------------------------------- item 9: SSH_PASSWORD

@pytest.mark.parametrize("password", ["long-password\nother:owned", "long-password\r", "long\x00password"])
def test_ssh_password_with_line_breaks_is_refused_without_showing_it(password):
    with pytest.raises(LaunchError) as exc:
        plan_ssh({"SSH_PASSWORD": password})
    assert "control character" in str(exc.value) and "(value not shown)" in str(exc.value)
    assert password.split("\n")[0] not in str(exc.value) and "owned" not in str(exc.value)


def test_ssh_password_line_break_stops_the_start_before_chpasswd(tmp_path, encodings_dir, sglang_pkg):
    env = _sglang_env(tmp_path, encodings_dir, sglang_pkg, tmp_path, SSH_PASSWORD="correct-horse\nother:owned")
    r = run_launcher(["--gpu-snapshot", SNAP, "--config-dir", str(tmp_path / "cfg")], env)
    assert r.returncode == 2 and "SSH_PASSWORD" in r.stderr and "owned" not in r.stdout + r.stderr
    assert not (tmp_path / "rec.json").exists()


# ----------------------------------------------------------------------------- item 8: shapes

@pytest.mark.parametrize("raw", ["[]", '"vllm"', "1", "null", "true"])
def test_stack_spec_env_that_is_not_an_object_is_one_line(raw):
    with pytest.raises(LaunchError) as exc:
        prepare(clean_env(**{C.SPEC_ENV: raw}), "vllm", snapshot("h200-1gpu.json"), dry_run=True)
    assert C.SPEC_ENV in str(exc.value) and "\n" not in str(exc.value)


def test_stack_spec_env_with_credentials_masks_them():
    raw = json.dumps({"backend": "vllm", "gpu": "auto", "docker": {"host": "ssh://root:hunter2-pw@gpu"}})
    with pytest.raises(LaunchError) as exc:
        prepare(clean_env(**{C.SPEC_ENV: raw}), "vllm", snapshot("h200-1gpu.json"), dry_run=True)
    assert "hunter2-pw" not in str(exc.value)


@pytest.mark.parametrize("change, field", [
    ({"compute_capability": "nine"}, "compute_capability"),
    ({"compute_capability": [9]}, "compute_capability"),
    ({"mig_mode": 1}, "mig_mode"),
    ({"mig_devices": 5}, "mig_devices"),
    ({"mig_devices": [1]}, "mig_devices"),
    ({"mig_devices": [{"index": 0}]}, "memory_total"),
    ({"memory_total": []}, "memory_total"),
    ({"memory_free": True}, "memory_free"),
    ({"power_limit_mw": "lots"}, "power_limit_mw"),
    ({"arch": "hopper"}, "arch"),
    ({"uuid": 7}, "uuid"),
])
def test_malformed_snapshot_fields_name_the_file_and_field(tmp_path, change, field):
    data = snap_dict("h200-1gpu.json")
    data["devices"][0].update(change)
    with pytest.raises(ValueError, match=rf"bad\.json: devices\[0\].*'{field}'"):
        snapshot_from_dict(data, where="bad.json")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    r = run_launcher(["--dry-run", "--backend", "vllm", "--gpu-snapshot", str(path)], clean_env())
    assert r.returncode == 2 and field in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
