"""Test the tester: a real fault-injecting proxy between the client and the real server
reproduces each known failure mode, and exactly the checks that should notice it fail."""

import pytest

from infra.endpoint.checks import CHECK_NAMES, SmokeConfig, run_checks
from infra.endpoint.target import Target


from .conftest import TEST_API_KEY
from .faultproxy import FAULTS, FaultProxy

pytestmark = pytest.mark.slow

EXPECTED_FAILURES = {
    "harmony_in_content": {"no_harmony_leak"},
    # the name is not an offered tool (every non-streamed tool call) and it holds a harmony token
    "tool_name_channel": {"tool_call", "tool_choice_required", "tool_loop", "no_harmony_leak"},
    # arguments in content and no tool_calls (finish_reason stop): the tool checks that do not stream
    "args_in_content": {"tool_call", "tool_choice_required", "tool_loop"},
    "no_done": {"stream", "tool_call_stream"},
    "stream_no_tool_call": {"tool_call_stream"},
    "no_reasoning": {"reasoning"},
    "no_auth": {"auth"},
    "wrong_model": {"models"},
}


def test_every_fault_has_an_expectation():
    assert set(EXPECTED_FAILURES) == set(FAULTS)


def _target(url: str, model: str) -> Target:
    return Target(base_url=url + "/v1", health_url=url + "/health", model=model, api_key=TEST_API_KEY)


def test_clean_proxy_changes_nothing(keyed_server):
    with FaultProxy(keyed_server.url, None, TEST_API_KEY) as proxy:
        report = run_checks(_target(proxy.url, keyed_server.alias), SmokeConfig(only=CHECK_NAMES))
    assert {c.name: c.status for c in report.checks} == {n: "pass" for n in CHECK_NAMES}
    assert proxy.requests > 10


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_fails_exactly_the_named_checks(keyed_server, fault):
    with FaultProxy(keyed_server.url, fault, TEST_API_KEY) as proxy:
        report = run_checks(_target(proxy.url, keyed_server.alias), SmokeConfig(only=CHECK_NAMES))
    st = {c.name: c.status for c in report.checks}
    failed = {n for n, s in st.items() if s == "fail"}
    assert failed == EXPECTED_FAILURES[fault], {c.name: c.detail for c in report.checks if c.status == "fail"}
    assert all(s == "pass" for n, s in st.items() if n not in failed), st
    assert not report.passed
