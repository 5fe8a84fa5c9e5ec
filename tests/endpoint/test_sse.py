import json

import pytest

from infra.endpoint.sse import SSEDecoder, SSEEvent, StreamResult, iter_events


def chunk(delta, finish=None, usage=None):
    obj = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        obj = {"object": "chat.completion.chunk", "choices": [], "usage": usage}
    return "data: " + json.dumps(obj) + "\n\n"


STREAM = (
    ": keep-alive comment\n\n"
    + chunk({"role": "assistant", "content": None})
    + chunk({"reasoning_content": "think "})
    + chunk({"reasoning_content": "more"})
    + chunk({"content": "Hel"})
    + chunk({"content": "lo"}, finish="stop")
    + chunk({}, usage={"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})
    + "data: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_any_chunking_gives_the_same_events(size):
    pieces = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    events = list(iter_events(pieces))
    assert [e.data for e in events][-1] == "[DONE]"
    assert len(events) == 7  # the comment is not an event


def test_crlf_and_cr_line_ends_even_when_split():
    dec = SSEDecoder()
    out = dec.feed("data: a\r")          # CR at the end may be half of a CRLF
    out += dec.feed("\n\r\ndata: b\rdata: c\r\r")
    out += dec.flush()
    assert [e.data for e in out] == ["a", "b\nc"]


def test_fields_and_multiline_data():
    events = list(iter_events(["event: message\nid: 7\ndata: line1\ndata:line2\n\n"]))
    assert events == [SSEEvent("line1\nline2", "message", "7")]


def test_event_without_final_blank_line_is_flushed():
    assert [e.data for e in iter_events(["data: [DONE]"])] == ["[DONE]"]


def test_stream_result_assembles_content_reasoning_usage():
    res = StreamResult()
    for i, ev in enumerate(iter_events([STREAM])):
        res.add_event(ev, now=float(i))
    assert res.done and res.content == "Hello" and res.reasoning == "think more"
    assert res.reasoning_field == "reasoning_content"
    assert res.finish_reason == "stop"
    assert res.usage["completion_tokens"] == 4
    assert res.t_first_chunk == 0.0  # the role-only chunk: vLLM's TTFT point
    assert res.t_first_token == 1.0 and res.t_first_content == 3.0  # reasoning comes first
    assert res.choice_chunks == 5  # the usage chunk has empty choices, as vLLM sends it
    assert res.token_times == [1.0, 2.0, 3.0, 4.0]  # the role-only chunk carries no token
    assert not res.errors


def test_tool_call_deltas_join_by_index():
    s = (chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                 "function": {"name": "get_weather", "arguments": ""}}]})
         + chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]})
         + chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                   "function": {"name": "other", "arguments": "{}"}}]})
         + chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}, finish="tool_calls")
         + "data: [DONE]\n\n")
    res = StreamResult()
    for ev in iter_events([s]):
        res.add_event(ev)
    calls = res.tool_calls_list()
    assert [c["function"]["name"] for c in calls] == ["get_weather", "other"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert calls[0]["id"] == "call_1" and res.finish_reason == "tool_calls"


def test_malformed_error_and_after_done_events_are_reported():
    res = StreamResult()
    for ev in iter_events(["data: {not json\n\n", 'data: {"error": {"message": "boom"}}\n\n',
                           "data: [DONE]\n\n", chunk({"content": "late"})]):
        res.add_event(ev)
    assert any("`data` is not JSON" in e for e in res.errors)
    assert any("boom" in e for e in res.errors)
    assert res.done and res.events_after_done == 1 and res.content == ""
