"""Prompts and grading of the reference harness, so that a score here means what the recipe's does.

The vLLM gpt-oss recipe's panel was measured with OpenAI's ``gpt_oss.evals`` (github.com/openai/gpt-oss,
read at commit 7b583341fe16729127f6d5b94a7b09ccae97e1a1). Its rules, re-implemented (not imported:
see README "Accuracy gate" for why the package itself is not used):

GPQA (gpt_oss/evals/gpqa_eval.py, gpt_oss/evals/abcd_grader.py)
- the four answers are shuffled per item (``random.Random(0)``, see :func:`plan_items`) and shown
  as ``(A)``..``(D)`` under the question, with the instruction to answer with the letter;
- the letter is read from the reply by an ordered list of patterns (:data:`ABCD_RULES`): the first
  pattern that matches anywhere decides; when none does, the reply's first character (after a
  leading ``**``) is taken as is; the item is right when that equals the correct letter.
AIME25 (gpt_oss/evals/aime_eval.py)
- the question, then "Please reason step by step, and put your final answer within \\boxed{}.";
- the answer is the last ``boxed{...}`` / ``framebox{...}`` with non-empty content (text up to the
  first ``}``), after its last comma, stripped; with none, the last run of digits in the reply;
  it counts when ``int()`` of it equals the integer answer (anything ``int()`` refuses is wrong).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

LETTERS = "ABCD"

GPQA_TEMPLATE = (  # gpt_oss/evals/gpqa_eval.py QUERY_TEMPLATE_MULTICHOICE (prompt text must match the panel's)
    "{Question}\n\n(A) {A}\n(B) {B}\n(C) {C}\n(D) {D}\n\n"
    "Express your final answer as the corresponding option 'A', 'B', 'C', or 'D'."
)
AIME_TEMPLATE = (  # gpt_oss/evals/aime_eval.py AIME_TEMPLATE (with its leading and trailing newline)
    "\n{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}.\n"
)

_WRAP = r"(?:\*{1,2}|_{1,2})"   # markdown emphasis: * ** _ __
_SEP = r"[:\-–]"                # ":" "-" or an en dash
_EDGE_L, _EDGE_R = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"

# The reference's patterns in its order of priority (abcd_grader.py _PATTERNS; its labels in brackets).
ABCD_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("[0] **Answer:** X", re.compile(rf"{_WRAP}answers?\s*{_SEP}?{_WRAP}\s*([ABCD])\b", re.I)),
    ("[0.1] a line 'Answer: X' with optional emphasis",
     re.compile(rf"^\s*{_WRAP}?answer:?{_WRAP}?\s*:?\s*{_WRAP}?([ABCD]){_WRAP}?\s*", re.I | re.M)),
    ("[1] Answer: (X)", re.compile(rf"\banswers?\b\s*{_SEP}?\s*\(\s*([ABCD])\s*\)", re.I)),
    ("[2] Answer: X", re.compile(rf"\banswers?\b\s*{_SEP}?\s*([ABCD])\b", re.I)),
    ("[3] Option X / Choice: X", re.compile(rf"\b(?:option|choice)\b\s*{_SEP}?\s*([ABCD])\b", re.I)),
    ("[7] \\boxed{..X..}", re.compile(r"\\boxed\{[^}]*?([ABCD])[^}]*\}")),
    ("[7.5] \\boxed{\\textbf{..X..}}", re.compile(r"\\boxed\{[^}]*?\\textbf\{[^}]*?([ABCD])[^}]*\}[^}]*\}")),
    ("[7.51] \\boxed{\\text{..X..}}", re.compile(r"\\boxed\{[^}]*?\\text\{[^}]*?([ABCD])[^}]*\}[^}]*\}")),
    ("[4] (X) or [X]", re.compile(rf"{_EDGE_L}[(\[]\s*([ABCD])\s*[)\]]{_EDGE_R}")),
    ("[5] *X* **X** _X_ __X__", re.compile(rf"{_EDGE_L}{_WRAP}([ABCD]){_WRAP}{_EDGE_R}")),
    ("[6] \\textbf{..X..}", re.compile(r"\\textbf\{[^}]*?([ABCD])[^}]*\}")),
    ("[8] **X) text**", re.compile(rf"{_EDGE_L}{_WRAP}\s*([ABCD])\)[^*_\n]+?{_WRAP}{_EDGE_R}")),
    ("[9] a line starting with the letter", re.compile(rf"^\s*{_WRAP}?([ABCD]){_WRAP}?\s*[.)\-–:]?\s*.*$", re.M)),
]


def extract_abcd(text: str) -> str:
    """The letter the reply gives (``A``..``D``), or, when no rule matches, its first character
    (after a leading ``**``; may be any character or ``""``), as the reference does."""
    for _label, pattern in ABCD_RULES:
        m = pattern.search(text)
        if m:
            return m.group(1).upper()
    return text.removeprefix("**")[:1]


_BOXED = re.compile(r"boxed\{(.*?)\}|framebox\{(.*?)\}", re.S)
_DIGITS = re.compile(r"\d+")


def extract_integer_text(text: str) -> str:
    """The answer text of an AIME reply (see the module docstring), before ``int()``."""
    for boxed, framed in reversed(_BOXED.findall(text)):
        inner = boxed or framed
        if inner:
            return inner.split(",")[-1].strip()
    digits = _DIGITS.findall(text)
    return digits[-1] if digits else ""


def extract_integer(text: str) -> int | None:
    try:
        return int(extract_integer_text(text))
    except ValueError:
        return None


@dataclass(frozen=True)
class Item:
    """One request of the run: an example (its index in the dataset) and, for GPQA, the order of
    its answers (``order[i]`` is the index into [correct, incorrect 1, 2, 3] shown as letter i)."""
    example: int
    repeat: int
    order: tuple[int, ...]


def plan_items(n_examples: int, examples: int | None, repeats: int) -> list[Item]:
    """The items in the reference's order and with its random draws: ``Random(0)`` samples
    ``examples`` of the dataset (when given), the list is repeated ``repeats`` times, then one
    shuffle of the four answers is drawn per item (AIME draws it too, unused), so the same data
    gives the same subset and the same answer orders as ``gpt_oss.evals``."""
    rng = random.Random(0)
    chosen = list(range(n_examples))
    if examples is not None:  # sampled even when it is all of them: the reference does (the order changes)
        chosen = rng.sample(chosen, examples)
    items = []
    for r in range(repeats):
        for ex in chosen:
            items.append(Item(ex, r, tuple(rng.sample(range(4), 4))))
    return items


def gpqa_prompt(question: str, answers: tuple[str, str, str, str], order: tuple[int, ...]) -> tuple[str, str]:
    """(the prompt, the correct letter) for answers [correct, incorrect 1..3] shown in ``order``."""
    shown = [answers[i] for i in order]
    letter = LETTERS[shown.index(answers[0])]  # the first position holding the correct text, as the reference
    return GPQA_TEMPLATE.format(Question=question, A=shown[0], B=shown[1], C=shown[2], D=shown[3]), letter


def aime_prompt(question: str) -> str:
    return AIME_TEMPLATE.format(question=question)
