"""Run the engine as the image's unprivileged user when the launcher starts as root.

The launcher starts as root only so that optional sshd can start (the RunPod READMEs' SSH); the engine
itself never needs root. It keeps root only when told to (GPTOSS_RUN_AS_ROOT=true), when the image
has no engine user, or when the cache mount is not writable by that user (a host directory owned by
root): then it says so and how to fix it.
"""
from __future__ import annotations

import glob
import os
import pwd
from pathlib import Path
from typing import Iterable

from infra import constants as C

ENGINE_USER, ENGINE_UID = C.ENGINE_USER, C.ENGINE_UID  # one source of truth: infra/constants.py


def _existing(path: str) -> Path:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def writable_by(path: str, uid: int, gids: Iterable[int]) -> bool:
    st = os.stat(_existing(path))
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & 0o200)
    if st.st_gid in set(gids):
        return bool(st.st_mode & 0o020)
    return bool(st.st_mode & 0o002)


def device_gids() -> set[int]:
    """Groups owning GPU device nodes (AMD /dev/kfd and /dev/dri are group video/render, not 0666)."""
    out = set()
    for dev in ["/dev/kfd", *glob.glob("/dev/dri/*"), *glob.glob("/dev/nvidia*")]:
        try:
            st = os.stat(dev)
        except OSError:
            continue
        if st.st_gid != 0:
            out.add(st.st_gid)
    return out


def choose_user(run_as_root: bool, cache_dirs: Iterable[str]) -> tuple[pwd.struct_passwd | None, str | None]:
    """(user to drop to or None, warning or None)."""
    if os.geteuid() != 0:
        return None, None
    if run_as_root:
        return None, "GPTOSS_RUN_AS_ROOT=true: the engine runs as root"
    try:
        pw = pwd.getpwnam(ENGINE_USER)
    except KeyError:
        return None, f"this image has no {ENGINE_USER!r} user: the engine runs as root"
    gids = {pw.pw_gid} | device_gids()
    for d in cache_dirs:
        if not writable_by(d, pw.pw_uid, gids):
            return None, (f"{_existing(d)} is not writable by {ENGINE_USER} (uid {pw.pw_uid}), so the engine runs as root; "
                          f"fix: chown -R {pw.pw_uid}:{pw.pw_gid} the mounted directory, use a named volume, "
                          f"or set GPTOSS_RUN_AS_ROOT=true to silence this")
    return pw, None


def drop_to(pw: pwd.struct_passwd, env: dict[str, str]) -> None:
    os.setgroups(sorted({pw.pw_gid} | device_gids()))
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    env.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)
