"""The suite's heartbeat (tests/conftest.py) reaches the log while a long test runs, capture on."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_a_long_test_prints_still_running_lines_through_pytests_capture(tmp_path):
    shutil.copy(Path(__file__).parents[1] / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_sleeps():\n    time.sleep(3.5)\n")
    env = {**os.environ, "GPTOSS_HEARTBEAT_S": "1"}
    # default capture (fd): the output of a passing test is never shown, so a line here was written live
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    beats = [ln for ln in run.stderr.splitlines() if ln.startswith("[still running] test_slow.py::test_sleeps")]
    assert len(beats) >= 2, run.stdout + run.stderr
