"""The launcher's decisions as named stages, in the plan's style (infra.plan PlanState/STAGES).

Each stage takes and returns the one `LaunchState`:

  read_container_env -> detect_gpus -> make_plan -> route_secrets -> engine_env   (then `finish`: a Launch)

The container env is `LaunchState.env`, given once by the entry point (infra.launcher.main); no stage
reads os.environ, writes a file or starts anything. Every refusal is a LaunchError: one line, exit 2,
before the engine starts. infra.launcher.main.run then does the side effects and execs the engine.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from infra import constants as C
from infra.engine_command import EngineCommand
from infra.launcher.errors import LaunchError
from infra.launcher.redact import redact_argv, redact_env
from infra.launcher.secretroute import (SECRET_SOURCES, SecretRoute, routes_from_plan, secret_dir, secret_file_text,
                                        secret_value)

if TYPE_CHECKING:  # the heavy modules load inside the stages (the launcher starts fast; no Pulumi)
    from infra.launcher.detect import Detection
    from infra.launcher.nvml import Snapshot
    from infra.launcher.ssh import SshPlan
    from infra.plan import LaunchPlan
    from infra.spec import StackSpec

# The launcher's own inputs besides the secrets: never passed through to the engine.
LAUNCHER_VARS = (*SECRET_SOURCES, *C.SSH_ENV_VARS)
# Settings the dry run and the summary show.
SHOWN_SETTINGS = ("max_model_len", "max_num_seqs", "gpu_memory_fraction", "max_num_batched_tokens",
                  "attention_backend", "kv_cache_dtype", "tool_call_parser", "reasoning_parser")
WHY_SETTINGS = ("max_model_len", "max_num_seqs", "gpu_memory_fraction", "attention_backend")


@dataclass
class LaunchState:
    """The one value the launcher's stages pass along: the inputs, then what is decided so far."""

    env: Mapping[str, str] = field(repr=False)  # the container env (the entry point's os.environ)
    backend: str
    snapshot: Snapshot | None = None  # None: read NVML
    config_dir: str = C.CONFIG_DIR
    runtime_dir: str | None = None  # where the secret file goes; None: the env's TMPDIR, else /tmp
    # read_container_env
    show_progress: bool = False
    run_as_root: bool = False
    ssh: SshPlan | None = None
    spec: StackSpec | None = None
    # detect_gpus
    detection: Detection | None = None  # None on the ROCm image (no NVML)
    # make_plan
    plan: LaunchPlan | None = None
    argv: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # absolute path -> content (non-secret)
    # route_secrets
    routes: list[SecretRoute] = field(default_factory=list)
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)
    secret_files: dict[str, str] = field(default_factory=dict, repr=False)  # path -> content (0600)
    # engine_env
    engine_env: dict[str, str] = field(default_factory=dict, repr=False)
    inherited: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Launch:
    """Everything the launcher decided; `argv`/`env` are exactly what gets exec'ed."""

    backend: str
    argv: list[str]
    env: dict[str, str] = field(repr=False)  # holds the routed secrets
    files: dict[str, str]  # absolute path -> content (non-secret rendered files)
    plan: LaunchPlan
    detection: Detection | None
    summary: list[str]
    warnings: list[str] = field(default_factory=list)
    secret_files: dict[str, str] = field(default_factory=dict, repr=False)  # path -> content (0600)
    show_progress: bool = False
    api_key: bool = False
    inherited: set[str] = field(default_factory=set)
    ssh: SshPlan | None = None  # what run() sets up
    run_as_root: bool = False
    runtime_dir: str = "/tmp"  # the container's temp dir (a fallback config dir goes there too)

    def shown_env(self) -> dict[str, str]:
        """The env the launcher set (not inherited from the container), secrets redacted, sorted."""
        return dict(sorted(redact_env({k: v for k, v in self.env.items() if k not in self.inherited}).items()))

    def to_json(self) -> dict[str, Any]:
        """Dry-run JSON: secrets redacted (values and secret file contents)."""
        return {
            "backend": self.backend,
            "argv": redact_argv(self.argv),
            "env": self.shown_env(),
            "inherited_env": sorted(self.inherited),
            "files": dict(sorted(self.files.items())),
            "secret_files": sorted(self.secret_files),
            "gpu": self.plan.gpu, "gpu_count": self.plan.gpu_count, "tensor_parallel": self.plan.tensor_parallel,
            "model": self.plan.model, "port": self.plan.port, "api_key": self.api_key,
            "detected": self.detection.describe() if self.detection else None,
            "settings": {k: self.plan.settings.get(k) for k in SHOWN_SETTINGS},
            "fit": self.plan.fit_figures, "fit_summary": self.plan.fit, "summary": self.summary,
            "warnings": self.warnings,
        }


# ----------------------------------------------------------------------------- read_container_env

def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    from infra.envmap import EnvError, parse_bool  # the image READMEs' true/false spelling, shared with envmap

    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_bool(name, raw)
    except EnvError as exc:
        raise LaunchError(str(exc)) from None


def _check_secret_values(env: Mapping[str, str]) -> list[str]:
    warnings = []
    key = env.get("API_KEY")
    if key is not None and key != "" and (key != key.strip() or any(c.isspace() for c in key)):
        raise LaunchError("API_KEY contains whitespace (a stray newline from a secret file?): strip it; "
                          "clients send it as 'Authorization: Bearer <key>'")
    hf, legacy = env.get("HF_TOKEN"), env.get("HUGGING_FACE_HUB_TOKEN")
    if hf and legacy and hf != legacy:
        warnings.append("HF_TOKEN and HUGGING_FACE_HUB_TOKEN are both set and differ; using HF_TOKEN")
    return warnings


def spec_from_env(env: Mapping[str, str], backend: str):
    """The stack spec: GPTOSS_STACK_SPEC (written by the deploy) or, for a plain `docker run IMAGE` as in
    the image READMEs, `gpu: auto` with the image's backend; the secrets set are those the env holds."""
    from infra.spec import SpecError, StackSpec

    raw = env.get(C.SPEC_ENV)
    if raw:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise LaunchError(f"{C.SPEC_ENV} is not valid JSON ({exc}); it is written by the deploy: redeploy the stack") from None
        if not isinstance(data, dict):
            raise LaunchError(f"{C.SPEC_ENV} holds a JSON {type(data).__name__}, not the stack object the deploy writes: "
                              "redeploy the stack (or unset it for a plain `docker run` as in the image READMEs)")
        if data.get("backend") not in (None, backend):
            raise LaunchError(f"{C.SPEC_ENV}: the stack is for backend {data.get('backend')!r} but this is the {backend} image; "
                              f"use the gptoss-{data.get('backend')} image")
        data["backend"] = backend
    else:
        # The image READMEs' `docker run IMAGE`: everything from the env and the GPU found.
        data = {"backend": backend, "gpu": "auto"}
    secrets = frozenset(key for key, name in C.SECRET_ENV.items() if secret_value(env, name))
    try:
        spec = StackSpec.model_validate({**data, "secrets_set": secrets})
    except SpecError as exc:  # every spec error, pydantic's too (infra.spec.spec_error)
        raise LaunchError(str(exc)) from None
    return spec


def read_container_env(st: LaunchState) -> LaunchState:
    """Check every launcher variable and the spec before anything is detected (bad values fail first)."""
    from infra.envmap import EnvError, parse_env
    from infra.launcher.ssh import plan_ssh

    env = st.env
    if st.backend not in C.BACKENDS:
        raise LaunchError(f"GPTOSS_BACKEND={st.backend!r}: expected one of {', '.join(C.BACKENDS)} (set by the image)")
    st.warnings += _check_secret_values(env)
    st.show_progress = _flag(env, "SHOW_LOADING_PROGRESS", False)
    st.run_as_root = _flag(env, "GPTOSS_RUN_AS_ROOT", False)
    st.ssh = plan_ssh(env)
    st.warnings += st.ssh.warnings
    spec = spec_from_env(env, st.backend)
    if "api_key" in spec.secrets_set and not spec.wants_api_key:
        # The image READMEs: API_KEY set turns auth on. Planned as a given key, so the plan adds the
        # API-key guard and says how the key is passed (its `secrets`), as for any keyed stack.
        spec = spec.model_copy(update={"api_key_mode": "config"})
        st.warnings.append("API_KEY is set, so the API needs the key although the stack says api_key_mode: none; "
                           "unset API_KEY to serve without one")
    st.spec = spec
    try:
        parse_env(env, st.backend)  # bad image-README variables fail first, even where there is no GPU to detect
    except EnvError as exc:
        raise LaunchError(str(exc)) from None
    if st.runtime_dir is None:
        tmp = env.get("TMPDIR") or ""
        st.runtime_dir = tmp if tmp and os.path.isdir(tmp) else "/tmp"
    return st


# ----------------------------------------------------------------------------- detect_gpus

def _rocm_gpu_ids() -> list[str]:
    from infra.catalogue import gpus, platform_for

    return [g.id for g in gpus().values() if platform_for(g) == "rocm"]


def detect_gpus(st: LaunchState) -> LaunchState:
    """The GPUs this container sees (NVML, or the snapshot given): catalogue GPU, count, free memory."""
    from infra.launcher.detect import detect
    from infra.launcher.driver import check_driver
    from infra.launcher.nvml import NvmlUnavailable, read_nvml

    if st.snapshot is None and st.env.get("GPTOSS_PLATFORM") == "rocm":
        # TODO(core): AMD detection (amdsmi) is not implemented; NVML cannot see AMD GPUs, so the
        # stack must declare its GPU and the fit uses the catalogue VRAM.
        if st.spec.gpu == "auto":
            raise LaunchError("gpu: auto needs NVIDIA NVML, which cannot see AMD GPUs: declare the GPU in the stack "
                              f"(gpu: {' or '.join(_rocm_gpu_ids())}) for the ROCm image")
        st.warnings.append("ROCm image: GPU detection skipped (no NVML); using the stack's declared GPU and catalogue VRAM")
        return st
    snapshot = st.snapshot
    if snapshot is None:
        try:
            snapshot = read_nvml()
        except NvmlUnavailable as exc:
            raise LaunchError(str(exc)) from None
    st.detection = detect(snapshot, st.env.get("CUDA_VISIBLE_DEVICES"))
    st.warnings += list(st.detection.notes)
    st.warnings += [w for w in [check_driver(st.detection.driver, st.backend, st.detection.gpu, st.env)] if w]
    return st


# ----------------------------------------------------------------------------- make_plan

def make_plan(st: LaunchState) -> LaunchState:
    """infra.plan.build_plan with the container env as layer 4 and the GPUs detected; its files placed
    in the config dir."""
    from infra.envmap import EnvError
    from infra.fit import FitError
    from infra.plan import Detected, build_plan
    from infra.spec import SpecError

    det = st.detection
    try:
        st.plan = build_plan(st.spec, env_overrides=st.env,
                             detected=None if det is None else Detected(det.gpu, det.count, det.free_bytes_per_gpu))
    except (SpecError, FitError, EnvError) as exc:
        hint = ""
        if det is not None and det.mig and isinstance(exc, FitError):
            hint = (f" (this is one MIG instance, {det.slots[0].name}: a CUDA process uses one instance, so more GPUs "
                    "means a whole GPU without MIG, or use MODEL=openai/gpt-oss-20b)")
        raise LaunchError(str(exc) + hint) from None
    st.warnings += st.plan.warnings
    st.argv = list(st.plan.argv)
    st.files = {f"{st.config_dir}/{name}": text for name, text in st.plan.files.items()}
    if st.config_dir != C.CONFIG_DIR:
        st.argv = [f"{st.config_dir}/{a[len(C.CONFIG_DIR) + 1:]}" if a.startswith(C.CONFIG_DIR + "/") else a
                   for a in st.argv]
    return st


# ----------------------------------------------------------------------------- route_secrets

def route_secrets(st: LaunchState) -> LaunchState:
    """Each secret exactly where the plan's `secrets[].pass_as` sends it (infra.launcher.secretroute)."""
    st.routes = routes_from_plan(st.plan.secrets)
    config: dict[str, str] = {}
    for route in st.routes:
        value = secret_value(st.env, route.source)
        if not value:
            if route.source == "API_KEY":
                raise LaunchError("API_KEY is not set but this stack requires an API key (api_key_mode "
                                  f"{st.spec.api_key_mode!r}, endpoint not loopback-only): pass -e API_KEY=<key> or the deploy's secret")
            raise LaunchError(f"{route.source} is not set but this stack's plan passes it to the engine: "
                              f"pass -e {route.source}=<value> or the deploy's secret")
        if route.kind == "env":
            st.secret_env[route.target] = value
        elif route.kind == "config_key":
            config[route.target] = value
        # kind "launcher": the launcher's own use (sshd, from st.ssh); the engine never sees it
    if config:
        # SGLang merges its --config YAML into its argv parser; read from a 0600 file in a fresh 0700
        # directory instead of the command line. One --config only, so none may come from elsewhere.
        if EngineCommand.parse(st.argv, st.backend).find(("--config",), st.backend):
            raise LaunchError(f"extra_args already pass --config to {st.backend}; remove it so the launcher can pass "
                              "the API key safely")
        path = f"{secret_dir(st.runtime_dir)}/{st.backend}-secret.yaml"
        st.secret_files[path] = secret_file_text(config)
        st.argv += ["--config", path]
    return st


# ----------------------------------------------------------------------------- engine_env

def engine_env(st: LaunchState) -> LaunchState:
    """The engine's env: the plan's (cache dirs, preset env, the spec) < the container's own, less the
    launcher's inputs, plus the secrets routed to env vars."""
    env, plan = st.env, st.plan
    passed = {k: v for k, v in env.items() if k not in LAUNCHER_VARS}
    out = {**plan.env, **passed}
    st.inherited = {k for k in passed if k not in plan.env}
    out.setdefault("TIKTOKEN_ENCODINGS_BASE", C.TIKTOKEN_DIR)
    det = st.detection
    if det is not None:
        # CUDA's default order (fastest first) can differ from NVML's (PCI bus); pin it so "GPU 0" is the
        # GPU the launcher checked and the progress bar watches.
        out.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        if det.mig and not env.get("CUDA_VISIBLE_DEVICES"):
            out["CUDA_VISIBLE_DEVICES"] = det.slots[0].uuid  # the MIG instance that was sized
    for name, value in st.secret_env.items():
        out[name] = value
        # shown as set by the launcher unless the container passed it under this very name
        (st.inherited.add if env.get(name) == value else st.inherited.discard)(name)
    st.engine_env = out
    return st


STAGES = (read_container_env, detect_gpus, make_plan, route_secrets, engine_env)


# ----------------------------------------------------------------------------- finish

def _preset_ids(provenance: Mapping[str, str]) -> list[str]:
    ids = []
    for v in provenance.values():
        if v.startswith("preset "):
            pid = v.split()[1]
            if pid not in ids:
                ids.append(pid)
    return ids


def _auto_tp_rule(model: str) -> str:
    """`tensor_parallel: auto` for this model, in words: the catalogue's auto_tensor_parallel (models.yaml)."""
    from infra.catalogue import get_model

    m = get_model(model)
    return f"{model.rsplit('-', 1)[-1]} uses {'all GPUs' if m.tp_uses_all_gpus else f'{m.auto_tensor_parallel} GPU'}"


def summary(st: LaunchState) -> list[str]:
    spec, plan, s = st.spec, st.plan, st.plan.settings
    presets = _preset_ids(plan.provenance) or ["none (catalogue defaults)"]
    if st.env.get("TENSOR_PARALLEL_SIZE"):
        tp_why = "TENSOR_PARALLEL_SIZE"
    else:
        tp_why = f"auto: {_auto_tp_rule(plan.model)}" if spec.tensor_parallel == "auto" else "stack config"
    det = st.detection
    lines = [
        f"engine  {st.backend} {C.ENGINE_VERSIONS[st.backend]} serving {plan.model}",
        f"GPU     {det.describe() if det else f'{plan.gpu_count} x {plan.gpu} (declared by the stack; not detected)'}",
        f"preset  {', '.join(presets)}",
        f"TP      {plan.tensor_parallel} ({tp_why}) | context {s.get('max_model_len')} | max seqs {s.get('max_num_seqs')}"
        f" | memory fraction {s.get('gpu_memory_fraction')} | attention {s.get('attention_backend')}",
    ]
    if plan.fit:
        lines.append(f"fit     {plan.fit}")
    for k in WHY_SETTINGS:
        if k in plan.provenance:
            lines.append(f"why     {k}: {plan.provenance[k]}")
    for n in plan.notes:
        if n.split(" ", 1)[0] not in WHY_SETTINGS:
            lines.append(f"note    {n}")
    key = next((r for r in st.routes if r.source == "API_KEY"), None)
    covers = ("every route but /health (authguard)" if st.backend == "vllm"
              else "every HTTP route but /health*, /ready*, /metrics*")
    lines.append(f"API     http://{plan.host}:{plan.port}/v1 | key "
                 + (f"on ({key.describe()}, {covers}; never on the command line)" if key else "off"))
    lines.append(f"SSH     {st.ssh.describe()}")
    return lines


def finish(st: LaunchState) -> Launch:
    return Launch(backend=st.backend, argv=st.argv, env=st.engine_env, files=st.files, plan=st.plan,
                  detection=st.detection, summary=summary(st), warnings=st.warnings, secret_files=st.secret_files,
                  show_progress=st.show_progress, api_key=any(r.source == "API_KEY" for r in st.routes),
                  inherited=st.inherited, ssh=st.ssh, run_as_root=st.run_as_root, runtime_dir=st.runtime_dir)


def prepare(env: Mapping[str, str], backend: str, snapshot=None, *, dry_run: bool = False,
            runtime_dir: str | None = None, config_dir: str = C.CONFIG_DIR) -> Launch:
    """Decide everything from `env` (the container env) alone; touches nothing (no files written,
    nothing started). `dry_run` decides nothing differently: the caller prints instead of running."""
    st = LaunchState(env=env, backend=backend, snapshot=snapshot, config_dir=config_dir, runtime_dir=runtime_dir)
    for stage in STAGES:
        st = stage(st)
    return finish(st)
