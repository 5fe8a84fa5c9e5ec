"""The build wrapper: cache hit, one build at a time, stale build folders removed.
(The real build itself runs once per machine through the session fixtures.)"""

import os
import subprocess
import sys
import threading
import time

from tools.llama import build


def test_cached_binary_is_returned_without_building(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTOSS_STACKS_CACHE", str(tmp_path))
    out = build.server_binary_path()
    out.parent.mkdir(parents=True)
    out.write_bytes(b"bin")
    build.chat_template_path().write_text("tmpl")
    monkeypatch.setattr(build, "_build_locked", lambda *a: (_ for _ in ()).throw(AssertionError("built")))
    assert build.build_llama_server() == out


def test_concurrent_callers_build_once(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTOSS_STACKS_CACHE", str(tmp_path))
    calls = []

    def fake_build(out, jobs):
        calls.append(jobs)
        time.sleep(0.3)
        build.chat_template_path().write_text("tmpl")
        out.write_bytes(b"bin")
        return out

    monkeypatch.setattr(build, "_build_locked", fake_build)
    results = []
    threads = [threading.Thread(target=lambda: results.append(build.build_llama_server())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and len(results) == 3 and len(set(results)) == 1


def test_stale_build_dirs_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f"llama-build-{dead_pid}-abc"
    live = tmp_path / f"llama-build-{os.getpid()}-def"
    other = tmp_path / "llama-build-xyz"  # not ours to judge: left alone
    for d in (stale, live, other):
        d.mkdir()
    build._remove_stale_build_dirs(tmp_path)
    assert not stale.exists() and live.exists() and other.exists()
