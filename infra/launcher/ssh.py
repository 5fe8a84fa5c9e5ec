"""Optional SSH, as the image and RunPod READMEs describe it (RunPod's SSH tunnel):

- key login when SSH_PUBLIC_KEY (wins) or PUBLIC_KEY (RunPod injects it from the account) is set;
- password login only when SSH_PASSWORD is set, with a loud warning;
- off when none is set.

Needs root (sshd binds 22 and switches users) and an image built with WITH_SSH=1 (openssh-server).
SSH trouble never stops the model server: it is reported as a warning and the engine starts anyway,
because RunPod sets PUBLIC_KEY on every pod whether or not the user wants SSH.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from infra.launcher.errors import LaunchError

_KEY = re.compile(
    r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)"
    r"\s+[A-Za-z0-9+/]+={0,3}(\s+.*)?$"
)
SSHD_CONFIG = "etc/ssh/sshd_config.d/gptoss.conf"


@dataclass
class SshPlan:
    mode: str  # off | key | password | key+password
    keys: list[str] = field(default_factory=list)
    key_source: str | None = None
    password: str | None = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.mode == "off":
            return "off (no SSH_PUBLIC_KEY, PUBLIC_KEY or SSH_PASSWORD)"
        parts = []
        if self.keys:
            parts.append(f"key login ({len(self.keys)} key(s) from {self.key_source})")
        if self.password is not None:
            parts.append("PASSWORD login (SSH_PASSWORD)")
        return ", ".join(parts)


def plan_ssh(env: Mapping[str, str]) -> SshPlan:
    """Decide what SSH does from the env. Raises LaunchError for a malformed key (one line, exit 2)."""
    source = next((n for n in ("SSH_PUBLIC_KEY", "PUBLIC_KEY") if env.get(n, "").strip()), None)
    password = env.get("SSH_PASSWORD") or None
    plan = SshPlan(mode="off")
    if source:
        keys = [k.strip() for k in env[source].replace("\\n", "\n").splitlines() if k.strip()]
        for k in keys:
            if not _KEY.match(k):
                shown = k[:20] + ("..." if len(k) > 20 else "")
                raise LaunchError(f"{source}={shown!r}: not an OpenSSH public key (expected 'ssh-ed25519 AAAA... comment'); "
                                  "paste the .pub file's single line")
        plan.keys, plan.key_source = keys, source
        if source == "SSH_PUBLIC_KEY" and env.get("PUBLIC_KEY", "").strip():
            plan.warnings.append("SSH_PUBLIC_KEY and PUBLIC_KEY are both set; using SSH_PUBLIC_KEY")
    if password is not None:
        if any(ord(c) < 32 or ord(c) == 127 for c in password):
            # chpasswd reads user:password lines: a newline would set another user's password.
            raise LaunchError("SSH_PASSWORD contains a line break or another control character (value not shown): "
                              "use a single-line password, or a key (SSH_PUBLIC_KEY)")
        if len(password) < 8:
            raise LaunchError("SSH_PASSWORD is shorter than 8 characters: use a long random password, or a key (SSH_PUBLIC_KEY)")
        plan.password = password
        plan.warnings.append(
            "!!! SSH PASSWORD LOGIN IS ON (SSH_PASSWORD is set): anyone who can reach port 22 can try to guess it. "
            "Use SSH_PUBLIC_KEY instead and unset SSH_PASSWORD !!!")
    plan.mode = "+".join(m for m, on in (("key", bool(plan.keys)), ("password", plan.password is not None)) if on) or "off"
    return plan


def sshd_config(plan: SshPlan) -> str:
    password = "yes" if plan.password is not None else "no"
    root = "yes" if plan.password is not None else "prohibit-password"
    return (
        "# Written by the gptoss launcher (infra/launcher/ssh.py)\n"
        f"PermitRootLogin {root}\n"
        "PubkeyAuthentication yes\n"
        f"PasswordAuthentication {password}\n"
        "KbdInteractiveAuthentication no\n"
        "PermitEmptyPasswords no\n"
        "AllowTcpForwarding yes\n"  # the READMEs' use: ssh -L 8000:localhost:8000
        "X11Forwarding no\n"
    )


def apply_ssh(plan: SshPlan, root: str = "/", run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
              sshd: str | None = None) -> list[str]:
    """Write keys/config under `root` and start sshd. Returns warnings (never raises for SSH trouble)."""
    if plan.mode == "off":
        return []
    if os.geteuid() != 0 and root == "/":
        return ["SSH requested but the launcher is not root, so sshd cannot start; run the container as root "
                "(the engine still drops to the unprivileged user) or unset PUBLIC_KEY/SSH_PUBLIC_KEY/SSH_PASSWORD"]
    if sshd is None:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        return ["SSH requested but this image has no sshd (built with WITH_SSH=0); rebuild with "
                "--build-arg WITH_SSH=1 or unset PUBLIC_KEY/SSH_PUBLIC_KEY/SSH_PASSWORD"]
    base = Path(root)
    if plan.keys:
        ssh_dir = base / "root/.ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(ssh_dir, 0o700)
        auth = ssh_dir / "authorized_keys"
        auth.write_text("\n".join(plan.keys) + "\n", encoding="utf-8")
        os.chmod(auth, 0o600)
    conf = base / SSHD_CONFIG
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(sshd_config(plan), encoding="utf-8")
    (base / "run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
    warnings = []
    if plan.password is not None:
        # Password through stdin, never argv (argv shows up in ps).
        r = run(["chpasswd"], input=f"root:{plan.password}\n", text=True, capture_output=True)
        if r.returncode != 0:
            warnings.append(f"chpasswd failed (exit {r.returncode}); password login will not work")
    keygen = run(["ssh-keygen", "-A"], capture_output=True, text=True)
    if keygen.returncode != 0:
        warnings.append(f"ssh-keygen -A failed (exit {keygen.returncode}); sshd may refuse to start")
    started = run([sshd, "-f", str(base / "etc/ssh/sshd_config")], capture_output=True, text=True)
    if started.returncode != 0:
        warnings.append(f"sshd did not start (exit {started.returncode}): {started.stderr.strip()[:200]}")
    return warnings
