"""Server-sent events (the ``text/event-stream`` framing OpenAI-compatible servers use for
``stream: true``) and assembly of chat-completion chunks into one message.

Framing (WHATWG HTML, "event stream interpretation"): lines end in LF, CR or CRLF; a blank
line dispatches the event; ``data:`` lines are joined with LF; a leading space after the
colon is dropped; lines starting with ``:`` are comments. The OpenAI stream ends with the
literal event ``data: [DONE]``.

Everything here is server input: a line longer than :data:`MAX_LINE_CHARS` is dropped, reading
stops after :data:`MAX_STREAM_CHARS`, and every event of an unexpected shape is recorded in
``StreamResult.errors`` as one line naming the event and the field, never raised.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


from infra.endpoint.safetext import printable

_EOL = re.compile(r"\r\n|\r|\n")
MAX_LINE_CHARS = 1 << 20      # one SSE line; a chat chunk is a few hundred characters
MAX_STREAM_CHARS = 64 << 20   # one whole stream


@dataclass
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SSEDecoder:
    """Incremental decoder: feed text chunks of any size, get complete events."""

    def __init__(self) -> None:
        self._buf = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._skipping = False          # inside a line that was too long: drop up to its end
        self.errors: list[str] = []

    def feed(self, chunk: str) -> list[SSEEvent]:
        if self._skipping:
            m = _EOL.search(chunk)
            if m is None:
                return []
            chunk, self._skipping = chunk[m.end():], False
        buf = self._buf + chunk
        events: list[SSEEvent] = []
        pos, n = 0, len(buf)
        while True:
            m = _EOL.search(buf, pos)
            if m is None:
                break
            if m.group() == "\r" and m.end() == n:
                break  # may be the first half of a CRLF split across chunks
            line = buf[pos:m.start()]
            pos = m.end()
            ev = self._line(line)
            if ev is not None:
                events.append(ev)
        self._buf = buf[pos:]
        if len(self._buf) > MAX_LINE_CHARS:
            self.errors.append(f"an SSE line longer than {MAX_LINE_CHARS} characters (dropped)")
            self._buf, self._skipping = "", True
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: an event without its closing blank line is still dispatched."""
        events = []
        if self._buf:
            ev = self._line(self._buf.rstrip("\r"))
            self._buf = ""
            if ev is not None:
                events.append(ev)
        ev = self._line("")
        if ev is not None:
            events.append(ev)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            data = "\n".join(self._data)
            if not data:  # WHATWG: an empty data buffer dispatches nothing
                self._data, self._event = [], None
                return None
            ev = SSEEvent(data, self._event, self._id)
            self._data, self._event = [], None
            return ev
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None


def consume(dec: SSEDecoder, res: "StreamResult", text: str, now: float) -> bool:
    """The client's per-chunk work: SSE framing + JSON + delta assembly. False once the
    stream is over :data:`MAX_STREAM_CHARS` (the caller stops reading; the error is recorded)."""
    for ev in dec.feed(text):
        res.add_event(ev, now)
    if dec.errors:
        res.errors.extend(dec.errors)
        dec.errors.clear()
    res.chars += len(text)
    if res.chars > MAX_STREAM_CHARS:
        res.errors.append(f"the stream went on past {MAX_STREAM_CHARS} characters; stopped reading")
        return False
    return True


def finish(dec: SSEDecoder, res: "StreamResult", now: float | None = None) -> None:
    """End of stream: dispatch what the decoder still holds."""
    for ev in dec.flush():
        res.add_event(ev, now)


def iter_events(chunks: Iterable[str]) -> Iterator[SSEEvent]:
    dec = SSEDecoder()
    for chunk in chunks:
        yield from dec.feed(chunk)
    yield from dec.flush()


@dataclass
class ToolCallAcc:
    index: int
    id: str | None = None
    type: str | None = None
    name: str = ""
    arguments: str = ""


@dataclass
class StreamResult:
    """One streamed chat completion, assembled from its chunks."""

    content: str = ""
    reasoning: str = ""
    reasoning_field: str | None = None  # "reasoning" or "reasoning_content"
    tool_calls: dict[int, ToolCallAcc] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    done: bool = False                 # "[DONE]" seen
    events: int = 0                    # events dispatched to add_event
    chars: int = 0                     # characters read (bounded by MAX_STREAM_CHARS)
    events_after_done: int = 0
    chunks: int = 0
    content_chunks: int = 0
    errors: list[str] = field(default_factory=list)  # malformed events, error payloads
    choice_chunks: int = 0             # chunks with a non-empty `choices` list (a role-only delta counts)
    # monotonic timestamps (perf_counter) for latency metrics
    t_first_chunk: float | None = None    # first chunk with a non-empty `choices` (vLLM's TTFT point)
    t_first_token: float | None = None    # first delta of any kind (reasoning, content, tool)
    t_first_content: float | None = None  # first non-empty content delta
    token_times: list[float] = field(default_factory=list)  # arrival of each non-empty delta

    def tool_calls_list(self) -> list[dict[str, Any]]:
        out = []
        for idx in sorted(self.tool_calls):
            tc = self.tool_calls[idx]
            out.append({"index": idx, "id": tc.id, "type": tc.type,
                        "function": {"name": tc.name, "arguments": tc.arguments}})
        return out

    def add_event(self, ev: SSEEvent, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self.events += 1
        if self.done:
            self.events_after_done += 1
            return
        data = ev.data.strip()
        if data == "[DONE]":
            self.done = True
            return
        where = f"event {self.events}"
        try:
            obj = json.loads(data)
        except ValueError:
            self.errors.append(f"{where}: `data` is not JSON: {printable(data, 80)!r}")
            return
        if not isinstance(obj, dict):
            self.errors.append(f"{where}: `data` is a JSON {_kind(obj)}, not an object")
            return
        if "error" in obj:
            err = obj["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            self.errors.append(f"{where}: error event: {printable(msg)}")
            return
        self.chunks += 1
        self._usage(obj.get("usage"), where)
        choices = obj.get("choices")
        if choices is None:
            return
        if not isinstance(choices, list):
            self.errors.append(f"{where}: `choices` is a JSON {_kind(choices)}, not a list")
            return
        if choices:
            # vLLM and SGLang send their first choice chunk (role, maybe no text) with the engine's
            # first generated token, before gpt-oss's harmony header has produced any visible text.
            self.choice_chunks += 1
            if self.t_first_chunk is None:
                self.t_first_chunk = now
        for i, choice in enumerate(choices):
            self._choice(choice, f"{where}: choices[{i}]", now)

    def _usage(self, usage: Any, where: str) -> None:
        if usage is None or usage == {}:
            return
        if not isinstance(usage, dict):
            self.errors.append(f"{where}: `usage` is a JSON {_kind(usage)}, not an object")
            return
        for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
            v = usage.get(k)
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
                self.errors.append(f"{where}: usage.{k} is {printable(json.dumps(v), 40)}, not a count")
                return
        self.usage = usage

    def _choice(self, choice: Any, where: str, now: float) -> None:
        if not isinstance(choice, dict):
            self.errors.append(f"{where} is a JSON {_kind(choice)}, not an object")
            return
        delta = choice.get("delta")
        if delta is None:
            delta = {}
        if not isinstance(delta, dict):
            self.errors.append(f"{where}.delta is a JSON {_kind(delta)}, not an object")
            return
        got = False
        for fld in ("reasoning", "reasoning_content", "content"):
            piece = delta.get(fld)
            if piece is None:
                continue
            if not isinstance(piece, str):
                self.errors.append(f"{where}.delta.{fld} is a JSON {_kind(piece)}, not a string")
                continue
            if not piece:
                continue
            got = True
            if fld == "content":
                self.content += piece
                self.content_chunks += 1
                if self.t_first_content is None:
                    self.t_first_content = now
            else:
                self.reasoning += piece
                self.reasoning_field = self.reasoning_field or fld
        calls = delta.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            self.errors.append(f"{where}.delta.tool_calls is a JSON {_kind(calls)}, not a list")
            calls = None
        for j, tcd in enumerate(calls or []):
            got = self._tool_delta(tcd, f"{where}.delta.tool_calls[{j}]") or got
        if got:
            if self.t_first_token is None:
                self.t_first_token = now
            self.token_times.append(now)
        finish = choice.get("finish_reason")
        if finish is not None and not isinstance(finish, str):
            self.errors.append(f"{where}.finish_reason is a JSON {_kind(finish)}, not a string")
        elif finish:
            self.finish_reason = finish

    def _tool_delta(self, tcd: Any, where: str) -> bool:
        if not isinstance(tcd, dict):
            self.errors.append(f"{where} is a JSON {_kind(tcd)}, not an object")
            return False
        idx = tcd.get("index", 0)
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < MAX_TOOL_CALLS:
            self.errors.append(f"{where}.index is {printable(json.dumps(idx), 40)}, "
                               f"not an integer from 0 to {MAX_TOOL_CALLS - 1}")
            return False
        fn = tcd.get("function")
        if fn is None:
            fn = {}
        if not isinstance(fn, dict):
            self.errors.append(f"{where}.function is a JSON {_kind(fn)}, not an object")
            return False
        for key, value in (("id", tcd.get("id")), ("type", tcd.get("type")), ("function.name", fn.get("name")),
                           ("function.arguments", fn.get("arguments"))):
            if value is not None and not isinstance(value, str):
                self.errors.append(f"{where}.{key} is a JSON {_kind(value)}, not a string")
                return False
        acc = self.tool_calls.setdefault(idx, ToolCallAcc(index=idx))
        acc.id = tcd.get("id") or acc.id
        acc.type = tcd.get("type") or acc.type
        if fn.get("name"):
            acc.name += fn["name"]
        if fn.get("arguments"):
            acc.arguments += fn["arguments"]
        return True


MAX_TOOL_CALLS = 128   # parallel tool calls in one message; an index beyond is not a real one


def _kind(value: Any) -> str:
    """The JSON type name of a decoded value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "list", str: "string", int: "number", float: "number"}.get(type(value), type(value).__name__)
