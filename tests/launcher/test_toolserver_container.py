"""The tool server's image for real: built from images/toolserver/Dockerfile on the tests' dockerd (the stand-in
base: Docker Hub is unreachable here), run with infra/toolserver/isolation.py's options, called over SSE from
the host (--network host: the test dockerd has no bridge, and a shared network namespace is the hard case: the
sandbox must refuse 127.0.0.1 by itself)."""
from __future__ import annotations

import importlib.util
import json
import socket
import sys
import time

import pytest
from tests.toolserver.harness import CANARY, CANARY_NAME, ROOT, call, free_port


_spec = importlib.util.spec_from_file_location("toolserver_image_build", ROOT / "images" / "toolserver" / "build.py")
toolserver_build = importlib.util.module_from_spec(_spec)  # by path: images/build.py is `build` already
_spec.loader.exec_module(toolserver_build)

from infra.toolserver import isolation  # noqa: E402

pytestmark = pytest.mark.slow  # starts dockerd and builds an image
TAG = "gptoss-toolserver:test"


@pytest.fixture(scope="module")
def image(docker, standin_base, tmp_path_factory):
    # the stand-in base is this interpreter: the wheels are resolved for its Python
    ctx = toolserver_build.assemble_context(tmp_path_factory.mktemp("toolserver-ctx") / "ctx",
                                           "%d.%d" % sys.version_info[:2])
    r = docker("build", "--no-cache", *toolserver_build.engine_build.docker_build_cmd(
        ctx, TAG, {**toolserver_build.build_args(base_image=standin_base), "ALLOW_UNPINNED_BASE": "1"}, docker.bin)[2:],
        check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "UNPINNED" in r.stdout and "python tool server ready" in r.stdout
    refused = docker("build", *toolserver_build.engine_build.docker_build_cmd(
        ctx, "gptoss-toolserver:refused", toolserver_build.build_args(base_image=standin_base), docker.bin)[2:],
        check=False)
    assert refused.returncode != 0 and "is not pinned by digest" in refused.stdout + refused.stderr
    return TAG


@pytest.fixture(scope="module")
def container(docker, image):
    port = free_port()
    name = f"gptoss-toolserver-test-{port}"
    docker("run", "-d", "--name", name, "--network", "host", *isolation.docker_run_options(),
           "-e", f"{CANARY_NAME}={CANARY}", "-e", "TOOLSERVER_TIMEOUT_S=8", image, "--host", "127.0.0.1", "--port", str(port))
    try:
        end = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                state = json.loads(docker("inspect", name).stdout)[0]["State"]
                if not state["Running"] or time.monotonic() > end:
                    pytest.fail(f"the tool server container did not listen: {state}\n{docker('logs', name, check=False).stderr[-3000:]}")
                time.sleep(0.3)
        yield name, f"http://127.0.0.1:{port}/sse"
    finally:
        docker("rm", "-f", name, check=False)


def test_the_container_runs_with_the_isolation_options(docker, container):
    name, _ = container
    info = json.loads(docker("inspect", name).stdout)[0]
    host, config = info["HostConfig"], info["Config"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"] and host["Privileged"] is False
    assert host["SecurityOpt"] == ["no-new-privileges:true"] and host["PidsLimit"] == isolation.DEFAULT_LIMITS.pids
    assert host["Memory"] == isolation.DEFAULT_LIMITS.memory_mb << 20 == host["MemorySwap"]
    assert host["Tmpfs"] == {isolation.SCRATCH_DIR: isolation.tmpfs_options()}
    assert config["User"] == f"{isolation.UID}:{isolation.UID}" and not host["PortBindings"]
    logs = docker("logs", name).stderr
    assert "python tool sandbox ready" in logs and "sockets blocked (seccomp)" in logs
    print(next(line for line in logs.splitlines() if "sandbox ready" in line))  # Landlock's ABI, or none


def test_calls_from_the_host_run_sandboxed_inside(container):
    _, url = container
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    code = f"""
import os, socket
print('uid', os.getuid(), 'cwd', os.getcwd().startswith('{isolation.SCRATCH_DIR}/'))
print('canary', {CANARY!r} in str(dict(os.environ)))
for path in ['/proc/1/environ', '/opt/toolserver/escape', '/tmp/escape', '/scratch/escape']:
    try:
        open(path, 'rb' if 'environ' in path else 'w').close(); print(path, 'OPENED')
    except OSError as e:
        print(path, type(e).__name__)
try:
    os.kill(1, 15); print('kill 1 SENT')
except OSError as e:
    print('kill 1', type(e).__name__)
socket.create_connection(('127.0.0.1', {port}), timeout=3)
"""
    try:
        text, is_error = call(url, code)
    finally:
        listener.close()
    assert f"uid {isolation.UID} cwd True" in text and "canary False" in text
    assert "OPENED" not in text and "SENT" not in text and "kill 1 PermissionError" in text
    assert is_error and "PermissionError: [Errno 13] Permission denied" in text
    assert call(url, "print(sum(range(10)))") == ("45\n", False)


def test_a_fork_bomb_in_the_container_leaves_the_server_answering(container):
    _, url = container
    text, is_error = call(url, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
    assert is_error and "timed out after 8 s" in text
    assert call(url, "print('alive')") == ("alive\n", False)
