"""The builtin_tools stack section and the engines' --tool-server in the plan (issue 22)."""
from __future__ import annotations

import pytest

from infra import builtin_tools as BT
from infra import constants as C
from infra.toolserver import isolation as I
from infra.toolserver.sandbox import Limits
from infra.flagcheck.snapshot import load_snapshot
from infra.plan import build_plan
from infra.spec import SpecError, load_spec
from infra.stackfile import load_stack

BASE = {"backend": "vllm", "model": "openai/gpt-oss-120b", "gpu": "h200-141gb"}
K8S = {"target": "kubernetes", "image": {"registry": "ghcr.io/acme"}}
RUNPOD = {"target": "runpod", "image": {"registry": "ghcr.io/acme"}}


def spec(python: dict | None = None, stack: str = "tools", **extra):
    config = {**BASE, **extra}
    if python is not None:
        config["builtin_tools"] = {"python": python}
    return load_spec(config, stack)


def refusal(**kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec(**kwargs)
    return info.value


def tool_server(argv: list[str]) -> str | None:
    return argv[argv.index("--tool-server") + 1] if "--tool-server" in argv else None


def test_the_tools_stack_turns_python_on_with_its_limits():
    s = load_stack("h200-vllm-tools")
    py = BT.python_tool(s)
    assert py.enabled and py.timeout_s == 30 and py.max_concurrency == 8 and py.address is None
    assert BT.runs_tool_server(s) and BT.server_env(s)["TOOLSERVER_TIMEOUT_S"] == "30"
    assert load_spec(s.to_config(), s.stack) == s  # the section round-trips like the others


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_the_plan_adds_the_engines_tool_server_flag(backend):
    """Both engines' parsers (the committed snapshots of vLLM 0.33.0 and SGLang 0.5.23) take --tool-server VALUE."""
    option = load_snapshot(backend)["options"]["--tool-server"]
    assert option["takes_value"] and option["dest"] == "tool_server"
    docker = build_plan(spec({"enabled": True}, backend=backend))
    assert tool_server(docker.argv) == f"{C.TOOLSERVER_DOCKER_ALIAS}:{I.PORT}"
    k8s = build_plan(spec({"enabled": True}, stack="My_Stack.1", backend=backend, **K8S))
    assert tool_server(k8s.argv) == f"gptoss-my-stack-1-python-tool:{I.PORT}" == \
        f"{BT.k8s_service_name('My_Stack.1')}:{I.PORT}"
    if backend == "sglang":  # the launcher's args file says the same
        assert f"--tool-server\n{C.TOOLSERVER_DOCKER_ALIAS}:{I.PORT}\n" in docker.files["sglang.args"]
    own = build_plan(spec({"enabled": True, "address": "10.0.0.5:9000"}, backend=backend, **RUNPOD))
    assert tool_server(own.argv) == "10.0.0.5:9000" and own.provenance["argv:--tool-server"] == "builtin_tools.python"


def test_without_the_tool_there_is_no_flag_and_nothing_in_the_spec_env():
    for python in (None, {"enabled": False, "timeout_s": 10}):
        plan = build_plan(spec(python))
        assert tool_server(plan.argv) is None
    assert "builtin_tools" not in build_plan(spec(None)).env[C.SPEC_ENV]


@pytest.mark.parametrize("args", [["--tool-server", "demo"], ["--tool-server=10.0.0.5:8765"]])
def test_extra_args_cannot_set_a_tool_server(args):
    """The demo tool server runs the model's code in the engine process (or with a Docker socket): refused, like
    any tool server given past the builtin_tools section."""
    with pytest.raises(SpecError) as info:
        spec({"enabled": True}, extra_args=args)
    assert info.value.field == "extra_args[0]" and "builtin_tools" in info.value.fix
    assert "10.0.0.5" not in str(info.value)  # an option's value is never shown


@pytest.mark.parametrize("kwargs, field, words", [
    ({"python": {"enabled": True}, **RUNPOD}, "builtin_tools.python.enabled", "one container per pod"),
    ({"python": {"enabled": True, "address": "http://x:1/sse"}}, "builtin_tools.python.address", "is not host:port"),
    ({"python": {"enabled": True, "address": "tools:0"}}, "builtin_tools.python.address", "is not host:port"),
    ({"python": {"enabled": True, "address": "-oProxy:22"}}, "builtin_tools.python.address", "is not host:port"),
    ({"python": {"enabled": True, "address": "10.0.0.5:9000", "memory_mb": 128}}, "builtin_tools.python.memory_mb",
     "limits apply to the tool server the stack runs"),
    ({"python": {"enabled": True, "timeout_s": 0}}, "builtin_tools.python.timeout_s", "greater than or equal to 1"),
    ({"python": {"enabled": True, "max_output_kb": 4096}}, "builtin_tools.python.max_output_kb", "less than or equal to 1024"),
    ({"python": {"enabled": True, "runtime": "runsc; rm -rf /"}}, "builtin_tools.python.runtime", "should match pattern"),
])
def test_bad_settings_are_refused_naming_field_value_and_fix(kwargs, field, words):
    err = refusal(**kwargs)
    assert err.field == field and words in str(err) and "Fix:" in str(err)


def test_the_browser_is_refused_until_it_is_built():
    with pytest.raises(SpecError) as info:
        load_spec({**BASE, "builtin_tools": {"browser": {"enabled": True}}}, "t")
    assert info.value.field == "builtin_tools.browser.enabled" and "README, Built-in tools" in info.value.fix


def test_an_unknown_key_gets_a_guess():
    with pytest.raises(SpecError) as info:
        load_spec({**BASE, "builtin_tools": {"pyhton": {"enabled": True}}}, "t")
    assert "did you mean 'python'" in str(info.value)


def test_the_stack_defaults_are_the_tool_servers_own_and_within_its_bounds():
    """The spec's limits become TOOLSERVER_* variables the tool server reads with these defaults and bounds."""
    from infra.spec import PythonTool

    py = PythonTool()
    env = BT.server_env(spec({"enabled": True}))
    assert Limits.from_env(env) == Limits()  # defaults equal: the variables change nothing
    fields = {"timeout_s": "timeout_s", "memory_mb": "memory_mb", "max_concurrency": "max_concurrent"}
    for ours, theirs in fields.items():
        lo, hi = Limits.BOUNDS[theirs]
        meta = {type(m).__name__: m for m in PythonTool.model_fields[ours].metadata}
        assert lo <= meta["Ge"].ge and meta["Le"].le <= hi, ours
        assert getattr(py, ours) == getattr(Limits(), theirs)
    lo, hi = Limits.BOUNDS["max_output_bytes"]
    assert lo <= 1 * 1024 and 1024 * 1024 <= hi and py.max_output_kb * 1024 == Limits().max_output_bytes
