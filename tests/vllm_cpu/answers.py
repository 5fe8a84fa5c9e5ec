"""Right answers for the tiny test model: what the harmony plugin says when a question has one
checkable answer, and the JSON it writes where a grammar asks for a schema.

A random-weight model cannot compute; this module does it for the plugin, from the request alone,
so that the smoke test's ``answer``, ``structured_output`` and ``responses_tool_loop`` checks are
proved against a server that answers correctly (and, through the fault proxy, fail on one that does
not). It recognises only the question forms those checks send (infra/endpoint/checks_responses.py):

- arithmetic: ``What is 482 * 917?`` (``*``, ``+``, ``-``, two integers) -> ``482 * 917 = 441994.``
- a string transformation: ``Join the words orbit, candle, meadow with hyphens, in upper case`` ->
  ``ORBIT-CANDLE-MEADOW``
- after a tool result (a ``functions.NAME`` message): a sentence that repeats the result's fields.

Pure Python (no vLLM import): it runs inside the vLLM server process and is unit-tested outside it.
"""
from __future__ import annotations

import json
import re

_ARITH = re.compile(r"(-?\d+)\s*([*+\-x×])\s*(-?\d+)")
_JOIN = re.compile(r"[Jj]oin the words ([a-z]+(?:, [a-z]+)+) with hyphens, in upper case")
_USER = "<|start|>user<|message|>"
# a tool's message, as harmony renders it: <|start|>functions.NAME<|channel|>commentary to=assistant<|message|>...
_TOOL_RESULT = re.compile(r"<\|start\|>functions\.(\w+)(?:(?!<\|message\|>).)*<\|message\|>(.*?)<\|end\|>", re.S)


def last_user_text(prompt: str) -> str:
    """The last user message of a rendered harmony prompt."""
    start = prompt.rfind(_USER)
    if start < 0:
        return ""
    text = prompt[start + len(_USER):]
    return text.split("<|end|>", 1)[0]


def arithmetic(question: str) -> int | None:
    m = _ARITH.search(question)
    if not m:
        return None
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return a + b if op == "+" else a - b if op == "-" else a * b


def transformed(question: str) -> str | None:
    m = _JOIN.search(question)
    return "-".join(w.upper() for w in m.group(1).split(", ")) if m else None


def tool_answer(prompt: str) -> str | None:
    """A final answer that uses the last tool result in the conversation (its fields, verbatim)."""
    results = _TOOL_RESULT.findall(prompt)
    if not results:
        return None
    name, raw = results[-1]
    try:
        data = json.loads(raw)
    except ValueError:
        return f"The {name} tool said: {raw.strip()[:200]}"
    if not isinstance(data, dict):
        return f"The {name} tool said: {json.dumps(data)}"
    fields = ", ".join(f"{k} {v}" for k, v in data.items() if k != "tool")
    return f"The {name} tool reports {fields}."


def final_answer(prompt: str) -> str | None:
    """The answer to the conversation's last turn, when this module knows one."""
    if "<|start|>functions." in prompt[prompt.rfind(_USER):]:
        return tool_answer(prompt)
    question = last_user_text(prompt)
    n = arithmetic(question)
    if n is not None:
        m = _ARITH.search(question)
        return f"{m.group(1)} {m.group(2)} {m.group(3)} = {n}."
    return transformed(question)


def value_for(schema: dict, question: str, name: str = ""):
    """A value valid for ``schema`` (the subset strict structured output uses), taken from the
    question where it has one: an integer field gets the arithmetic result, a string field the
    transformed string."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: value_for(v, question, k) for k, v in props.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        n = arithmetic(question)
        return n if n is not None else 1
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return transformed(question) or (name or "test")


def schema_from_structural_tag(tag_json: str | None) -> dict | None:
    """The JSON schema vLLM's harmony parser put in the final-channel tag of a structured-output
    request (vllm/parser/harmony.py ``_adjust_output_format``: ``<|channel|>final ...`` + a
    ``json_schema`` format); None for tool-call tags (their begins name ``to=functions.``)."""
    if not tag_json:
        return None
    try:
        tag = json.loads(tag_json)
    except ValueError:
        return None
    found: list[dict] = []

    def walk(node, final: bool) -> None:
        if isinstance(node, dict):
            begin = node.get("begin")
            if isinstance(begin, str):
                final = begin.startswith("<|channel|>final") and "to=" not in begin
            if final and node.get("type") == "json_schema" and isinstance(node.get("json_schema"), dict):
                found.append(node["json_schema"])
            for v in node.values():
                walk(v, final)
        elif isinstance(node, list):
            for v in node:
                walk(v, final)

    walk(tag, False)
    return found[0] if found else None
