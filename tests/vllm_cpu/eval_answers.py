"""What the tiny test model answers to an eval question (``invoke eval`` tests), decided from the
rendered prompt alone; used by the harmony plugin (harmony_plugin.plan_texts) for the final answer.

A test dataset row says what the model should reply with a marker in its question text,
``[[reply: TEXT]]``. The plugin then answers like gpt-oss does:
- a multiple-choice prompt (GPQA's template lists ``(A) ...`` to ``(D) ...``, in an order the eval
  shuffles): ``**Answer: L**`` where ``(L)`` is the choice whose text is TEXT, so the dataset decides
  which items are right without knowing the shuffle;
- any other prompt (AIME's): ``... \\boxed{TEXT}``.
The grader never sees the marker except through this answer. No marker: None (the plugin's usual
short answer). Pure functions; the plugin runs them inside the vLLM server process.
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"\[\[reply: ([^\]\n]{1,200})\]\]")
_CHOICE = re.compile(r"^\(([ABCD])\) (.*)$", re.M)


def final_answer(prompt: str) -> str | None:
    """The final-answer text for the last user message of a harmony-rendered ``prompt``, or None."""
    start = prompt.rfind("<|start|>user<|message|>")
    if start < 0:
        return None
    user = prompt[start:]
    end = user.find("<|end|>")
    user = user if end < 0 else user[:end]
    marker = _MARKER.search(user)
    if not marker:
        return None
    want = marker.group(1).strip()
    choices = {text.strip(): letter for letter, text in _CHOICE.findall(user)}
    if choices:
        letter = choices.get(want)
        # a marker naming no listed choice: an answer the grader cannot read as a letter
        return f"**Answer: {letter}**" if letter else "I cannot tell."
    return f"The answer is $\\boxed{{{want}}}$."
