"""Image build step (the Dockerfiles' one RUN): python3 -m infra.launcher.buildsetup

Runs inside the base image with only python3, so the same step works on the vLLM, SGLang, ROCm and
the tests' stand-in bases (no shell, useradd or curl needed). Reads the Dockerfile's build args
from the environment (Docker exposes ARGs to RUN):

  BASE_IMAGE, BASE_DIGEST, ALLOW_UNPINNED_BASE  refuse an unpinned base unless explicitly allowed
  TIKTOKEN_DOWNLOAD=1                           fetch the Harmony encodings when the context lacks them
  WITH_SSH=1                                    install openssh-server (apt) for the image READMEs' SSH option
  GPTOSS_PLATFORM                               cuda | blackwell | rocm (pynvml is required off ROCm)

Every failure is one line naming the build arg and the fix.
"""
from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from infra import constants as C
from infra.launcher.encodings import EncodingError, install
from infra.launcher.privileges import ENGINE_UID, ENGINE_USER

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class BuildError(RuntimeError):
    pass


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


def check_pin(env) -> str:
    digest = env.get("BASE_DIGEST", "")
    if _DIGEST.match(digest):
        return f"base {env.get('BASE_IMAGE', '?')}@{digest} (pinned)"
    if digest:
        raise BuildError(f"BASE_DIGEST={digest!r} is not sha256:<64 hex>; copy it from `docker buildx imagetools inspect <image>`")
    if not _truthy(env.get("ALLOW_UNPINNED_BASE")):
        raise BuildError(
            f"base image {env.get('BASE_IMAGE', '?')} is not pinned by digest: pass --build-arg BASE_DIGEST=sha256:... "
            "(images/build.py reads it from infra/catalogue/images.yaml), or --build-arg ALLOW_UNPINNED_BASE=1 to build "
            "from the tag alone, knowingly")
    return f"base {env.get('BASE_IMAGE', '?')} UNPINNED (ALLOW_UNPINNED_BASE=1): the tag may move under you"


def check_python_deps(platform: str) -> list[str]:
    need = ["pydantic", "yaml", "jinja2"] + ([] if platform == "rocm" else ["pynvml"])
    missing = []
    for mod in need:
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        pip = {"yaml": "pyyaml", "pynvml": "nvidia-ml-py"}
        raise BuildError(f"the base image lacks {', '.join(missing)} for the launcher; use the engine's release image "
                         f"as base or add a RUN pip install {' '.join(pip.get(m, m) for m in missing)}")
    return need


def ensure_user(root: str = "/") -> str:
    """Add the engine user (fixed uid/gid) without useradd: base images differ in what they ship."""
    etc = Path(root) / "etc"
    passwd, group = etc / "passwd", etc / "group"
    users = passwd.read_text().splitlines() if passwd.exists() else []
    groups = group.read_text().splitlines() if group.exists() else []
    home = f"/home/{ENGINE_USER}"
    if any(line.split(":")[0] == ENGINE_USER for line in users):
        return f"user {ENGINE_USER} exists"
    if any(line.split(":")[2:3] == [str(ENGINE_UID)] for line in users if line.count(":") >= 2):
        raise BuildError(f"uid {ENGINE_UID} is taken in the base image; pick another ENGINE_UID in infra/launcher/privileges.py")
    if not any(line.split(":")[0] == ENGINE_USER for line in groups):
        with open(group, "a", encoding="utf-8") as fh:
            fh.write(f"{ENGINE_USER}:x:{ENGINE_UID}:\n")
    with open(passwd, "a", encoding="utf-8") as fh:
        fh.write(f"{ENGINE_USER}:x:{ENGINE_UID}:{ENGINE_UID}:gpt-oss engine:{home}:/usr/sbin/nologin\n")
    shadow = etc / "shadow"
    if shadow.exists():
        with open(shadow, "a", encoding="utf-8") as fh:
            fh.write(f"{ENGINE_USER}:!:19000:0:99999:7:::\n")  # locked: no password login for the engine user
    return f"user {ENGINE_USER} ({ENGINE_UID}) added"


def make_dirs(root: str = "/") -> list[str]:
    dirs = [C.CACHE_ROOT, *C.CACHE_ENV.values(), C.CONFIG_DIR, f"/home/{ENGINE_USER}"]
    for d in dirs:
        p = Path(root) / d.lstrip("/")
        p.mkdir(parents=True, exist_ok=True)
        os.chown(p, ENGINE_UID, ENGINE_UID)
        os.chmod(p, 0o755)
    return dirs


def install_ssh() -> str:
    if shutil.which("sshd") or os.path.exists("/usr/sbin/sshd"):
        return "sshd already present"
    if not shutil.which("apt-get"):
        raise BuildError("WITH_SSH=1 needs apt-get in the base image to install openssh-server; build with WITH_SSH=0")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "openssh-server"]):
        r = subprocess.run(cmd, env=env)
        if r.returncode:
            raise BuildError(f"{' '.join(cmd)} failed (exit {r.returncode}); build with WITH_SSH=0 where there is no network")
    shutil.rmtree("/var/lib/apt/lists", ignore_errors=True)  # keep the layer small
    # Host keys are made at container start (ssh-keygen -A), never baked into a shared image.
    for key in Path("/etc/ssh").glob("ssh_host_*"):
        key.unlink()
    return "openssh-server installed"


def main() -> int:
    env = os.environ
    platform = env.get("GPTOSS_PLATFORM", "cuda")
    try:
        steps = [check_pin(env), f"python deps ok: {', '.join(check_python_deps(platform))}", ensure_user()]
        steps.append("dirs " + ", ".join(make_dirs()))
        steps += install(C.TIKTOKEN_DIR, env.get("TIKTOKEN_SRC", C.TIKTOKEN_DIR), _truthy(env.get("TIKTOKEN_DOWNLOAD")))
        if _truthy(env.get("WITH_SSH")):
            steps.append(install_ssh())
    except (BuildError, EncodingError) as exc:
        print(f"gptoss build error: {exc}", file=sys.stderr)
        return 1
    for s in steps:
        print(f"gptoss build: {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
