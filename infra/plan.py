"""Launch plan: a stack spec (+ the GPU actually found, + container env) -> the exact server command.

Precedence, lowest to highest, for every setting:

  1. catalogue default    infra/catalogue/presets.yaml `defaults[backend]` (the image READMEs' defaults)
  2. GPU preset           every matching row of `presets` (backend x GPU/arch x model x TP x speculative),
                          in file order, so specific rows override generic ones
  3. stack config         fields the stack file sets (`gptoss-stacks:<field>`)
  4. container env        the image READMEs' env vars set on the container (MAX_MODEL_LEN, MEM_FRACTION_STATIC, ...),
                          applied by the in-image launcher through infra.envmap
  5. extra_args           appended last to the engine command line; an option given here removes the
                          same option (and its negation) set by any lower layer

`max_num_seqs` is never lowered to the number of full-length sequences the KV cache holds: both
engines page the cache and preempt or retract when it fills. The fit (infra.fit) refuses a plan only
when one `max_model_len` sequence or the weights cannot fit, and reports KV tokens and full-length
concurrency as facts (launch.json `fit`).

`build_plan` is a pipeline; each stage takes and returns the one `PlanState`:

  apply_container_env -> resolve_gpu -> layer_presets -> layer_stack -> size_memory -> render_engine_args -> assemble
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from infra import constants as C
from infra.catalogue import GPU, base_image, defaults, drafts, generic_warning, matching_presets
from infra.engine_command import LAUNCHERS, EngineCommand, canonical_option, is_append_option, option_key, parse_options
from infra.envmap import SPEC_FIELDS, normalise, parse_env
from infra.fit import FitError, FitInputs, FitReport, check_fit, vllm_extra_retained_tokens
from infra.settings import plan_settings, sglang_options, vllm_command
from infra.spec import SpecError, StackSpec, shown_arg
from infra.templating import render_template

# Settings the plan resolves (engine-neutral names; the settings table). Spec fields with these names are layer 3.
SETTINGS = plan_settings()
# Stack fields that are plan inputs but not engine settings.
PLAN_FACTS = ("profile",)

VLLM_CONFIG_FILE = "vllm.yaml"
SGLANG_ARGS_FILE = "sglang.args"


@dataclass(frozen=True)
class Detected:
    """What the launcher found on the host (NVML), or what a stack declares."""

    gpu: GPU
    count: int
    free_bytes_per_gpu: int | None = None


@dataclass
class LaunchPlan:
    stack: str
    backend: str
    model: str
    gpu: str
    gpu_count: int
    tensor_parallel: int
    host: str
    port: int
    argv: list[str]
    env: dict[str, str]
    files: dict[str, str]
    secrets: list[dict[str, Any]]
    settings: dict[str, Any]
    provenance: dict[str, str]
    image: dict[str, Any]
    fit: str | None  # the one-line summary
    fit_figures: dict[str, Any] | None = None  # launch.json `fit`
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    weights: str = ""  # the Hugging Face repo the engine loads (a GPU preset may swap the model's)

    @property
    def secret_env(self) -> list[str]:
        return [s["env"] for s in self.secrets]

    def to_launch_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack, "backend": self.backend, "model": self.model, "gpu": self.gpu,
            "gpu_count": self.gpu_count, "tensor_parallel": self.tensor_parallel, "host": self.host,
            "port": self.port, "argv": list(self.argv), "env": dict(sorted(self.env.items())),
            "files": dict(sorted(self.files.items())), "config_dir": C.CONFIG_DIR,
            "secret_env": self.secret_env, "secrets": self.secrets,
            "settings": {k: self.settings[k] for k in SETTINGS if k in self.settings},
            "provenance": dict(sorted(self.provenance.items())), "image": self.image,
            "fit": self.fit_figures, "fit_summary": self.fit,
            "notes": list(self.notes), "warnings": list(self.warnings),
        }


def _facts(spec: StackSpec, gpu: GPU | None, tp: int) -> dict[str, Any]:
    return {"backend": spec.backend, "model": spec.model, "gpu": gpu.id if gpu else None,
            "arch": gpu.arch if gpu else None, "tensor_parallel": tp, "speculative": spec.speculative,
            "profile": spec.profile}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _values(weights: str, s: Mapping[str, Any], spec: StackSpec, tp: int, served: str) -> dict[str, Any]:
    """Every value the engine command states: the resolved settings and what the stack itself is."""
    return {**s, "model": weights, "tensor_parallel": tp, "host": spec.host, "port": spec.port,
            "served_model_name": served}


def _vllm_argv(weights: str, s: Mapping[str, Any], spec: StackSpec, tp: int, served: str) -> tuple[list[str], dict[str, str]]:
    """vLLM: model positional, everything else in a --config YAML; false booleans on the CLI as --no-x
    (vLLM silently drops `key: false` from a config file). The table (infra.settings) says which is which."""
    positionals, cfg, negatives = vllm_command(_values(weights, s, spec, tp, served))
    text = render_template("vllm.yaml.j2", stack=spec.stack, config=cfg)
    argv = [*LAUNCHERS["vllm"][0], *positionals, "--config", f"{C.CONFIG_DIR}/{VLLM_CONFIG_FILE}", *negatives]
    if spec.wants_api_key:
        argv += api_key_guard_args("vllm")
    return argv, {VLLM_CONFIG_FILE: text}


def api_key_guard_args(backend: str) -> list[str]:
    """Engine options that make the API key cover every route, not only the engine's own prefixes.
    vLLM: the project's ASGI guard (`--middleware`, infra/launcher/authguard.py). SGLang: none needed;
    its `--api-key` check (sglang/srt/utils/auth.py, 0.5.23) covers every HTTP route but /health*,
    /ready* and /metrics* (/health_generate among them: a one-token generation of its own prompt) and
    leaves websockets (/v1/realtime, transcription only) unchecked; the README says so."""
    return ["--middleware", C.VLLM_AUTH_MIDDLEWARE] if backend == "vllm" else []


def _sglang_argv(weights: str, s: Mapping[str, Any], spec: StackSpec, tp: int, served: str) -> tuple[list[str], dict[str, str]]:
    argv = [*LAUNCHERS["sglang"][0], *sglang_options(_values(weights, s, spec, tp, served))]
    return argv, {SGLANG_ARGS_FILE: _sglang_args_file(spec.stack, argv)}


def _sglang_args_file(stack: str, argv: list[str]) -> str:
    return render_template("sglang.args.j2", stack=stack, args=EngineCommand.parse(argv, "sglang").args)


def merge_extra_args(argv: list[str], files: dict[str, str], extra: list[str], backend: str,
                     stack: str = "") -> tuple[list[str], dict[str, str]]:
    """Append extra_args; drop the same option (any alias, or its --no-/--disable- form) set by lower
    layers, from the command line and from vLLM's --config file. Options the engine accumulates
    (--middleware) are added to, never replaced, so extra_args cannot drop the API-key guard."""
    if not extra:
        return argv, files
    overridden = {o.key(backend) for o in parse_options(extra)[1] if o.name and not is_append_option(o.name, backend)}
    out = EngineCommand.parse(argv, backend).without(overridden, backend).argv
    if backend == "vllm" and VLLM_CONFIG_FILE in files:
        import yaml

        text = files[VLLM_CONFIG_FILE]
        cfg = yaml.safe_load(text) or {}
        kept = {k: v for k, v in cfg.items() if option_key(f"--{k}", backend) not in overridden}
        if kept != cfg:
            files = {**files, VLLM_CONFIG_FILE: render_template("vllm.yaml.j2", stack=stack, config=kept)}
    return out + list(extra), files


def _checked_extra_args(spec: StackSpec, warnings: list[str]) -> list[str]:
    """extra_args against the engine's real option list (the committed parser snapshot, diffed
    against the live parser by `invoke check-flags --diff`), single-dash options (`-dp`) included: an
    option the engine removed is dropped with its values and a warning (an old stack keeps starting);
    an option it never had is refused with a guess."""
    from infra.flagcheck.snapshot import REMOVED, known_options

    known = known_options(spec.backend)
    removed = REMOVED.get(spec.backend, {})
    positionals, options = parse_options(spec.extra_args)
    out = list(positionals)
    for opt in options:
        if opt.name in removed:
            warnings.append(f"extra_args: {opt.name} dropped: {removed[opt.name]}")
            continue
        if opt.name and canonical_option(opt.name, spec.backend) not in known:
            close = difflib.get_close_matches(opt.name, sorted(known), n=1, cutoff=0.6)
            launcher = " ".join(LAUNCHERS[spec.backend][0])
            raise SpecError(f"extra_args[{opt.index}]", shown_arg(opt.tokens[0]),
                            f"is not a {spec.backend} {C.ENGINE_VERSIONS[spec.backend]} option "
                            "(exact names only; the engine would stop at start)",
                            f"did you mean {close[0]!r}?" if close else f"see `{launcher} --help` for its options",
                            stack=spec.stack or None)
        out += opt.tokens
    return out


@dataclass
class PlanState:
    """The one value the plan's stages pass along: what is decided so far."""

    spec: StackSpec
    detected: Detected | None
    env_overrides: Mapping[str, str]
    env: Any = None  # infra.envmap.ParsedEnv, set by apply_container_env
    gpu: GPU | None = None
    gpu_count: int = 1
    tp: int = 1
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    env_vars: dict[str, str] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    weights: str = ""
    report: FitReport | None = None
    argv: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def refuse(self, field_name: str, value: Any, problem: str, fix: str) -> SpecError:
        return SpecError(field_name, value, problem, fix, stack=self.spec.stack or None)


def apply_container_env(st: PlanState) -> PlanState:
    """Layer 4 can change the spec itself (model, TP, context...): apply it first, re-check the spec."""
    spec, detected = st.spec, st.detected
    if detected is not None and spec.gpu == "auto" and detected.count > spec.gpu_count:
        # With gpu: auto the container gets whatever GPUs the host has; TENSOR_PARALLEL_SIZE may use them.
        spec = spec.model_copy(update={"gpu_count": detected.count})
    st.env = parse_env(st.env_overrides, spec.backend)
    st.warnings += st.env.warnings
    spec_updates = {k: v for k, v in st.env.values.items() if k in SPEC_FIELDS}
    st.spec = spec.model_copy(update=spec_updates)  # validated: infra.spec._Checked.model_copy
    return st


def resolve_gpu(st: PlanState) -> PlanState:
    """Which GPU and how many: the stack's, checked against what the launcher detected, or the
    detected one for `gpu: auto`. (The hook for GPUs the catalogue does not know.)"""
    spec, detected = st.spec, st.detected
    gpu, gpu_count = spec.gpu_info, spec.gpu_count
    if detected is not None:
        if gpu is not None and detected.gpu.id != gpu.id:
            raise st.refuse("gpu", spec.gpu, f"the stack declares {gpu.name} but this host has {detected.gpu.name}",
                            f"set gpu: {detected.gpu.id} (or gpu: auto) in the stack")
        if detected.count < spec.resolved_tp:
            raise st.refuse("tensor_parallel", spec.resolved_tp,
                            f"needs {spec.resolved_tp} GPUs but {detected.count} were found",
                            f"give the container {spec.resolved_tp} GPUs or set TENSOR_PARALLEL_SIZE={detected.count}")
        gpu = detected.gpu
        if gpu.generic:  # not in gpus.yaml: its arch preset and NVML memory (infra.catalogue.generic_gpu)
            st.warnings.append(generic_warning(gpu, spec.backend, spec.model))
        if spec.gpu == "auto":
            gpu_count = detected.count if spec.tp_uses_all_gpus else spec.gpu_count
            gpu_count = max(gpu_count, spec.resolved_tp)
            # the GPU-specific rules (fp8 on Ampere, FLASH_ATTN...) now apply
            spec = spec.model_copy(update={"gpu": gpu.id, "gpu_count": gpu_count})
    elif spec.gpu == "auto":
        st.notes.append("gpu is auto: the launcher picks the GPU preset and checks the fit on the host it starts on")
    st.spec, st.gpu, st.gpu_count, st.tp = spec, gpu, gpu_count, spec.resolved_tp
    return st


def layer_presets(st: PlanState) -> PlanState:
    """Layers 1 and 2: the backend's defaults, then every matching preset row in file order."""
    base = defaults(st.spec.backend)
    for k, v in base.settings.items():
        st.settings[k], st.provenance[k] = v, f"default ({base.source})"
    st.weights = st.spec.model
    for preset in matching_presets(_facts(st.spec, st.gpu, st.tp)):
        for k, v in preset.settings.items():
            st.settings[k], st.provenance[k] = v, f"preset {preset.id} ({preset.source})"
        st.env_vars.update(preset.env)
        st.limits.update(preset.limits)
        st.weights = preset.weights.get(st.spec.model, st.weights)
        if preset.notes:
            st.notes.append(f"preset {preset.id}: {preset.notes.strip()}")
    return st


def layer_stack(st: PlanState) -> PlanState:
    """Layers 3 and 4: what the stack file sets, then container env settings that are flags only."""
    spec, env = st.spec, st.env
    for k in SETTINGS:
        v = getattr(spec, k, None)
        if v is not None:
            v, warning = normalise(spec.backend, k, v)
            if warning:
                st.warnings.append(warning)
            source = env.sources.get(k)
            st.settings[k], st.provenance[k] = v, (f"container env {source}" if source else "stack config")
    for k, v in env.values.items():
        if k not in SPEC_FIELDS:
            st.settings[k], st.provenance[k] = v, f"container env {env.sources[k]}"
    s, limits = st.settings, st.limits
    if "gpu_memory_fraction_max" in limits and s["gpu_memory_fraction"] > limits["gpu_memory_fraction_max"]:
        raise st.refuse("gpu_memory_fraction", s["gpu_memory_fraction"],
                        f"is above {limits['gpu_memory_fraction_max']} for this GPU and TP (the vLLM gpt-oss recipe: OOM)",
                        f"set gpu_memory_fraction: {limits['gpu_memory_fraction_max']}")
    allowed = limits.get("attention_backends")
    if allowed and s.get("attention_backend") not in (None, "auto", *allowed):
        raise st.refuse("attention_backend", s["attention_backend"],
                        f"is not one {spec.backend} accepts for gpt-oss (it stops at start)",
                        f"use one of {', '.join(allowed)} or auto")
    if s["max_model_len"] > spec.model_info.max_position_embeddings:
        s["max_model_len"] = spec.model_info.max_position_embeddings
        st.notes.append(f"max_model_len capped at the model's maximum ({spec.model_info.max_position_embeddings})")
    return st


def size_memory(st: PlanState) -> PlanState:
    """Predict the engine's memory accounting; refuse only when one full-length sequence cannot fit."""
    if st.gpu is None:
        return st
    s, spec = st.settings, st.spec
    draft = drafts().get((s.get("speculative_config") or {}).get("model", ""))
    st.report = check_fit(FitInputs(
        backend=spec.backend, model=spec.model_info, gpu=st.gpu, tp=st.tp, max_model_len=s["max_model_len"],
        max_num_seqs=s["max_num_seqs"], max_num_batched_tokens=s["max_num_batched_tokens"],
        fraction=s["gpu_memory_fraction"], kv_dtype=s.get("kv_cache_dtype") or "auto",
        cudagraph_capture_size=s.get("max_cudagraph_capture_size"), attention_backend=s.get("attention_backend"),
        draft=draft, free_bytes_per_gpu=st.detected.free_bytes_per_gpu if st.detected else None,
        async_scheduling=bool(s["async_scheduling"]),
        extra_retained_tokens=vllm_extra_retained_tokens(s.get("speculative_config")),
        speculative_tokens=int((s.get("speculative_config") or {}).get("num_speculative_tokens") or 0)))
    if not st.report.fits:
        if spec.fit_check == "strict" or not st.report.weights_fit:
            raise FitError(st.report)
        st.warnings.append(f"fit_check warn: {st.report.message()}")
    return st


def builtin_tool_args(spec: StackSpec) -> list[str]:
    """The engines' `--tool-server` for the stack's built-in tools (infra/builtin_tools.py), between the target's
    options and extra_args."""
    from infra.builtin_tools import engine_args

    return engine_args(spec)


def render_engine_args(st: PlanState) -> PlanState:
    """The engine command line and its config file, then extra_args (layer 5)."""
    spec = st.spec
    st.warnings += spec.exposure_warnings()
    extra = _checked_extra_args(spec, st.warnings)
    served = spec.served_model_name or spec.model
    build = _vllm_argv if spec.backend == "vllm" else _sglang_argv
    st.argv, st.files = build(st.weights, st.settings, spec, st.tp, served)
    # The deployment target's own engine options (kubernetes: pinned revision, graceful stop) sit
    # between the plan's settings and extra_args, which still have the last word.
    target_args, tool_args = spec.target_engine_args(st.weights), builtin_tool_args(spec)
    for args, source in ((target_args, f"target {spec.target}"), (tool_args, "builtin_tools.python"), (extra, "extra_args")):
        if args:
            st.argv, st.files = merge_extra_args(st.argv, st.files, args, spec.backend, spec.stack)
            for o in parse_options(args)[1]:
                if o.name:
                    st.provenance[f"argv:--{o.key(spec.backend)}"] = source
    if spec.backend == "sglang" and (extra or target_args or tool_args):
        st.files = {SGLANG_ARGS_FILE: _sglang_args_file(spec.stack, st.argv)}
    return st


def _secrets(spec: StackSpec) -> list[dict[str, Any]]:
    secrets: list[dict[str, Any]] = []
    if spec.wants_api_key:
        # vLLM reads VLLM_API_KEY; SGLang has no env var for it, so the launcher writes it into a 0600
        # --config file (key `api-key`). Either way it stays out of `ps` and out of argv.
        secrets.append({"env": "API_KEY", "pass_as": {"env": "VLLM_API_KEY"} if spec.backend == "vllm" else {"config_key": "api-key"}})
    if "hf_token" in spec.secrets_set:
        secrets.append({"env": "HF_TOKEN", "pass_as": {"env": "HF_TOKEN"}})
    if "ssh_password" in spec.secrets_set:
        # the launcher's own (sshd's root password), never the engine's
        secrets.append({"env": "SSH_PASSWORD", "pass_as": {"launcher": "sshd"}})
    return secrets


def _image(spec: StackSpec, gpu: GPU | None) -> dict[str, Any]:
    img = spec.image
    catalogue_base = base_image(spec.backend, gpu)
    version = img.engine_version or C.ENGINE_VERSIONS[spec.backend]
    return {
        "base_image": img.base_image or f"{catalogue_base['image']}:{catalogue_base['tag']}",
        "base_digest": img.base_digest or catalogue_base["digest"],
        "platform": catalogue_base["platform"],
        "engine_version": version,
        "repository": img.repository or f"gptoss-{spec.backend}",
        "tag": img.tag or f"{version}-{catalogue_base['platform']}",
        "registry": img.registry,
        "push": img.push if img.push is not None else bool(img.registry),
    }


def assemble(st: PlanState) -> LaunchPlan:
    spec, s = st.spec, st.settings
    env_out = {**C.CACHE_ENV, **st.env_vars, **spec.env,
               C.SPEC_ENV: _json(spec.model_dump(mode="json", exclude={"secrets_set"}, exclude_none=True))}
    notes = list(st.notes)
    if st.report is not None:
        r = st.report
        notes.append(f"KV cache: {r.kv_tokens:,} tokens = {r.max_concurrency:.2f} sequences of {s['max_model_len']:,} "
                     f"tokens at once; max_num_seqs {s['max_num_seqs']} admits more, the engine pages and preempts")
        notes += r.notes
    for k in ("max_model_len", "max_num_seqs", "gpu_memory_fraction", "attention_backend"):
        notes.append(f"{k} = {s.get(k)}: {st.provenance.get(k)}")
    return LaunchPlan(
        stack=spec.stack, backend=spec.backend, model=spec.model, gpu=st.gpu.id if st.gpu else "auto",
        gpu_count=st.gpu_count, tensor_parallel=st.tp, host=spec.host, port=spec.port, argv=st.argv,
        env=env_out, files=st.files, secrets=_secrets(spec), settings=s, provenance=st.provenance,
        image=_image(spec, st.gpu), fit=st.report.message() if st.report else None,
        fit_figures=st.report.figures() if st.report else None, notes=notes, warnings=st.warnings,
        weights=st.weights,
    )


STAGES = (apply_container_env, resolve_gpu, layer_presets, layer_stack, size_memory, render_engine_args)


def build_plan(
    spec: StackSpec,
    *,
    env_overrides: Mapping[str, str] | None = None,
    detected: Detected | None = None,
) -> LaunchPlan:
    """Resolve every setting through the five layers and produce the exact launch plan."""
    st = PlanState(spec=spec, detected=detected, env_overrides=env_overrides or {})
    for stage in STAGES:
        st = stage(st)
    return assemble(st)


__all__ = ["Detected", "LaunchPlan", "PlanState", "STAGES", "api_key_guard_args", "build_plan", "merge_extra_args",
           "resolve_gpu", "SETTINGS"]
