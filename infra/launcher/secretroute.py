"""How each secret reaches the engine: exactly as the plan's `secrets[].pass_as` says (infra.plan).

  {"env": NAME}          the engine's env var NAME (vLLM: VLLM_API_KEY; HF_TOKEN)
  {"config_key": KEY}    KEY in a 0600 YAML file, in a fresh 0700 directory, given as --config
                         (SGLang's api-key: it has no env var for it)
  {"launcher": "sshd"}   the launcher's own (the SSH password for chpasswd); never in the engine's env

Never on the command line (`ps`), never printed. The launcher decides nothing here itself.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex
from typing import Any, Iterable, Mapping

from infra import constants as C
from infra.launcher.errors import LaunchError

# Names the container may give a secret under besides the plan's: the image READMEs' older spelling.
ALIASES = {"HF_TOKEN": ("HUGGING_FACE_HUB_TOKEN",)}
# Every env var through which the container hands the launcher a secret: none reaches the engine under
# its own name; the engine gets a secret only where the plan routes it.
SECRET_SOURCES = tuple(n for name in C.SECRET_ENV.values() for n in (name, *ALIASES.get(name, ())))
KINDS = ("env", "config_key", "launcher")
SECRET_DIR_PREFIX = "gptoss-secrets-"


@dataclass(frozen=True)
class SecretRoute:
    source: str  # the container env var that holds it (plan `secrets[].env`)
    kind: str  # one of KINDS
    target: str  # env var name, config key, or the launcher part that uses it

    def describe(self) -> str:
        return {"env": f"{self.target} env", "config_key": "0600 --config file"}.get(self.kind, f"the launcher's {self.target}")


def routes_from_plan(secrets: Iterable[Mapping[str, Any]]) -> list[SecretRoute]:
    """The plan's `secrets` list as typed routes; a shape this launcher does not know is refused."""
    out = []
    for s in secrets:
        pass_as = s.get("pass_as") or {}
        if len(pass_as) != 1 or next(iter(pass_as)) not in KINDS:
            raise LaunchError(f"the launch plan passes {s.get('env')!r} as {pass_as!r}, which this launcher cannot route "
                              f"(it knows {', '.join(KINDS)}): use the image built with this plan's version")
        ((kind, target),) = pass_as.items()
        out.append(SecretRoute(str(s["env"]), kind, str(target)))
    return out


def secret_value(env: Mapping[str, str], name: str) -> str:
    """The secret's value from the container env: its own name first, then its older spelling."""
    return next((env[n] for n in (name, *ALIASES.get(name, ())) if env.get(n)), "")


def secret_file_text(config: Mapping[str, str]) -> str:
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in config.items())


def secret_dir(runtime_dir: str) -> str:
    """A new, unguessable directory name for this start's secret file, in the container's own temp
    dir ($TMPDIR or /tmp). Never /dev/shm: with --ipc=host that is the host's, shared by every stack."""
    base = os.path.realpath(runtime_dir)
    if base == "/dev/shm" or base.startswith("/dev/shm/"):
        base = "/tmp"
    return f"{base.rstrip('/')}/{SECRET_DIR_PREFIX}{token_hex(16)}"


def write_secret_file(path: str, text: str, owner: tuple[int, int] | None) -> None:
    """Create `path` and its directory afresh: mkdir 0700 (fails on anything already there, a planted
    symlink included), the file with O_EXCL|O_NOFOLLOW and 0600, both owned by the engine user. The
    directories left by earlier starts of this container (restarts) are removed first."""
    d = Path(path).parent
    for old in d.parent.glob(SECRET_DIR_PREFIX + "*"):
        st = os.lstat(old)
        if stat.S_ISDIR(st.st_mode) and st.st_uid in {os.geteuid(), *(owner[:1] if owner else ())}:
            shutil.rmtree(old, ignore_errors=True)
    try:
        os.mkdir(d, 0o700)
        os.chmod(d, 0o700)  # exact, whatever the umask
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise LaunchError(f"cannot create the API key file in {d}: {exc.strerror}; the launcher needs a writable "
                          "temp dir ($TMPDIR or /tmp) in the container") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        if owner and os.geteuid() == 0:
            os.fchown(fh.fileno(), *owner)
            os.lchown(d, *owner)
        fh.write(text)
