"""Optional SSH (seeds: key from SSH_PUBLIC_KEY over PUBLIC_KEY, password only with a loud warning)
and the Harmony encodings check."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest
from launcher_support import in_ci

from infra import constants as C
from infra.launcher.encodings import ENCODINGS, EncodingError, install, sha256_file, verify_dir
from infra.launcher.errors import LaunchError
from infra.launcher.ssh import SSHD_CONFIG, apply_ssh, plan_ssh, sshd_config

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeButWellFormedKeyMaterial0123456789 runpod@account"
KEY_B = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= me@laptop"


def test_ssh_off_by_default():
    assert plan_ssh({}).mode == "off"


def test_public_key_from_runpod():
    p = plan_ssh({"PUBLIC_KEY": KEY_A})
    assert (p.mode, p.key_source, p.keys, p.password) == ("key", "PUBLIC_KEY", [KEY_A], None)


def test_ssh_public_key_wins():
    p = plan_ssh({"PUBLIC_KEY": KEY_A, "SSH_PUBLIC_KEY": KEY_B})
    assert (p.key_source, p.keys) == ("SSH_PUBLIC_KEY", [KEY_B])
    assert any("using SSH_PUBLIC_KEY" in w for w in p.warnings)


def test_several_keys_one_per_line():
    assert plan_ssh({"SSH_PUBLIC_KEY": KEY_A + "\n" + KEY_B}).keys == [KEY_A, KEY_B]


def test_password_only_with_a_loud_warning():
    p = plan_ssh({"SSH_PASSWORD": "a-long-enough-password"})
    assert p.mode == "password" and "PASSWORD login" in p.describe()
    assert any(w.startswith("!!!") and "SSH_PUBLIC_KEY" in w for w in p.warnings)
    assert "a-long-enough-password" not in repr(p) + p.describe() + " ".join(p.warnings)


@pytest.mark.parametrize("env, words", [
    ({"PUBLIC_KEY": "hello world"}, "PUBLIC_KEY='hello world': not an OpenSSH public key"),
    ({"SSH_PUBLIC_KEY": "-----BEGIN OPENSSH " + "PRIVATE KEY----- abcdefghijklmnopqrstuvwxyz"}, "SSH_PUBLIC_KEY="),
    ({"SSH_PASSWORD": "short"}, "shorter than 8"),
])
def test_bad_ssh_values(env, words):
    with pytest.raises(LaunchError, match=words.replace("(", r"\(")) as exc:
        plan_ssh(env)
    assert "abcdefghijklmnopqrstuvwxyz" not in str(exc.value)  # a pasted private key is not echoed back


def test_sshd_config_key_only_vs_password():
    key_only = sshd_config(plan_ssh({"PUBLIC_KEY": KEY_A}))
    assert "PasswordAuthentication no" in key_only and "PermitRootLogin prohibit-password" in key_only
    pw = sshd_config(plan_ssh({"SSH_PASSWORD": "a-long-enough-password"}))
    assert "PasswordAuthentication yes" in pw and "PermitEmptyPasswords no" in pw


class _Recorder:
    """Records the system commands apply_ssh runs (chpasswd, ssh-keygen, sshd) instead of running them
    on this machine's own accounts."""

    def __init__(self):
        self.calls = []

    def __call__(self, cmd, **kw):
        self.calls.append((cmd, kw.get("input")))
        return subprocess.CompletedProcess(cmd, 0, "", "")


@pytest.mark.skipif(os.geteuid() != 0, reason="writes root-owned files")
def test_apply_ssh_writes_keys_and_passes_the_password_on_stdin(tmp_path):
    rec = _Recorder()
    plan = plan_ssh({"SSH_PUBLIC_KEY": KEY_A, "SSH_PASSWORD": "a-long-enough-password"})
    sshd = tmp_path / "usr/sbin/sshd"  # what the WITH_SSH=1 image has; the recorder stands in for running it
    sshd.parent.mkdir(parents=True)
    sshd.touch()
    warnings = apply_ssh(plan, root=str(tmp_path), run=rec, sshd=str(sshd))
    assert warnings == []
    auth = tmp_path / "root/.ssh/authorized_keys"
    assert auth.read_text() == KEY_A + "\n"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600 and stat.S_IMODE(auth.parent.stat().st_mode) == 0o700
    assert (tmp_path / SSHD_CONFIG).read_text() == sshd_config(plan)
    chpasswd = [c for c in rec.calls if c[0][0] == "chpasswd"]
    assert chpasswd == [(["chpasswd"], "root:a-long-enough-password\n")]  # stdin, never argv
    assert all("a-long-enough-password" not in " ".join(c[0]) for c in rec.calls)
    assert [c[0][0] for c in rec.calls][-2:] == ["ssh-keygen", str(sshd)]


def test_apply_ssh_without_sshd_warns_and_goes_on(tmp_path):
    rec = _Recorder()
    warnings = apply_ssh(plan_ssh({"PUBLIC_KEY": KEY_A}), root=str(tmp_path), run=rec, sshd=str(tmp_path / "no-sshd"))
    assert len(warnings) == 1 and "WITH_SSH=1" in warnings[0] and rec.calls == []


def test_generated_sshd_config_is_valid_for_real_sshd(tmp_path):
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd is None:
        if in_ci():
            pytest.fail("openssh-server not installed; .ci/run must install it")
        pytest.skip("openssh-server not installed")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd -t insists on its privilege-separation dir (apply_ssh makes it too)
    hostkey = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True)
    for plan in (plan_ssh({"PUBLIC_KEY": KEY_A}), plan_ssh({"SSH_PASSWORD": "a-long-enough-password"})):
        conf = tmp_path / "sshd_config"
        conf.write_text(sshd_config(plan) + f"HostKey {hostkey}\n")
        r = subprocess.run([sshd, "-t", "-f", str(conf)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------------------- Harmony encodings

def test_real_encodings_verify(encodings_dir):
    verify_dir(encodings_dir)
    for name, want in ENCODINGS.items():
        assert sha256_file(encodings_dir / name) == want


def test_missing_or_altered_encoding_is_refused(tmp_path, encodings_dir):
    with pytest.raises(EncodingError, match="TIKTOKEN_ENCODINGS_BASE=.*o200k_base.tiktoken is missing.*Rebuild"):
        verify_dir(tmp_path)
    for name in ENCODINGS:
        shutil.copy(encodings_dir / name, tmp_path / name)
    verify_dir(tmp_path)
    with open(tmp_path / "cl100k_base.tiktoken", "ab") as fh:
        fh.write(b"tampered\n")
    with pytest.raises(EncodingError, match="cl100k_base.tiktoken: sha256 .* does not match"):
        verify_dir(tmp_path)


def test_install_from_build_context_verifies(tmp_path, encodings_dir):
    done = install(tmp_path / "out", encodings_dir, allow_download=False)
    assert len(done) == 2 and all("sha256 ok" in d for d in done)
    verify_dir(tmp_path / "out")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "o200k_base.tiktoken").write_bytes(b"not the vocab")
    with pytest.raises(EncodingError, match="refusing to install"):
        install(tmp_path / "out2", bad, allow_download=False)
    with pytest.raises(EncodingError, match="TIKTOKEN_DOWNLOAD=1"):
        install(tmp_path / "out3", tmp_path / "nothing-here", allow_download=False)


def test_encodings_dir_is_one_fact():
    for backend in C.BACKENDS:
        text = (C.REPO_ROOT / "images" / backend / "Dockerfile").read_text()
        assert f"TIKTOKEN_ENCODINGS_BASE={C.TIKTOKEN_DIR}" in text
        assert f"COPY encodings/ {C.TIKTOKEN_DIR}/" in text
