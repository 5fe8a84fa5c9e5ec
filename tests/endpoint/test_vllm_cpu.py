"""Misconfigurations users hit, on the real vLLM (CPU): each fails the check that names it.

Seen on vLLM 0.32: without `--tool-call-parser`/`--enable-auto-tool-choice` the tool call is silently
dropped (content null, finish_reason 'stop'; with 'required', finish_reason 'tool_calls' and no
tool_calls), while the Responses API, which parses harmony itself, still returns the function_call; without
`--reasoning-parser` nothing changes (vLLM 0.32 sets `openai_gptoss` for a gpt-oss model itself:
vllm/model_executor/models/config.py, verify_and_update_config); a server started with a context below the stack's max_model_len serves fine until a
long request comes; a wrong served model name gives 404s; a server not given the key answers 200."""

import pytest

from infra.endpoint.checks import CHECK_NAMES, SmokeConfig, run_checks
from infra.endpoint.target import Target

from .conftest import TEST_API_KEY, stack_outputs
from .invoke_helpers import run_task

pytestmark = pytest.mark.slow


def _target(url: str, model: str, api_key: str | None = None) -> Target:
    return Target(base_url=url + "/v1", health_url=url + "/health", model=model, api_key=api_key, backend="vllm")


def test_no_tool_parser_and_short_context_fail_their_checks(misconfigured_server):
    srv = misconfigured_server
    report = run_checks(_target(srv.url, srv.alias), SmokeConfig(max_model_len=32768))
    st = {c.name: c.status for c in report.checks}
    detail = {c.name: c.detail for c in report.checks}
    assert {n for n, s in st.items() if s == "fail"} == {
        "models", "tool_call", "tool_call_stream", "tool_choice_required", "tool_loop"}, detail
    assert "max_model_len is 4096, --max-model-len asks for 32768" in detail["models"]
    assert "finish_reason is 'tool_calls' but the reply has no tool_calls" in detail["tool_choice_required"]
    assert "no tool_calls" in detail["tool_call"]
    assert st["chat"] == st["stream"] == st["reasoning"] == "pass"
    # the Responses API does not go through the tool or reasoning parser flags (issue 25)
    assert {st[n] for n in ("responses", "responses_stream", "responses_tool_call", "responses_tool_loop",
                            "structured_output", "answer")} == {"pass"}, detail
    assert "reasoning_parser='openai_gptoss'" in srv.log_path.read_text(errors="replace")


def test_a_stack_deployed_with_a_shorter_context_fails_models(misconfigured_server, fake_pulumi, capsys):
    """`smoke-test --stack`: the context /v1/models is held to is the stack's planned max_model_len (from
    its `launch_plan` output), with no option given."""
    from infra.plan import build_plan
    from infra.stackfile import load_stack

    srv = misconfigured_server
    fake_pulumi("local", stack_outputs(srv.url, srv.alias, None, launch_plan=build_plan(load_stack("local")).to_launch_json()))
    code, out, err = run_task(["smoke-test", "--stack", "local", "--only", "health,models"], capsys)
    assert code == 1, out + err
    assert "max_model_len is 4096, the stack expects 32768" in " ".join(out.split())


def test_url_with_max_model_len_and_no_model_checks_the_first_listed(misconfigured_server, open_server, capsys):
    """`--url` with `--max-model-len` and no `--model`: the context is held for the model the checks use
    (the first listed), not skipped."""
    code, out, err = run_task(["smoke-test", "--url", misconfigured_server.url, "--max-model-len", "32768",
                               "--only", "health,models"], capsys)
    assert code == 1 and "max_model_len is 4096, --max-model-len asks for 32768" in " ".join(out.split()), out + err
    code, out, err = run_task(["smoke-test", "--url", open_server.url, "--max-model-len", "32768",
                               "--only", "health,models"], capsys)
    assert code == 0 and "max_model_len 32768 (>= 32768 expected)" in " ".join(out.split()), out + err


def test_wrong_served_model_name_fails_models(open_server):
    report = run_checks(_target(open_server.url, "openai/gpt-oss-120b"), SmokeConfig(only=("models", "chat")))
    by = report.by_name()
    assert by["models"].status == "fail" and "is not listed" in by["models"].detail
    assert by["chat"].status == "fail" and "404" in by["chat"].detail


def test_server_not_given_the_key_fails_auth(open_server):
    report = run_checks(_target(open_server.url, open_server.alias, TEST_API_KEY), SmokeConfig(only=("auth",)))
    auth = report.by_name()["auth"]
    assert auth.status == "fail" and "got HTTP 200, expected 401" in auth.detail


def test_every_check_is_named():
    assert "tool_choice_required" in CHECK_NAMES
