"""Suite-wide: a heartbeat so that a CI log is never silent for more than ~30 s.

pytest prints a dot when a test ends; a test (or a fixture it sets up) that runs longer says nothing
meanwhile. A daemon thread writes one line to the real stderr for a test that has run over
HEARTBEAT_S, and again every HEARTBEAT_S, naming it and its time so far.
"""
from __future__ import annotations

import sys
import threading
import time

HEARTBEAT_S = 25.0
_current: dict[str, object] = {"nodeid": None, "since": 0.0}


def _beat() -> None:
    last = time.monotonic()
    while True:
        time.sleep(1.0)
        nodeid, since = _current["nodeid"], float(_current["since"])  # type: ignore[arg-type]
        now = time.monotonic()
        if nodeid is None or now - since < HEARTBEAT_S or now - last < HEARTBEAT_S:
            continue
        last = now
        sys.__stderr__.write(f"\n[still running] {nodeid} ({now - since:.0f}s)\n")
        sys.__stderr__.flush()


def pytest_sessionstart(session) -> None:
    threading.Thread(target=_beat, name="ci-heartbeat", daemon=True).start()


def pytest_runtest_logstart(nodeid, location) -> None:
    _current.update(nodeid=nodeid, since=time.monotonic())


def pytest_runtest_logfinish(nodeid, location) -> None:
    _current.update(nodeid=None)
