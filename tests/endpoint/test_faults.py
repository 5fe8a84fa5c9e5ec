"""Test the tester: a real fault-injecting proxy between the client and the real server
reproduces each known failure mode, and exactly the checks that should notice it fail."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from infra.endpoint.checks import CHECK_NAMES, SmokeConfig, run_checks
from infra.endpoint.target import Target


from .conftest import TEST_API_KEY
from .faultproxy import FAULTS, FaultProxy

pytestmark = pytest.mark.slow

EXPECTED_FAILURES = {
    # ... and the chat structured-output content is no longer JSON
    "harmony_in_content": {"no_harmony_leak", "structured_output"},
    # the name is not an offered tool (every non-streamed tool call) and it holds a harmony token
    "tool_name_channel": {"tool_call", "tool_choice_required", "tool_loop", "no_harmony_leak"},
    # arguments in content and no tool_calls (finish_reason stop): the tool checks that do not stream
    "args_in_content": {"tool_call", "tool_choice_required", "tool_loop"},
    "no_done": {"stream", "tool_call_stream"},
    "stream_no_tool_call": {"tool_call_stream"},
    "no_reasoning": {"reasoning"},
    "no_auth": {"auth"},
    "wrong_model": {"models"},
    # every check that sends a Responses request (structured_output and answer send one of two; the package
    # servers have the python tool, so builtin_python runs too)
    "no_responses_route": {"responses", "responses_stream", "responses_tool_call", "responses_tool_loop",
                           "structured_output", "answer", "builtin_python"},
    "responses_no_completed": {"responses_stream"},
    # every non-streamed Responses message: the reasoning item's text is found inside its output_text
    "reasoning_in_output_text": {"responses", "responses_tool_loop", "structured_output", "answer", "builtin_python"},
    "bad_function_args": {"responses_tool_call", "responses_tool_loop"},
    "schema_break": {"structured_output"},
    # the arithmetic and the string are wrong, and so are the temperature repeated from the tool result and the
    # digest repeated from the python tool's output
    "wrong_answer": {"answer", "responses_tool_loop", "builtin_python"},
}
# the one-line reason each new fault fails its check with (issue 25: each fails "with a named reason")
REASONS = {
    "no_responses_route": ("responses", "does not serve /v1/responses"),
    "responses_no_completed": ("responses_stream", "the stream ended without response.completed"),
    "reasoning_in_output_text": ("responses", "the output_text holds the reasoning text"),
    "bad_function_args": ("responses_tool_call", "arguments do not match the schema"),
    "schema_break": ("structured_output", "the JSON does not match the schema"),
    "wrong_answer": ("answer", "the answer says"),
}


def test_every_fault_has_an_expectation():
    assert set(EXPECTED_FAILURES) == set(FAULTS)


def _target(url: str, model: str) -> Target:
    return Target(base_url=url + "/v1", health_url=url + "/health", model=model, api_key=TEST_API_KEY)


@pytest.fixture(scope="module")
def reports(keyed_server) -> dict:
    """{fault (None: a clean proxy): (every check's report through that proxy, requests the proxy saw)}. The
    runs go four at a time, each through its own proxy: the server batches their requests, and the module
    takes about half the time of one run after another (the plugin scripts every reply, so batching changes
    no answer)."""
    def run(fault):
        with FaultProxy(keyed_server.url, fault, TEST_API_KEY) as proxy:
            return run_checks(_target(proxy.url, keyed_server.alias), SmokeConfig(only=CHECK_NAMES)), proxy.requests

    runs = [None, *sorted(FAULTS)]
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(runs, pool.map(run, runs)))


def test_clean_proxy_changes_nothing(reports):
    report, requests = reports[None]
    assert {c.name: c.status for c in report.checks} == {n: "pass" for n in CHECK_NAMES}
    assert requests > 10


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_fails_exactly_the_named_checks(reports, fault):
    report, _ = reports[fault]
    st = {c.name: c.status for c in report.checks}
    failed = {n for n, s in st.items() if s == "fail"}
    assert failed == EXPECTED_FAILURES[fault], {c.name: c.detail for c in report.checks if c.status == "fail"}
    assert all(s == "pass" for n, s in st.items() if n not in failed), st
    assert not report.passed
    if fault in REASONS:
        check, reason = REASONS[fault]
        assert reason in report.by_name()[check].detail
