"""Text from a server, a stack's outputs or a user's file, made safe for a terminal.

Such text is never rich markup (a model id ``[/bold]`` would raise ``MarkupError``) and never
reaches the terminal with its control characters (an ``ESC ]`` sequence retitles the window,
``ESC [`` recolours or moves the cursor, a newline forges a line): they are shown as ``\\xNN``
escapes, and long values are cut to ``limit`` characters with the full length said.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(value: Any, limit: int = 200) -> str:
    """``value`` as one line of printable text, at most about ``limit`` characters."""
    s = value if isinstance(value, str) else str(value)
    n = len(s)
    s = _CONTROL.sub(_escape, s[:limit])
    return s + (f"... ({n} chars)" if n > limit else "")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def plain(value: Any, limit: int = 200, style: str = "") -> Text:
    """A rich ``Text`` that prints ``value`` literally: no markup, no control characters."""
    return Text(printable(value, limit), style=style)
