"""Properties of the pieces that take server input: any JSON in an SSE event is assembled or
reported as one line, never raised; printed text never carries a control character; deadline
scopes nest to the earliest."""

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from infra.endpoint.deadline import Deadline, active, scope
from infra.endpoint.safetext import plain, printable
from infra.endpoint.sse import SSEEvent, StreamResult

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["choices", "delta", "content", "reasoning", "reasoning_content", "usage",
                                         "tool_calls", "index", "function", "name", "arguments", "id", "type",
                                         "finish_reason", "error", "message", "completion_tokens", "0"]),
                        inner, max_size=4),
                    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(st.lists(JSON, min_size=1, max_size=4))
def test_any_json_event_is_assembled_or_reported_never_raised(objs):
    res = StreamResult()
    for obj in objs:
        res.add_event(SSEEvent(json.dumps(obj)))
    res.add_event(SSEEvent("[DONE]"))
    assert res.done and all("\n" not in e for e in res.errors)
    assert res.usage is None or isinstance(res.usage, dict)
    assert isinstance(res.content, str) and isinstance(res.reasoning, str)
    for tc in res.tool_calls_list():
        assert isinstance(tc["function"]["name"], str) and isinstance(tc["function"]["arguments"], str)


@given(st.text())
def test_printable_has_no_control_character_and_is_bounded(text):
    out = printable(text, 50)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in out)
    assert len(out) <= 50 * 6 + 30  # each kept character at most a 6-char escape, plus the length note
    assert plain(text).plain == printable(text)


def test_scopes_nest_to_the_earliest_and_unwind():
    outer = Deadline.after(10, "task")
    assert active() is None
    with scope(outer):
        with scope(Deadline.after(60, "request")) as d:
            assert d is outer  # the longer inner deadline does not extend the task's
        with scope(Deadline.after(1, "request")) as d:
            assert d.what == "request" and d.remaining() <= 1
        assert active() is outer
    assert active() is None
    late = Deadline(time.monotonic() - 1, 2.0, "warm-up request")
    assert late.expired and late.message() == "the warm-up request took longer than its 2s deadline"
