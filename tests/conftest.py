"""Suite-wide: a heartbeat so that a CI log is never silent for more than ~30 s.

pytest prints a dot when a test ends; a test (or a fixture it sets up) that runs longer says nothing
meanwhile. A daemon thread writes one line for a test that has run over HEARTBEAT_S, and again every
HEARTBEAT_S, naming it and its time so far. It writes to a copy of file descriptor 2 taken at session
start, when pytest's capture is suspended: during a test fd 2 itself points into pytest's capture
file, so writing to sys.__stderr__ there showed nothing until the test ended (a 49 s silence in CI).
"""
from __future__ import annotations

import os
import threading
import time

HEARTBEAT_S = float(os.environ.get("GPTOSS_HEARTBEAT_S") or 25.0)  # the variable is for the heartbeat's own test
_current: dict[str, object] = {"nodeid": None, "since": 0.0}


def _beat(fd: int) -> None:
    last = time.monotonic()
    while True:
        time.sleep(min(1.0, HEARTBEAT_S / 4))
        nodeid, since = _current["nodeid"], float(_current["since"])  # type: ignore[arg-type]
        now = time.monotonic()
        if nodeid is None or now - since < HEARTBEAT_S or now - last < HEARTBEAT_S:
            continue
        last = now
        try:
            os.write(fd, f"\n[still running] {nodeid} ({now - since:.0f}s)\n".encode("utf-8", "replace"))
        except OSError:  # the terminal went away: nothing to tell
            return


def pytest_sessionstart(session) -> None:
    fd = os.dup(2)  # capture is suspended between collection phases: this is the real stderr
    threading.Thread(target=_beat, args=(fd,), name="ci-heartbeat", daemon=True).start()


def pytest_runtest_logstart(nodeid, location) -> None:
    _current.update(nodeid=nodeid, since=time.monotonic())


def pytest_runtest_logfinish(nodeid, location) -> None:
    _current.update(nodeid=None)
