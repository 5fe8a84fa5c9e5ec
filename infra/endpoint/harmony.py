"""Detect harmony-format fragments that leaked into OpenAI API fields.

gpt-oss speaks the harmony format; the serving engine must turn it into structured fields
(``content``, ``reasoning``/``reasoning_content``, ``tool_calls``). Known engine bugs let
raw pieces through: special tokens in content, a tool name like
``get_weather<|channel|>commentary`` (vLLM #32587), or the text forms that remain when the
special tokens are stripped but the header words are not (``analysis...``,
``assistantfinal...``, ``to=functions.get_weather``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SPECIAL_TOKENS = (
    "<|startoftext|>", "<|endoftext|>", "<|start|>", "<|end|>", "<|message|>",
    "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>",
)
# Header words left at the very start of a field when the special tokens around them were
# dropped: "analysisThe user asks...", "assistantfinalHello", "commentary{"city": ...}".
# A word that merely starts a sentence ("Analysis shows", "analysis of") is not a leak: the
# glued forms have no space between the header word and what follows.
_LEADING = re.compile(r'^\s*(assistant(?:analysis|commentary|final)|(?:analysis|commentary)(?=[A-Z0-9{\["<]))')
_RECIPIENT = "to=functions."


@dataclass(frozen=True)
class Leak:
    where: str      # e.g. "chat.content", "tool_call.tool_calls[0].function.name"
    fragment: str   # what leaked
    excerpt: str    # a short excerpt around it (never more than 60 characters)

    def __str__(self) -> str:
        return f"{self.where}: {self.fragment!r} in {self.excerpt!r}"


def _excerpt(text: str, pos: int, width: int = 24) -> str:
    start = max(0, pos - width)
    return text[start:pos + width + 12]


def find_leaks(text: str | None, where: str = "") -> list[Leak]:
    """Every harmony fragment in ``text`` (an empty list when clean or None)."""
    if not text:
        return []
    leaks: list[Leak] = []
    for tok in SPECIAL_TOKENS:
        pos = text.find(tok)
        if pos >= 0:
            leaks.append(Leak(where, tok, _excerpt(text, pos)))
    pos = text.find(_RECIPIENT)
    if pos >= 0:
        leaks.append(Leak(where, _RECIPIENT, _excerpt(text, pos)))
    m = _LEADING.match(text)
    if m:
        leaks.append(Leak(where, f"leading {m.group(1)!r}", _excerpt(text, m.start(1))))
    return leaks
