"""Container env vars the image READMEs document -> plan overrides (layer 4 of the precedence).

The launcher passes `os.environ`; the plan applies what this returns on top of the stack config.
Each such variable maps to one setting; values are validated here so a bad value fails with one
clear line before the engine starts. Legacy names (the gpt-oss-sglang READMEs' NVIDIA Dynamo parser names, DYN_*) are mapped to
the engine's own names with a warning.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


class EnvError(ValueError):
    """A container env var with a value that cannot work (names the var, the value and the fix)."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(name: str, raw: str) -> bool:
    """true/false, 1/0, yes/no, on/off; EnvError naming the variable otherwise."""
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise EnvError(f"{name}={raw!r}: expected true or false")


def _int(lo: int, hi: int) -> Callable[[str, str], int]:
    def conv(name: str, raw: str) -> int:
        try:
            val = int(raw.strip())
        except ValueError:
            raise EnvError(f"{name}={raw!r}: expected a whole number") from None
        if not lo <= val <= hi:
            raise EnvError(f"{name}={raw!r}: expected {lo}..{hi}")
        return val
    return conv


def _fraction(name: str, raw: str) -> float:
    from infra.constants import MAX_MEMORY_FRACTION, MIN_MEMORY_FRACTION

    try:
        val = float(raw.strip())
    except ValueError:
        raise EnvError(f"{name}={raw!r}: expected a number such as 0.90") from None
    if not MIN_MEMORY_FRACTION < val <= MAX_MEMORY_FRACTION:
        raise EnvError(f"{name}={raw!r}: expected > {MIN_MEMORY_FRACTION} and <= {MAX_MEMORY_FRACTION}, e.g. 0.90")
    return val


def _str(name: str, raw: str) -> str:
    if not raw.strip():
        raise EnvError(f"{name} is set but empty: unset it or give a value")
    return raw.strip()


def _model(name: str, raw: str) -> str:
    from infra.catalogue import models

    val = raw.strip()
    if val not in models():
        raise EnvError(f"{name}={raw!r}: expected one of {', '.join(models())}")
    return val


# (env var, setting it overrides, converter, backends it belongs to)
ENV_VARS: tuple[tuple[str, str, Callable[[str, str], Any], tuple[str, ...]], ...] = (
    ("MODEL", "model", _model, ("vllm", "sglang")),
    ("MAX_MODEL_LEN", "max_model_len", _int(256, 1 << 20), ("vllm", "sglang")),
    ("TENSOR_PARALLEL_SIZE", "tensor_parallel", _int(1, 64), ("vllm", "sglang")),
    ("HOST", "host", _str, ("vllm", "sglang")),
    ("PORT", "port", _int(1, 65535), ("vllm", "sglang")),
    ("GPU_MEMORY_UTILIZATION", "gpu_memory_fraction", _fraction, ("vllm",)),
    ("MEM_FRACTION_STATIC", "gpu_memory_fraction", _fraction, ("sglang",)),
    ("MAX_NUM_SEQS", "max_num_seqs", _int(1, 4096), ("vllm",)),
    ("MAX_RUNNING_REQUESTS", "max_num_seqs", _int(1, 4096), ("sglang",)),
    ("MAX_NUM_BATCHED_TOKENS", "max_num_batched_tokens", _int(64, 1 << 20), ("vllm",)),
    ("ASYNC_SCHEDULING", "async_scheduling", parse_bool, ("vllm",)),
    ("ENABLE_PREFIX_CACHING", "enable_prefix_caching", parse_bool, ("vllm",)),
    ("ENABLE_CHUNKED_PREFILL", "enable_chunked_prefill", parse_bool, ("vllm",)),
    ("CHUNKED_PREFILL", "enable_chunked_prefill", parse_bool, ("sglang",)),
    ("ENABLE_AUTO_TOOL_CHOICE", "enable_auto_tool_choice", parse_bool, ("vllm",)),
    ("TOOL_CALL_PARSER", "tool_call_parser", _str, ("vllm",)),
    ("DYN_TOOL_CALL_PARSER", "tool_call_parser", _str, ("sglang",)),
    ("DYN_REASONING_PARSER", "reasoning_parser", _str, ("sglang",)),
    ("ATTENTION_BACKEND", "attention_backend", _str, ("vllm", "sglang")),
)

# The gpt-oss-sglang image and RunPod READMEs' parser names come from NVIDIA Dynamo, not from the engines themselves.
LEGACY_VALUES: dict[tuple[str, str], dict[str, str]] = {
    ("sglang", "tool_call_parser"): {"harmony": "gpt-oss", "gpt_oss": "gpt-oss", "openai": "gpt-oss"},
    ("sglang", "reasoning_parser"): {"gpt_oss": "gpt-oss", "harmony": "gpt-oss"},
    ("vllm", "tool_call_parser"): {"harmony": "openai", "gpt_oss": "openai", "gpt-oss": "openai"},
    ("vllm", "reasoning_parser"): {"gpt_oss": "openai_gptoss", "gpt-oss": "openai_gptoss", "harmony": "openai_gptoss"},
}
# Fields that change the spec itself (and so the presets and the fit), not just a flag.
SPEC_FIELDS = ("model", "tensor_parallel", "host", "port", "max_model_len", "gpu_memory_fraction",
               "max_num_seqs", "max_num_batched_tokens", "async_scheduling", "enable_prefix_caching",
               "enable_chunked_prefill", "attention_backend")


@dataclass
class EnvOverrides:
    values: dict[str, Any] = field(default_factory=dict)  # setting -> value
    sources: dict[str, str] = field(default_factory=dict)  # setting -> env var name
    warnings: list[str] = field(default_factory=list)


def normalise(backend: str, setting: str, value: Any) -> tuple[Any, str | None]:
    """Map a legacy value to the engine's own name; returns (value, warning or None)."""
    legacy = LEGACY_VALUES.get((backend, setting), {})
    if isinstance(value, str) and value in legacy:
        new = legacy[value]
        return new, f"{setting} {value!r} is not a {backend} name (the image READMEs' Dynamo name); using {new!r}"
    return value, None


def parse_env(env: Mapping[str, str], backend: str) -> EnvOverrides:
    """Read the image READMEs' env vars that apply to `backend`. Raises EnvError on the first bad value."""
    out = EnvOverrides()
    for name, setting, conv, backends in ENV_VARS:
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        if backend not in backends:
            other = next(n for n, s, _, b in ENV_VARS if s == setting and backend in b) if any(
                s == setting and backend in b for _, s, _, b in ENV_VARS) else None
            hint = f"; use {other}" if other else ""
            out.warnings.append(f"{name} is a {'/'.join(backends)} setting and is ignored by {backend}{hint}")
            continue
        value = conv(name, raw)
        value, warning = normalise(backend, setting, value)
        if warning:
            out.warnings.append(f"{name}: {warning}")
        if setting in out.values and out.values[setting] != value:
            raise EnvError(f"{name}={raw!r} conflicts with {out.sources[setting]}={env[out.sources[setting]]!r}: set only one")
        out.values[setting] = value
        out.sources[setting] = name
    return out
