"""Runs one python call in a fresh sandboxed process and turns every outcome into text for the model.

The child (infra/toolserver/child.py) confines itself before the model's code runs; this side gives it a
cleared environment, a new session (its own process group), a per-conversation scratch dir as cwd/HOME/TMPDIR,
a wall-clock limit (the whole process group is SIGKILLed), and capped output. A server running as root
(the host tests; never the image) runs children as TOOLSERVER_CHILD_UID (default nobody), never as root.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass, fields
from pathlib import Path

CHILD_SOURCE = (Path(__file__).with_name("child.py")).read_text(encoding="utf-8")


class ConfigError(ValueError):
    """A bad TOOLSERVER_* value: one line naming the variable, the value and the fix."""


@dataclass(frozen=True)
class Limits:
    """Every limit, with its env var (TOOLSERVER_<NAME upper>), default and bounds. One source of truth:
    images/toolserver/README.md lists them; the tool instructions quote the ones the model needs."""
    timeout_s: int = 30            # wall clock per call; the process group is killed after it
    max_output_bytes: int = 65536  # stdout+stderr kept per call (the rest is dropped with a note)
    memory_mb: int = 1024          # RLIMIT_AS per process
    max_procs: int = 128           # RLIMIT_NPROC (per uid: fork bombs stop here; the container pids limit is above it)
    max_file_mb: int = 64          # RLIMIT_FSIZE
    max_open_files: int = 256      # RLIMIT_NOFILE
    max_concurrent: int = 20       # calls running at once; more wait up to queue_wait_s, then get a tool error
    queue_wait_s: int = 10
    max_code_bytes: int = 262144   # a longer `code` argument is refused
    scratch_mb: int = 100          # per conversation; over it after a call, its files are removed (with a note)
    session_ttl_s: int = 3600      # idle conversations' scratch dirs are removed after this
    max_sessions: int = 256        # the oldest conversation's scratch dir goes first beyond this
    child_uid: int = 65534         # only when the server runs as root

    BOUNDS = {"timeout_s": (1, 600), "max_output_bytes": (1024, 1 << 22), "memory_mb": (64, 65536),
              "max_procs": (8, 4096), "max_file_mb": (1, 4096), "max_open_files": (16, 4096),
              "max_concurrent": (1, 256), "queue_wait_s": (0, 600), "max_code_bytes": (1024, 1 << 22),
              "scratch_mb": (1, 65536), "session_ttl_s": (60, 7 * 86400), "max_sessions": (1, 100000),
              "child_uid": (1, 2**31 - 2)}

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Limits:
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            var = f"TOOLSERVER_{f.name.upper()}"
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            lo, hi = cls.BOUNDS[f.name]
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{var}={raw[:40]!r} is not a whole number; set an integer in [{lo}, {hi}] "
                                  "(images/toolserver/README.md)") from None
            if not lo <= value <= hi:
                raise ConfigError(f"{var}={value} is outside [{lo}, {hi}]; set a value in that range "
                                  "(images/toolserver/README.md)")
            values[f.name] = value
        return cls(**values)


def child_config(limits: Limits, scratch: Path, require_landlock: bool) -> dict:
    return {"memory_bytes": limits.memory_mb << 20, "cpu_seconds": limits.timeout_s + 1,
            "max_procs": limits.max_procs, "max_file_bytes": limits.max_file_mb << 20,
            "max_open_files": limits.max_open_files, "scratch": str(scratch), "server_pid": os.getpid(),
            "server_pgid": os.getpgid(0),
            "require_landlock": require_landlock}


def child_env(scratch: Path) -> dict[str, str]:
    """All the child gets: nothing from the server's environment."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch), "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _describe_exit(code: int) -> str:
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = {"SIGKILL": " (a memory or process limit, or the CPU-time limit)",
                "SIGXCPU": " (the CPU-time limit)", "SIGXFSZ": " (the file-size limit)",
                "SIGSEGV": " (often the memory limit)"}.get(sig, "")
        return f"the process was killed by {sig}{hint}"
    return f"the process exited with status {code}"


@dataclass
class Outcome:
    text: str
    is_error: bool


async def run_code(code: str, scratch: Path, limits: Limits, *, python: str = sys.executable,
                   require_landlock: bool = False, live: set[int] | None = None) -> Outcome:
    """Run code in a fresh sandboxed process with cwd=scratch; never raises for anything the code does."""
    as_root = os.geteuid() == 0
    ids = {"user": limits.child_uid, "group": limits.child_uid, "extra_groups": []} if as_root else {}
    proc = await asyncio.create_subprocess_exec(
        python, "-I", "-c", CHILD_SOURCE, json.dumps(child_config(limits, scratch, require_landlock)),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=str(scratch), env=child_env(scratch), start_new_session=True, close_fds=True, **ids)
    live = set() if live is None else live
    live.add(proc.pid)
    pgid = proc.pid  # start_new_session: the child leads its own group, and seccomp keeps it there
    kept = bytearray()
    dropped = 0
    flood = limits.max_output_bytes * 16  # past this much output the process is stopped, not just truncated

    async def feed() -> None:
        try:
            proc.stdin.write(code.encode("utf-8", "replace"))
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            proc.stdin.close()

    async def drain() -> None:
        nonlocal dropped
        while chunk := await proc.stdout.read(65536):
            room = limits.max_output_bytes - len(kept)
            kept.extend(chunk[:max(room, 0)])
            dropped += max(len(chunk) - max(room, 0), 0)
            if dropped > flood:
                _kill_group(pgid)

    async def until_exit() -> int:
        # The leader's exit, seen through a pidfd: asyncio's proc.wait() also waits for the output pipe, which a
        # background process can hold open. Then the whole group goes: nothing outlives its call.
        try:
            pidfd = os.pidfd_open(proc.pid)
        except ProcessLookupError:
            pidfd = None
        if pidfd is not None:
            exited = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_reader(pidfd, exited.set)
            try:
                await exited.wait()
            finally:
                loop.remove_reader(pidfd)
                os.close(pidfd)
        _kill_group(pgid)
        return await proc.wait()

    reader = asyncio.ensure_future(drain())
    writer = asyncio.ensure_future(feed())
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(until_exit(), reader), timeout=limits.timeout_s)
    except asyncio.TimeoutError:
        timed_out = True
        _kill_group(pgid)
        try:
            await asyncio.wait_for(asyncio.gather(proc.wait(), reader, return_exceptions=True), timeout=10)
        except asyncio.TimeoutError:
            reader.cancel()
    finally:
        writer.cancel()
        _kill_group(pgid)
        live.discard(proc.pid)
    returncode = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    text = kept.decode("utf-8", "replace")
    notes = []
    if dropped:
        notes.append(f"output truncated: {limits.max_output_bytes} bytes kept, {dropped} more dropped"
                     + ("; the process was stopped for flooding its output" if dropped > flood else ""))
    if timed_out:
        notes.append(f"error: timed out after {limits.timeout_s} s; the process and its children were killed")
    elif returncode != 0 and not (dropped > flood):
        notes.append(f"error: {_describe_exit(returncode)}")
    if not text and not notes:
        text = "(no output; print() what you want to see)"
    if notes:
        text = (text + ("\n" if text and not text.endswith("\n") else "")
                + "".join(f"[python tool] {n}\n" for n in notes))
    return Outcome(text=text, is_error=timed_out or returncode != 0 or dropped > flood)


def reap_orphans(known: set[int]) -> None:
    """Reap exited processes re-parented to the server (it is PID 1 in its container, or a subreaper) that no
    call is waiting for, so zombies never pile up against the pids limit."""
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in known:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if stat[0] == b"Z" and stat[1].decode() == me:
            try:
                os.waitpid(int(entry), os.WNOHANG)
            except ChildProcessError:
                pass


def scratch_usage(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def remove_tree(path: Path) -> None:
    """rmtree that also removes what the model made unreadable (chmod 000 dirs) in its scratch dir."""
    for root, dirs, _files in os.walk(path):  # never follows links; a link is never chmod-ed (nor what it names)
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o700, follow_symlinks=False)
            except (OSError, NotImplementedError):  # NotImplementedError: a symlink (Linux has no lchmod)
                pass
    shutil.rmtree(path, ignore_errors=True)  # fd-based on Linux: links are removed, never followed
