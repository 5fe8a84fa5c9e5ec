"""Smoke check for gpt-oss's built-in tools (issue 22): ``builtin_python``.

One Responses request that offers the python tool (``tools: [{"type": "code_interpreter"}]``) and asks for
something only running code can give: the SHA-256 of a random nonce. The engine, started with
``--tool-server``, runs the model's call on the stack's tool server and feeds the result back; the model
answers with it. Pass: the output holds the call and the final answer holds the value.

What each engine shows of the call (neither returns the tool's result in the reply):
- vLLM 0.32/0.33 (vllm/entrypoints/openai/responses/harmony.py, a built-in recipient): the call's code as a
  ``reasoning`` item, the tool's result dropped (tool messages are not output); the result re-entered the
  prompt, which ``usage.output_tokens_details.tool_output_tokens`` counts (serving.py).
- SGLang 0.5.23 (sglang/srt/entrypoints/harmony_utils.py): a ``code_interpreter_call`` item with the code and
  ``outputs: []``; SGLang refuses built-in tools with an MCP tool server when streamed (serving_responses.py).
So "its result" is proven by the final answer: the digest of a nonce drawn for this request is in no
model's weights.
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

from infra.builtin_tools import REQUEST_TOOL, python_tool
from infra.endpoint.checks import CheckSkipped, Context, _require, server_version
from infra.endpoint.checks_responses import _completed, _ok_response, parse_output, resp_body
from infra.endpoint.safetext import printable

PROMPT = ("Run this code with the python tool and reply with exactly what it prints, nothing else:\n"
          "```python\n{code}\n```")


def python_enabled(ctx: Context) -> tuple[bool | None, str]:
    """(whether the endpoint has the python tool, from where that is known); None: not known (a URL)."""
    source = ctx.target.source
    if not source.startswith("stack:"):
        return None, "a URL target"
    from infra.stackfile import load_stack

    name = source.split(":", 1)[1]
    try:
        return python_tool(load_stack(name)).enabled, f"stack {name}"
    except Exception as exc:  # a stack file this checkout cannot read: judge by the reply
        return None, f"stack {name} (unreadable here: {printable(exc, 80)})"


def _tool_tokens(body: dict[str, Any]) -> int:
    details = (body.get("usage") or {}).get("output_tokens_details") if isinstance(body.get("usage"), dict) else None
    n = details.get("tool_output_tokens") if isinstance(details, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def check_builtin_python(ctx: Context) -> tuple[str, dict]:
    enabled, where = python_enabled(ctx)
    if enabled is False:
        raise CheckSkipped(f"{where} has no python tool (builtin_tools.python.enabled: false)")
    nonce = secrets.token_hex(8)
    code = f"import hashlib\nprint(hashlib.sha256(b'{nonce}').hexdigest()[:16])"
    want = hashlib.sha256(nonce.encode()).hexdigest()[:16]
    body = _ok_response(ctx.client.responses(resp_body(ctx, PROMPT.format(code=code), tools=[REQUEST_TOOL])),
                        "POST /v1/responses with the code_interpreter tool")
    out = parse_output(ctx, body, "builtin_python")
    calls = [i for i in body.get("output") or [] if isinstance(i, dict) and i.get("type") == "code_interpreter_call"]
    for i, item in enumerate(calls):
        ctx.record(f"builtin_python.code_interpreter_call[{i}].code", item.get("code"))
    tool_tokens = _tool_tokens(body)
    backend, version = server_version(ctx)
    server = f"{backend or '?'} {version or '?'}"
    if not calls and tool_tokens == 0:
        msg = (f"no python call (items: {out['order']}, usage.output_tokens_details.tool_output_tokens 0) on {server}: "
               "is the engine started with --tool-server (builtin_tools.python.enabled) and the tool server up?")
        _require(enabled is None, msg)
        raise CheckSkipped(f"{where}: {msg}")
    _completed(body, "builtin_python")
    if calls:
        code_seen = "".join(str(c.get("code") or "") for c in calls)
        _require(nonce in code_seen, f"the code_interpreter_call runs other code ({printable(code_seen, 80)!r}), "
                 f"not the code asked for (nonce {nonce})")
        evidence = f"{len(calls)} code_interpreter_call item(s)"
    else:
        _require(nonce in out["reasoning"], "the tool ran (tool_output_tokens "
                 f"{tool_tokens}) but no output item holds the call's code (items: {out['order']})")
        evidence = f"the call as a reasoning item, its result {tool_tokens} tool_output_tokens"
    _require(out["text"].strip() != "", f"no final message after the python call (items: {out['order']})")
    _require(want in out["text"], f"the final message does not hold what the code prints ({want}): "
             f"{printable(out['text'], 80)!r}")
    return (f"python ran sha256(nonce)[:16] = {want}; {evidence}; the final message holds it ({server})",
            {"items": out["order"], "tool_output_tokens": tool_tokens, "server": server})
