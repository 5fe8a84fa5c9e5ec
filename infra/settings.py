"""The engine settings table: each setting stated once, the way vLLM's `EngineArgs` states its own.

A row says the setting's type and bounds, the container env vars that set it (the image READMEs'
names, per engine), whether it is a stack key, how vLLM and SGLang are told it (vLLM: the `--config`
key, which is the option without its dashes; SGLang: the option) and how each writes false. Read from
here:

- infra.spec: the stack fields' types and bounds (`spec_type`);
- infra.envmap: the env-var map (`ENV_VARS`) and which env vars change the spec (`SPEC_FIELDS`);
- infra.plan: the settings it resolves (`SETTINGS`) and the engine command (`vllm_command`,
  `sglang_options`);
- infra.spec_reference: the README's settings reference.

Adding a setting: a row here (for a stack key also its field line in StackSpec, typed `setting(name)`;
for a place on the engine's command line other than the end, its name in LAYOUT);
tests/core/test_settings.py checks every consumer picks it up.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Iterable, Literal, Mapping

from pydantic import Field

from infra import constants as C
from infra.engine_command import parse_options

BOTH = C.BACKENDS  # a setting both engines read under one env var


@dataclass(frozen=True)
class Form:
    """How one engine is told a setting."""

    option: str | None = None  # the option; for vLLM also the --config key (without the dashes)
    false: tuple[str, ...] = ()  # what false is written as, on the command line; (): left out (the engine's default)
    omit: tuple[Any, ...] = ()  # values that mean "the engine's own choice": nothing is written
    values: Mapping[str, str] = field(default_factory=dict)  # our value -> the engine's spelling
    positional: bool = False  # vLLM's model: the first argument after `vllm serve`
    expand: Callable[[Any], list[str]] | None = None  # a setting the engine takes as several options


@dataclass(frozen=True)
class Setting:
    name: str
    type: Any  # the value's type (a Literal for a closed set)
    doc: str  # one line for the README's reference
    ge: float | None = None  # bounds, checked on the stack key and the env var alike
    gt: float | None = None
    le: float | None = None
    example: str | None = None  # shown in an env var's error
    choices: Callable[[], Iterable[str]] | None = None  # a closed set read elsewhere (the catalogue's models)
    env: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (container env var, the engines that read it)
    legacy: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # engine -> {other name: its name}
    stack_key: bool = False  # a StackSpec field; its env var changes the spec (re-checked, presets and fit follow)
    plan: bool = True  # resolved by the plan's layers (catalogue default < preset < stack < env)
    vllm: Form | None = None
    sglang: Form | None = None

    def form(self, backend: str) -> Form | None:
        return self.vllm if backend == "vllm" else self.sglang

    @property
    def bounds(self) -> dict[str, float]:
        return {k: v for k, v in (("ge", self.ge), ("gt", self.gt), ("le", self.le)) if v is not None}


def _sglang_eagle3(cfg: Mapping[str, Any]) -> list[str]:
    """SGLang has no --speculative-config: the EAGLE3 draft as its own options (greedy chain, top-k 1)."""
    steps = int(cfg["num_speculative_tokens"])
    return ["--speculative-algorithm", "EAGLE3", "--speculative-draft-model-path", cfg["model"],
            "--speculative-num-steps", str(steps), "--speculative-eagle-topk", "1",
            "--speculative-num-draft-tokens", str(steps + 1)]


def _models() -> Iterable[str]:
    from infra.catalogue import models

    return models()


_PARSERS = {  # the gpt-oss-sglang image and RunPod READMEs' parser names come from NVIDIA Dynamo
    "tool_call_parser": {"sglang": {"harmony": "gpt-oss", "gpt_oss": "gpt-oss", "openai": "gpt-oss"},
                         "vllm": {"harmony": "openai", "gpt_oss": "openai", "gpt-oss": "openai"}},
    "reasoning_parser": {"sglang": {"gpt_oss": "gpt-oss", "harmony": "gpt-oss"},
                         "vllm": {"gpt_oss": "openai_gptoss", "gpt-oss": "openai_gptoss", "harmony": "openai_gptoss"}},
}

TABLE: tuple[Setting, ...] = (
    # What the stack itself is (the plan does not resolve these; env vars for them change the spec).
    Setting("model", str, "The model served (a row of infra/catalogue/models.yaml).", choices=_models,
            env=(("MODEL", BOTH),), stack_key=True, plan=False,
            vllm=Form(positional=True), sglang=Form("--model-path")),
    Setting("tensor_parallel", int, "GPUs one engine spans.", ge=1, le=64,
            env=(("TENSOR_PARALLEL_SIZE", BOTH),), stack_key=True, plan=False,
            vllm=Form("--tensor-parallel-size"), sglang=Form("--tp-size")),
    Setting("host", str, "Address the engine binds in its container.", env=(("HOST", BOTH),), stack_key=True,
            plan=False, vllm=Form("--host"), sglang=Form("--host")),
    Setting("port", int, "Port the engine listens on.", ge=1, le=65535, env=(("PORT", BOTH),), stack_key=True,
            plan=False, vllm=Form("--port"), sglang=Form("--port")),
    Setting("served_model_name", str, "The model name clients send; default: the model id.", stack_key=True,
            plan=False, vllm=Form("--served-model-name"), sglang=Form("--served-model-name")),
    # Settings the plan resolves; this order is launch.json's `settings`.
    Setting("max_model_len", int, "Longest sequence (prompt + output) in tokens.", ge=256, le=1 << 20,
            env=(("MAX_MODEL_LEN", BOTH),), stack_key=True,
            vllm=Form("--max-model-len"), sglang=Form("--context-length")),
    Setting("gpu_memory_fraction", float, "Share of each GPU's memory the engine may use (weights + KV cache); "
            "the rest is headroom for the CUDA context.", gt=C.MIN_MEMORY_FRACTION, le=C.MAX_MEMORY_FRACTION,
            example="0.90", env=(("GPU_MEMORY_UTILIZATION", ("vllm",)), ("MEM_FRACTION_STATIC", ("sglang",))),
            stack_key=True, vllm=Form("--gpu-memory-utilization"), sglang=Form("--mem-fraction-static")),
    Setting("max_num_seqs", int, "Sequences scheduled at once (the engine pages and preempts beyond what the KV cache holds).",
            ge=1, le=4096, env=(("MAX_NUM_SEQS", ("vllm",)), ("MAX_RUNNING_REQUESTS", ("sglang",))), stack_key=True,
            vllm=Form("--max-num-seqs"), sglang=Form("--max-running-requests")),
    Setting("max_num_batched_tokens", int, "Tokens per scheduler step (the prefill chunk).", ge=64, le=1 << 20,
            env=(("MAX_NUM_BATCHED_TOKENS", ("vllm",)),), stack_key=True,
            vllm=Form("--max-num-batched-tokens"), sglang=Form("--chunked-prefill-size")),
    Setting("async_scheduling", bool, "Schedule the next step while the GPU runs this one.",
            env=(("ASYNC_SCHEDULING", ("vllm",)),), stack_key=True,
            vllm=Form("--async-scheduling", false=("--no-async-scheduling",)),
            sglang=Form(false=("--disable-overlap-schedule",))),
    Setting("enable_prefix_caching", bool, "Reuse the KV cache of shared prompt prefixes (SGLang: the radix cache).",
            env=(("ENABLE_PREFIX_CACHING", ("vllm",)),), stack_key=True,
            vllm=Form("--enable-prefix-caching", false=("--no-enable-prefix-caching",)),
            sglang=Form(false=("--disable-radix-cache",))),
    Setting("enable_chunked_prefill", bool, "Split long prompts into max_num_batched_tokens chunks.",
            env=(("ENABLE_CHUNKED_PREFILL", ("vllm",)), ("CHUNKED_PREFILL", ("sglang",))), stack_key=True,
            vllm=Form("--enable-chunked-prefill", false=("--no-enable-chunked-prefill",)),
            # SGLang turns chunked prefill off with a chunk size of -1.
            sglang=Form(false=("--chunked-prefill-size", "-1"))),
    Setting("enable_auto_tool_choice", bool, "Let the model decide when to call tools (tool_choice: auto).",
            env=(("ENABLE_AUTO_TOOL_CHOICE", ("vllm",)),), vllm=Form("--enable-auto-tool-choice")),
    Setting("tool_call_parser", str, "Parser that turns the model's tool calls into API tool calls.",
            env=(("TOOL_CALL_PARSER", ("vllm",)), ("DYN_TOOL_CALL_PARSER", ("sglang",))),
            legacy=_PARSERS["tool_call_parser"], vllm=Form("--tool-call-parser"), sglang=Form("--tool-call-parser")),
    Setting("reasoning_parser", str, "Parser that splits the model's reasoning from its answer.",
            env=(("DYN_REASONING_PARSER", ("sglang",)),), legacy=_PARSERS["reasoning_parser"],
            vllm=Form("--reasoning-parser"), sglang=Form("--reasoning-parser")),
    Setting("kv_cache_dtype", Literal["auto", "fp8"], "KV cache precision (fp8 halves it; Ada, Hopper and newer).",
            stack_key=True, vllm=Form("--kv-cache-dtype", omit=("auto",)),
            # SGLang names the FP8 KV format explicitly; plain "fp8" is not a choice there.
            sglang=Form("--kv-cache-dtype", omit=("auto",), values={"fp8": "fp8_e4m3"})),
    Setting("attention_backend", str, "Attention kernels; unset: the GPU preset's.", env=(("ATTENTION_BACKEND", BOTH),),
            stack_key=True, vllm=Form("--attention-backend", omit=("auto",)),
            sglang=Form("--attention-backend", omit=("auto",))),
    Setting("max_cudagraph_capture_size", int, "Largest batch captured as a CUDA graph.",
            vllm=Form("--max-cudagraph-capture-size")),
    Setting("stream_interval", int, "Tokens per streamed chunk.", vllm=Form("--stream-interval"),
            sglang=Form("--stream-interval")),
    Setting("block_size", int, "KV cache block size in tokens.", vllm=Form("--block-size")),
    Setting("compilation_config", dict, "vLLM's compilation config (JSON).", vllm=Form("--compilation-config")),
    Setting("speculative_config", dict, "Speculative decoding (the EAGLE3 draft).", vllm=Form("--speculative-config"),
            sglang=Form(expand=_sglang_eagle3)),
)

# The order each engine's options are written in (the rendered files are compared with goldens). A row
# missing here is written after these, in table order.
LAYOUT = {
    "vllm": ("model", "host", "port", "served_model_name", "tensor_parallel", "max_model_len", "gpu_memory_fraction",
             "max_num_seqs", "max_num_batched_tokens", "enable_prefix_caching", "enable_chunked_prefill",
             "async_scheduling", "enable_auto_tool_choice", "tool_call_parser", "reasoning_parser", "attention_backend",
             "kv_cache_dtype", "max_cudagraph_capture_size", "stream_interval", "block_size", "compilation_config",
             "speculative_config"),
    "sglang": ("model", "served_model_name", "host", "port", "tensor_parallel", "max_model_len", "gpu_memory_fraction",
               "max_num_seqs", "max_num_batched_tokens", "enable_chunked_prefill", "tool_call_parser",
               "reasoning_parser", "attention_backend", "kv_cache_dtype", "enable_prefix_caching", "async_scheduling",
               "stream_interval", "speculative_config"),
}

BY_NAME: dict[str, Setting] = {s.name: s for s in TABLE}


def plan_settings(table: Iterable[Setting] = TABLE) -> tuple[str, ...]:
    """The settings the plan resolves, in launch.json order."""
    return tuple(s.name for s in table if s.plan)


def spec_fields(table: Iterable[Setting] = TABLE) -> tuple[str, ...]:
    """Stack keys a container env var can set: applying one changes the spec itself."""
    return tuple(s.name for s in table if s.stack_key and s.env)


def spec_type(name: str, table: Iterable[Setting] | None = None) -> Any:
    """The StackSpec field type of a row: its type (None allowed where the plan decides) and bounds."""
    row = BY_NAME[name] if table is None else {s.name: s for s in table}[name]
    typ = row.type | None if row.plan else row.type
    return Annotated[typ, Field(**row.bounds)] if row.bounds else typ


def legacy_values(backend: str, name: str) -> Mapping[str, str]:
    row = BY_NAME.get(name)
    return row.legacy.get(backend, {}) if row else {}


def _laid_out(backend: str, table: Iterable[Setting]) -> list[Setting]:
    rows = [s for s in table if s.form(backend) is not None]
    order = {n: i for i, n in enumerate(LAYOUT[backend])}
    return sorted(rows, key=lambda s: order.get(s.name, len(order)))  # stable: the rest in table order


def _written(form: Form, value: Any) -> bool:
    return value is not None and value not in form.omit and not (isinstance(value, dict) and not value)


def vllm_command(values: Mapping[str, Any], table: Iterable[Setting] = TABLE) -> tuple[list[str], dict[str, Any], list[str]]:
    """(positionals, the --config mapping, command-line options): true booleans in the config file,
    false ones on the command line as their false form (vLLM silently drops `key: false` from a
    config file), dicts as compact JSON."""
    positionals: list[str] = []
    config: dict[str, Any] = {}
    cli: list[str] = []
    for row in _laid_out("vllm", table):
        form, value = row.vllm, values.get(row.name)
        if not _written(form, value):
            continue
        if form.positional:
            positionals.append(str(value))
        elif value is False:
            cli += form.false
        elif form.option:
            key = form.option.removeprefix("--")
            config[key] = json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value
    return positionals, config, cli


def sglang_options(values: Mapping[str, Any], table: Iterable[Setting] = TABLE) -> list[str]:
    """SGLang's options: each setting's option and value; a false form that names an option already
    written replaces its value in place (`--chunked-prefill-size -1`)."""
    opts: dict[str, tuple[str, ...]] = {}

    def put(tokens: list[str]) -> None:  # the table's own tokens (false forms, expansions)
        for opt in parse_options(tokens)[1]:
            opts[opt.name] = opt.values

    for row in _laid_out("sglang", table):
        form, value = row.sglang, values.get(row.name)
        if not _written(form, value):
            continue
        if form.expand is not None:
            put(form.expand(value))
        elif value is False:
            put(list(form.false))
        elif value is True:
            if form.option:
                opts[form.option] = ()
        elif form.option:
            opts[form.option] = (str(form.values.get(value, value)),)
    return [t for name, vals in opts.items() for t in (name, *vals)]


__all__ = ["BOTH", "BY_NAME", "Form", "LAYOUT", "Setting", "TABLE", "legacy_values", "plan_settings",
           "sglang_options", "spec_fields", "spec_type", "vllm_command"]
