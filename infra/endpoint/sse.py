"""Server-sent events (the ``text/event-stream`` framing OpenAI-compatible servers use for
``stream: true``) and assembly of chat-completion chunks into one message.

Framing (WHATWG HTML, "event stream interpretation"): lines end in LF, CR or CRLF; a blank
line dispatches the event; ``data:`` lines are joined with LF; a leading space after the
colon is dropped; lines starting with ``:`` are comments. The OpenAI stream ends with the
literal event ``data: [DONE]``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


_EOL = re.compile(r"\r\n|\r|\n")


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

    def feed(self, chunk: str) -> list[SSEEvent]:
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
            if not self._data:
                self._event = None
                return None
            ev = SSEEvent("\n".join(self._data), self._event, self._id)
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
    events_after_done: int = 0
    chunks: int = 0
    content_chunks: int = 0
    errors: list[str] = field(default_factory=list)  # malformed events, error payloads
    # monotonic timestamps (perf_counter) for latency metrics
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
        data = ev.data.strip()
        if self.done:
            self.events_after_done += 1
            return
        if data == "[DONE]":
            self.done = True
            return
        try:
            obj = json.loads(data)
        except ValueError:
            self.errors.append(f"malformed JSON in event: {data[:80]!r}")
            return
        if not isinstance(obj, dict):
            self.errors.append(f"event is not a JSON object: {data[:80]!r}")
            return
        if "error" in obj:
            err = obj["error"]
            self.errors.append(f"error event: {err.get('message', err) if isinstance(err, dict) else err}")
            return
        self.chunks += 1
        if obj.get("usage"):
            self.usage = obj["usage"]
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or {}
            got = False
            for fld in ("reasoning", "reasoning_content"):
                piece = delta.get(fld)
                if isinstance(piece, str) and piece:
                    self.reasoning += piece
                    self.reasoning_field = self.reasoning_field or fld
                    got = True
            piece = delta.get("content")
            if isinstance(piece, str) and piece:
                self.content += piece
                self.content_chunks += 1
                if self.t_first_content is None:
                    self.t_first_content = now
                got = True
            for tcd in delta.get("tool_calls") or []:
                idx = tcd.get("index", 0)
                acc = self.tool_calls.setdefault(idx, ToolCallAcc(index=idx))
                acc.id = tcd.get("id") or acc.id
                acc.type = tcd.get("type") or acc.type
                fn = tcd.get("function") or {}
                if fn.get("name"):
                    acc.name += fn["name"]
                if fn.get("arguments"):
                    acc.arguments += fn["arguments"]
                got = True
            if got:
                if self.t_first_token is None:
                    self.t_first_token = now
                self.token_times.append(now)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
