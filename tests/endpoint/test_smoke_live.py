"""The whole smoke test against a real vLLM (CPU) started from the local stack's rendered plan."""

import json

import pytest

from infra.endpoint.checks import CHECK_NAMES, SmokeConfig, run_checks
from infra.endpoint.target import resolve_target

from .conftest import TEST_API_KEY, stack_outputs
from .invoke_helpers import run_task

pytestmark = pytest.mark.slow


def statuses(report):
    return {c.name: c.status for c in report.checks}


def test_clean_run_without_key(open_server):
    report = run_checks(resolve_target(url=open_server.url, model=open_server.alias),
                        SmokeConfig(only=CHECK_NAMES, max_model_len=32768))
    st = statuses(report)
    assert list(st) == list(CHECK_NAMES)
    assert st.pop("auth") == "skip"          # nothing to enforce without a key
    assert set(st.values()) == {"pass"}, report.to_json()
    by = report.by_name()
    assert by["reasoning"].data["field"] == "reasoning"  # vLLM >= 0.16's name
    assert by["tool_loop"].data["rounds"] == 1
    assert by["tool_call"].data["calls"] == {"auto": ["get_weather"]}
    assert by["models"].data["max_model_len"] == 32768  # the local stack's
    # the Responses API, structured output and answers (issue 25), with vLLM 0.32's expectations
    assert by["responses"].data["items"] == ["reasoning", "message"]
    assert "usage 7" in by["responses"].detail and by["responses"].data["server"].startswith("vllm 0.32")
    assert "reasoning deltas" in by["responses_stream"].detail
    assert {api: v["status"] for api, v in by["structured_output"].data["apis"].items()} == {
        "chat": "pass", "responses": "pass"}  # vLLM 0.32 honours text.format (SGLang 0.5.23 refuses it)
    assert set(by["answer"].data["apis"]) == {"chat", "responses"}


def test_a_responses_reply_cut_by_max_tokens_is_named(open_server):
    """vLLM 0.32 says status 'incomplete' (reason max_output_tokens) in the reply and in the stream's final
    response.completed; 0.33 ends that stream with response.incomplete instead."""
    report = run_checks(resolve_target(url=open_server.url, model=open_server.alias),
                        SmokeConfig(only=("responses", "responses_stream"), max_tokens=20))
    by = report.by_name()
    assert "used all 20 max_output_tokens and was cut short (status 'incomplete')" in by["responses"].detail
    assert "status is 'incomplete'" in by["responses_stream"].detail and "max_output_tokens" in by["responses_stream"].detail


def test_without_model_the_first_listed_is_used(open_server):
    report = run_checks(resolve_target(url=open_server.url), SmokeConfig(only=("models", "chat")))
    assert statuses(report) == {"models": "pass", "chat": "pass"}
    assert report.target["model"] == open_server.alias


def test_invoke_smoke_test_with_api_key_env(keyed_server, api_key_env, tmp_path, capsys):
    report_path = tmp_path / "smoke.json"
    code, out, err = run_task(["smoke-test", "--url", keyed_server.url, "--api-key-env", api_key_env,
                               "--model", keyed_server.alias, "--json", str(report_path), "--turns", "3",
                               "--only", ",".join(CHECK_NAMES), "--report"], capsys)
    assert code == 0, out + err
    data = json.loads(report_path.read_text())
    assert data["passed"] is True and data["summary"] == {"pass": len(CHECK_NAMES), "fail": 0, "skip": 0}
    assert {c["name"]: c["status"] for c in data["checks"]}["auth"] == "pass"
    for check in CHECK_NAMES:
        assert check in out  # the table lists every check
    # --report: the two APIs side by side, one row per check and API
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if line.count("│") == 6]
    assert ["tool loop", "tool_loop", "chat", "pass"] in [r[:4] for r in rows]
    assert ["", "responses_tool_loop", "responses", "pass"] in [r[:4] for r in rows]
    assert ["", "structured_output", "responses", "pass"] in [r[:4] for r in rows]
    assert TEST_API_KEY not in out + err + report_path.read_text()


def test_invoke_smoke_test_with_stack(keyed_server, fake_pulumi, tmp_path, capsys):
    fake_pulumi("local", stack_outputs(keyed_server.url, keyed_server.alias, TEST_API_KEY,
                                       launch_plan=keyed_server.plan.to_launch_json()))
    report_path = tmp_path / "smoke.json"
    code, out, err = run_task(["smoke-test", "--stack", "local", "--json", str(report_path),
                               "--only", ",".join(CHECK_NAMES)], capsys)
    assert code == 0, out + err
    data = json.loads(report_path.read_text())
    assert data["target"]["source"] == "stack:local" and data["target"]["api_key"] == "set"
    # the context the stack was planned with is what /v1/models is held to
    assert data["target"]["expected_max_model_len"] == keyed_server.plan.settings["max_model_len"] == 32768
    status = {c["name"]: c["status"] for c in data["checks"]}
    assert status.pop("builtin_python") == "skip"  # the local stack has no python tool (this server has one)
    assert set(status.values()) == {"pass"}
    assert TEST_API_KEY not in out + err + report_path.read_text()


def test_missing_key_fails_with_a_non_zero_exit(keyed_server, tmp_path, capsys):
    # no key given to a server that wants one: most checks fail, and the exit code says so
    code, out, err = run_task(["smoke-test", "--url", keyed_server.url, "--json", str(tmp_path / "r.json")], capsys)
    assert code == 1
    data = json.loads((tmp_path / "r.json").read_text())
    st = {c["name"]: c["status"] for c in data["checks"]}
    assert st["health"] == "pass" and st["chat"] == "fail" and st["auth"] == "skip"
    assert "401" in {c["name"]: c["detail"] for c in data["checks"]}["chat"]


def test_defaults_come_from_the_invoke_config(open_server, tmp_path):
    from invoke import Config, Context

    import infra.tasks.endpoint as endpoint

    ctx = Context(Config(overrides={"endpoint": {"smoke": {"concurrency": 3, "turns": 1}}}))
    path = tmp_path / "r.json"
    endpoint.smoke_test(ctx, url=open_server.url, json=str(path), only=",".join(CHECK_NAMES))
    checks = {c["name"]: c for c in json.loads(path.read_text())["checks"]}
    assert checks["concurrency"]["data"]["k"] == 3 and checks["concurrency"]["status"] == "pass"
    assert checks["tool_loop"]["status"] == "pass"

