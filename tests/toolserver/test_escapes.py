"""The python tool server for real: its process, a real MCP SSE client, the model's code in the real sandbox.

Each escape attempt must come back to the model as a tool result it can read (is_error set), never a server
crash; the `server` fixture checks after every test that the server still answers and that no sandboxed
process outlived its call.
"""
from __future__ import annotations

import hashlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import pytest
from tests.toolserver.harness import CANARY, CANARY_NAME, ROOT, acall, call, describe, sandbox_processes, session_call

from infra.toolserver import isolation
from infra.toolserver.child import seccomp_program


def test_engines_see_the_python_namespace_and_one_prompt_tool(toolserver):
    init, tools = describe(toolserver.url)
    assert init.server_info.name == "python"  # vLLM/SGLang register the namespace under this name
    text = init.instructions
    for words in ("fresh Python 3.", "do NOT persist", "persist for the rest of this conversation",
                  "no internet or network access", "time out after 6 seconds", "at most 64 KiB"):
        assert words in text
    by_name = {t.name: t for t in tools.tools}
    assert set(by_name) == {"python", "cleanup_session"}
    assert by_name["python"].input_schema["properties"]["code"]["type"] == "string"
    assert by_name["python"].input_schema["required"] == ["code"]
    # vLLM's post_process_tools_description drops tools whose meta says include_in_prompt False: both, so the
    # namespace renders like harmony's built-in python tool (tests/toolserver/test_engine_client.py)
    assert (by_name["cleanup_session"].meta or {}).get("include_in_prompt") is False
    assert (by_name["python"].meta or {}).get("include_in_prompt") is False


def test_a_cell_prints_its_last_expression_and_reports_exceptions(server):
    assert call(server.url, "x = 6\nx * 7") == ("42\n", False)
    text, is_error = call(server.url, "def f():\n    return 1 / 0\nf()")
    assert is_error and "ZeroDivisionError: division by zero" in text and 'File "<python>", line 2, in f' in text
    assert "child.py" not in text and "<string>" not in text  # only the model's own frames
    text, is_error = call(server.url, "def f(:")
    assert is_error and "SyntaxError" in text and "[python tool] error: the process exited with status 1" in text
    assert call(server.url, "import os") == ("(no output; print() what you want to see)", False)


def test_files_persist_per_conversation_interpreter_state_does_not(server):
    assert call(server.url, "open('notes.txt', 'w').write('kept'); counter = 1", "conv-a")[1] is False
    assert call(server.url, "print(open('notes.txt').read())", "conv-a") == ("kept\n", False)
    text, is_error = call(server.url, "print(counter)", "conv-a")
    assert is_error and "NameError: name 'counter' is not defined" in text
    text, is_error = call(server.url, "print(open('notes.txt').read())", "conv-b")  # another conversation
    assert is_error and "FileNotFoundError" in text

    async def cleanup():
        return await session_call(server.url, lambda s: s.call_tool("cleanup_session", {}), {"x-session-id": "conv-a"})

    anyio.run(cleanup)
    text, is_error = call(server.url, "print(open('notes.txt').read())", "conv-a")
    assert is_error and "FileNotFoundError" in text


def test_no_socket_to_a_listening_port_on_127_0_0_1(server):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        code = (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)\n")
        text, is_error = call(server.url, code)
        assert is_error and "PermissionError: [Errno 13] Permission denied" in text
        assert select.select([listener], [], [], 0.5)[0] == []  # nothing ever knocked
    finally:
        listener.close()


def test_no_socket_of_any_family_and_no_packet_out(server):
    # TEST-NET-1 (RFC 5737): never a real host. socket() itself fails, so nothing is sent anywhere.
    code = """
import socket, errno
out = []
for fam, typ in [(socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_INET6, socket.SOCK_STREAM),
                 (socket.AF_UNIX, socket.SOCK_STREAM), (socket.AF_NETLINK, socket.SOCK_RAW), (socket.AF_PACKET, socket.SOCK_RAW)]:
    try:
        socket.socket(fam, typ)
        out.append('open')
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(out)
a, b = socket.socketpair()   # an anonymous AF_UNIX pair reaches nothing: allowed
a.send(b'ok'); print(b.recv(2))
socket.create_connection(('192.0.2.1', 80), timeout=3)
"""
    text, is_error = call(server.url, code)
    assert "['EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES']" in text and "b'ok'" in text
    assert is_error and "PermissionError: [Errno 13]" in text


def test_no_io_uring_ptrace_or_namespace_tricks(server):
    code = """
import ctypes, os, errno
libc = ctypes.CDLL(None, use_errno=True)
res = {}
for name, nr, args in [('io_uring_setup', 425, (8, None)), ('ptrace_attach', 101, (16, os.getppid(), 0, 0)),
                       ('unshare_net', 272, (0x40000000,)), ('setsid', 112, ()), ('bpf', 321, (0, None, 0))]:
    r = libc.syscall(nr, *args)
    res[name] = 'ok' if r >= 0 else errno.errorcode[ctypes.get_errno()]
print(res)
"""
    if os.uname().machine != "x86_64":
        pytest.skip("the syscall numbers in this test are x86_64's")
    text, is_error = call(server.url, code)
    assert not is_error
    assert "'io_uring_setup': 'EPERM'" in text and "'ptrace_attach': 'EPERM'" in text
    assert "'unshare_net': 'EPERM'" in text and "'setsid': 'EPERM'" in text and "'bpf': 'EPERM'" in text


def test_the_servers_environment_and_memory_stay_out_of_reach(server):
    code = f"""
import os, glob
print('env', sorted(os.environ))
seen = []
for path in glob.glob('/proc/[0-9]*/environ') + ['/proc/{server.pid}/environ', '/proc/{server.pid}/mem']:
    try:
        with open(path, 'rb') as fh:
            data = fh.read(1 << 20)
        seen.append((path, b'{CANARY}' in data))
    except OSError as e:
        seen.append((path, type(e).__name__))
print('server', [s for s in seen if s[0].startswith('/proc/{server.pid}/')])
print('canary found', any(s[1] is True for s in seen))
"""
    text, is_error = call(server.url, code)
    assert not is_error, text
    assert CANARY not in text and CANARY_NAME not in text
    assert "canary found False" in text
    assert f"('/proc/{server.pid}/environ', 'PermissionError')" in text
    assert f"('/proc/{server.pid}/mem', 'PermissionError')" in text
    assert "env ['HOME', 'LANG', 'MKL_NUM_THREADS', 'MPLBACKEND', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', " \
           "'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONUNBUFFERED', 'TMPDIR']" in text


def test_no_reading_outside_the_system_paths_or_into_another_conversation(server, tmp_path):
    secret = Path("/tmp") / f"gptoss-toolserver-secret-{os.getpid()}"
    secret.write_text(CANARY)
    secret.chmod(0o644)  # world-readable: only the sandbox stands in the way
    try:
        assert call(server.url, "open('mine.txt', 'w').write('conversation b data')", "conv-other")[1] is False
        other = server.scratch / hashlib.sha256(b"h:conv-other").hexdigest()[:32] / "mine.txt"
        assert other.read_text() == "conversation b data"
        code = f"""
for path in [{str(secret)!r}, {str(other)!r}, {str(ROOT / 'pyproject.toml')!r}, '/root/.bashrc']:
    try:
        open(path).read(); print(path, 'READ')
    except OSError as e:
        print(path, type(e).__name__)
import os
print('list', os.listdir('.'))
"""
        text, is_error = call(server.url, code, "conv-reader")
        assert CANARY not in text and "conversation b data" not in text and "READ" not in text
        assert f"{secret} PermissionError" in text and f"{other} PermissionError" in text
    finally:
        secret.unlink()


def test_no_writing_outside_its_scratch_dir(server):
    targets = ["/tmp/gptoss-escape", "/dev/shm/gptoss-escape", "/var/tmp/gptoss-escape",
               str(server.scratch / "gptoss-escape"), str(ROOT / "gptoss-escape")]
    code = f"""
import os
for path in {targets!r}:
    try:
        with open(path, 'w') as fh:
            fh.write('x')
        print(path, 'WROTE')
    except OSError as e:
        print(path, type(e).__name__)
try:
    os.symlink('/tmp', 'link'); open('link/gptoss-escape', 'w'); print('symlink WROTE')
except OSError as e:
    print('symlink', type(e).__name__)
"""
    text, is_error = call(server.url, code)
    assert "WROTE" not in text, text
    assert text.count("PermissionError") == len(targets) + 1
    assert not any(os.path.exists(t) for t in targets)


def test_a_fork_bomb_is_contained(server):
    code = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
    started = time.monotonic()
    text, is_error = call(server.url, code)
    assert is_error and "timed out after 6 s; the process and its children were killed" in text
    assert time.monotonic() - started < 30
    # the server fixture then checks that not one forked process is left


def test_a_memory_hog_is_stopped_by_its_limit(server):
    text, is_error = call(server.url, "x = []\nwhile True:\n    x.append(bytearray(16 << 20))")
    assert is_error and "MemoryError" in text
    text, is_error = call(server.url, "b = bytearray(8 << 30)")
    assert is_error and "MemoryError" in text


def test_an_endless_loop_times_out(server):
    started = time.monotonic()
    text, is_error = call(server.url, "print('started', flush=True)\nwhile True:\n    pass")
    assert is_error and text.startswith("started\n")
    assert text.endswith("[python tool] error: timed out after 6 s; the process and its children were killed\n")
    assert 5.5 < time.monotonic() - started < 20


def test_background_processes_die_with_their_call(server):
    text, is_error = call(server.url, "import subprocess\np = subprocess.Popen(['sleep', '300'])\nprint(p.pid)")
    assert not is_error
    # the server fixture asserts no sandbox process is left: the sleep was killed with the process group


def test_ten_megabytes_of_output_are_truncated(server):
    text, is_error = call(server.url, "import sys\nsys.stdout.write('y' * 10_000_000)")
    assert is_error and len(text.encode()) < 65536 + 1024
    assert text.startswith("y" * 1000) and "[python tool] output truncated: 65536 bytes kept" in text
    text, is_error = call(server.url, "while True:\n    print('z' * 1000)")
    assert is_error and "the process was stopped for flooding its output" in text


def test_a_call_while_twenty_run_is_refused_then_all_finish(server):
    wait = "import os, time\nwhile not os.path.exists('go'):\n    time.sleep(0.05)\nprint('done')"
    results: dict[int, tuple[str, bool]] = {}

    async def one(i: int) -> None:
        r = await acall(server.url, wait, f"busy-{i}")
        results[i] = (r.content[0].text, r.is_error)

    def release() -> None:
        for i in range(20):
            go = server.scratch / hashlib.sha256(f"h:busy-{i}".encode()).hexdigest()[:32] / "go"
            go.write_text("")

    async def scenario():
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, i)
            end = time.monotonic() + 20
            while len(sandbox_processes(server.scratch, server.pid)) < 20:
                assert time.monotonic() < end, "20 calls did not all start"
                await anyio.sleep(0.05)
            r = await acall(server.url, "print('twenty-first')", "busy-21")
            results[21] = (r.content[0].text, r.is_error)
            await anyio.to_thread.run_sync(release)

    anyio.run(scenario)
    text, is_error = results[21]
    assert is_error and "busy: 20 calls are running and none finished within 1 s; try again shortly" in text
    assert [results[i] for i in range(20)] == [("done\n", False)] * 20


def test_the_seccomp_filter_refuses_unknown_arches_and_checks_the_arch_first():
    with pytest.raises(KeyError):
        seccomp_program("riscv64", 1)
    prog = seccomp_program("x86_64", 1234)
    assert prog[0] == (0x20, 0, 0, 4) and prog[1][3] == 0xC000003E and prog[2] == (0x06, 0, 0, 0x80000000)
    assert len(prog) < 255  # jumps are 8-bit


@pytest.mark.parametrize("env, words", [
    ({"TOOLSERVER_TIMEOUT_S": "soon"}, "TOOLSERVER_TIMEOUT_S='soon' is not a whole number"),
    ({"TOOLSERVER_MAX_CONCURRENT": "0"}, "TOOLSERVER_MAX_CONCURRENT=0 is outside [1, 256]"),
    ({"HF_TOKEN": "hf_canary_toolserver"}, "holds HF_TOKEN; it must not hold the stack's secrets"),
    ({"AWS_SECRET_ACCESS_KEY": "x"}, "holds AWS_SECRET_ACCESS_KEY"),
])
def test_bad_configuration_is_one_line_and_exit_2(env, words, tmp_path):
    r = subprocess.run([sys.executable, "-m", "infra.toolserver", "--scratch", str(tmp_path)], cwd=ROOT,
                       env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1
    assert "hf_canary_toolserver" not in r.stderr


def test_isolation_options_hold_the_rules():
    opts = isolation.docker_run_options()
    joined = " ".join(opts)
    for words in ("--user 10002:10002", "--read-only", "--cap-drop ALL", "--security-opt no-new-privileges:true",
                  "--pids-limit 512", "--memory 2048m", "--memory-swap 2048m", "--cpus 2.0",
                  "--tmpfs /scratch:rw,noexec,nosuid,nodev,size=512m"):
        assert words in joined
    assert "-p" not in opts and "--publish" not in opts and "--privileged" not in opts and "--network" not in opts
    sc = isolation.kubernetes_container_fields()["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert isolation.kubernetes_pod_fields()["automountServiceAccountToken"] is False
    dockerfile = (ROOT / "images" / "toolserver" / "Dockerfile").read_text()
    assert f"USER {isolation.UID}:{isolation.UID}\n" in dockerfile and f"EXPOSE {isolation.PORT}\n" in dockerfile
    assert f'CMD {str(isolation.CONTAINER["command"]).replace(chr(39), chr(34))}' in dockerfile
    assert f"TOOLSERVER_SCRATCH_DIR={isolation.SCRATCH_DIR}" in dockerfile


def test_the_seccomp_filter_alone_on_this_kernel():
    """The BPF program by itself (no Landlock, no rlimits), installed in a real process: the network and escape
    syscalls fail, ordinary work (threads, subprocesses, pipes, an AF_UNIX pair) goes on."""
    code = f"""
import ctypes, errno, os, runpy, socket, subprocess, threading
ns = runpy.run_path({str(ROOT / 'infra' / 'toolserver' / 'child.py')!r}, run_name='seccomp_test')
server = os.getppid()
ns['install_seccomp'](ctypes.CDLL(None, use_errno=True), server, os.getpgid(server))
def err(fn):
    try:
        fn(); return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
print(err(lambda: socket.socket(socket.AF_INET)), err(lambda: socket.socket(socket.AF_UNIX)),
      err(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)), err(lambda: socket.socketpair()),
      err(lambda: os.kill(server, 0)), err(lambda: os.kill(-os.getpgid(server), 0)), err(lambda: os.kill(-1, 0)),
      err(os.setsid), err(lambda: os.setpgid(0, 0)), err(lambda: os.kill(os.getpid(), 0)))
t = threading.Thread(target=lambda: None); t.start(); t.join()
print(subprocess.run(['echo', 'child ran'], capture_output=True, text=True).stdout.strip())
"""
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["EACCES EACCES EACCES ok EPERM EPERM EPERM EPERM EPERM ok", "child ran"]


def test_cleanup_never_follows_the_models_links(server, tmp_path):
    outside = Path(tempfile.mkdtemp(prefix="gptoss-toolserver-outside-", dir="/tmp"))
    (outside / "keep.txt").write_text("keep")
    outside.chmod(0o755)
    try:
        code = f"import os\nos.makedirs('locked/inner')\nopen('locked/inner/f', 'w').write('x')\nos.chmod('locked', 0)\n" \
               f"os.symlink({str(outside)!r}, 'link')\nos.symlink({str(outside / 'keep.txt')!r}, 'filelink')"
        assert call(server.url, code, "conv-links")[1] is False
        mine = server.scratch / hashlib.sha256(b"h:conv-links").hexdigest()[:32]
        assert (mine / "link").is_symlink()

        async def cleanup():
                return await session_call(server.url, lambda s: s.call_tool("cleanup_session", {}),
                                       {"x-session-id": "conv-links"})

        assert anyio.run(cleanup).content[0].text == "ok"
        assert not mine.exists()
        assert (outside / "keep.txt").read_text() == "keep" and (outside.stat().st_mode & 0o777) == 0o755
    finally:
        shutil.rmtree(outside, ignore_errors=True)
