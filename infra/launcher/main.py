"""The image entrypoint: container env + the GPUs found -> a checked launch plan -> exec the engine.

    python -m infra.launcher [--dry-run] [--gpu-snapshot FILE] [--json] [--backend vllm|sglang]
    python -m infra.launcher --print-snapshot      # this host's GPUs in the snapshot format

Steps (all refusals happen before the engine starts: one line on stderr, exit code 2):
1. the stack spec: GPTOSS_STACK_SPEC (written by the deploy from the stack file) or, for a plain
   `docker run IMAGE` as in the image READMEs, `gpu: auto` with the image's backend;
2. GPUs from NVML (or a snapshot file) -> catalogue GPU, count, free memory (infra.launcher.detect);
3. infra.plan.build_plan with the container env as layer 4 (infra.envmap reads the image READMEs' variables),
   the detected GPU (a declared GPU that differs is refused unless the stack says auto) and the
   memory really free (fit check);
4. secrets: the API key goes to vLLM as VLLM_API_KEY and to SGLang in a 0600 --config file, never on
   the command line (`ps`); nothing secret is printed;
5. optional SSH (root only), drop to the unprivileged user, then exec the engine (os.execvpe) so it
   keeps this PID and gets signals; with SHOW_LOADING_PROGRESS=true a forked monitor shows progress
   and runs the start-up self-check (infra.launcher.selfcheck: the plan's fit vs the engine's own log).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex
from typing import Any, Mapping

from infra import constants as C
from infra.engine_command import REDACTED, redact_argv  # one parser of engine options
from infra.launcher.errors import EXIT_CONFIG, EXIT_ENGINE_MISSING, LaunchError

# Env vars whose value must never be printed. Anything else containing these words is redacted too.
SECRET_VARS = ("API_KEY", "VLLM_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "SSH_PASSWORD")
_SECRET_WORDS = {"TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "APIKEY", "CREDENTIALS"}
# Not for the engine: the launcher consumes them.
LAUNCHER_ONLY_VARS = ("API_KEY", *C.SSH_ENV_VARS, "HUGGING_FACE_HUB_TOKEN")


def is_secret_name(name: str) -> bool:
    # Whole words only: TIKTOKEN_ENCODINGS_BASE is not a token, HF_TOKEN is.
    up = name.upper()
    return up in SECRET_VARS or bool(_SECRET_WORDS & set(up.replace("-", "_").split("_")))


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if is_secret_name(k) and v else v) for k, v in env.items()}


def _flag(name: str, raw: str | None, default: bool) -> bool:
    from infra.envmap import EnvError, parse_bool  # the image READMEs' true/false spelling, shared with envmap

    if raw is None or raw == "":
        return default
    try:
        return parse_bool(name, raw)
    except EnvError as exc:
        raise LaunchError(str(exc)) from None


@dataclass
class Launch:
    """Everything the launcher decided; `argv`/`env` are exactly what gets exec'ed."""

    backend: str
    argv: list[str]
    env: dict[str, str]
    files: dict[str, str]  # absolute path -> content (non-secret rendered files)
    plan: Any
    detection: Any
    summary: list[str]
    warnings: list[str] = field(default_factory=list)
    secret_files: dict[str, str] = field(default_factory=dict, repr=False)  # path -> content (0600)
    show_progress: bool = False
    api_key: bool = False
    inherited: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        """Dry-run JSON: secrets redacted (values and secret file contents)."""
        return {
            "backend": self.backend,
            "argv": redact_argv(self.argv),
            "env": dict(sorted(redact_env({k: v for k, v in self.env.items() if k not in self.inherited}).items())),
            "inherited_env": sorted(self.inherited),
            "files": dict(sorted(self.files.items())),
            "secret_files": sorted(self.secret_files),
            "gpu": self.plan.gpu, "gpu_count": self.plan.gpu_count, "tensor_parallel": self.plan.tensor_parallel,
            "model": self.plan.model, "port": self.plan.port, "api_key": self.api_key,
            "detected": self.detection.describe() if self.detection else None,
            "settings": {k: self.plan.settings.get(k) for k in (
                "max_model_len", "max_num_seqs", "gpu_memory_fraction", "max_num_batched_tokens",
                "attention_backend", "kv_cache_dtype", "tool_call_parser", "reasoning_parser")},
            "fit": self.plan.fit_figures, "fit_summary": self.plan.fit, "summary": self.summary,
            "warnings": self.warnings,
        }


# ----------------------------------------------------------------------------- spec

def spec_from_env(env: Mapping[str, str], backend: str):
    from pydantic import ValidationError

    from infra.spec import SpecError, StackSpec, shown

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
    secrets = set()
    if env.get("API_KEY"):
        secrets.add("api_key")
    if env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN"):
        secrets.add("hf_token")
    if env.get("SSH_PASSWORD"):
        secrets.add("ssh_password")
    try:
        spec = StackSpec.model_validate({**data, "secrets_set": frozenset(secrets)})
        spec._cross_check()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise LaunchError(f"{C.SPEC_ENV}: {loc} = {shown(first.get('input'))}: {first['msg']}; redeploy with a valid stack") from None
    except SpecError as exc:
        raise LaunchError(str(exc)) from None
    return spec


# ----------------------------------------------------------------------------- plan

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


def _preset_ids(provenance: Mapping[str, str]) -> list[str]:
    ids = []
    for v in provenance.values():
        if v.startswith("preset "):
            pid = v.split()[1]
            if pid not in ids:
                ids.append(pid)
    return ids


def prepare(env: Mapping[str, str], backend: str, snapshot=None, *, dry_run: bool = False,
            runtime_dir: str | None = None, config_dir: str = C.CONFIG_DIR) -> Launch:
    """Decide everything; touches nothing (no files written, nothing started)."""
    from infra.envmap import EnvError, parse_env
    from infra.fit import FitError
    from infra.launcher.detect import detect
    from infra.launcher.nvml import NvmlUnavailable, read_nvml
    from infra.plan import Detected, build_plan, with_api_key_guard
    from infra.spec import SpecError

    if backend not in C.BACKENDS:
        raise LaunchError(f"GPTOSS_BACKEND={backend!r}: expected one of {', '.join(C.BACKENDS)} (set by the image)")
    warnings = _check_secret_values(env)
    show_progress = _flag("SHOW_LOADING_PROGRESS", env.get("SHOW_LOADING_PROGRESS"), False)
    _flag("GPTOSS_RUN_AS_ROOT", env.get("GPTOSS_RUN_AS_ROOT"), False)  # checked now, used by run()
    from infra.launcher.ssh import plan_ssh

    ssh = plan_ssh(env)
    warnings += ssh.warnings

    spec = spec_from_env(env, backend)
    try:
        parse_env(env, backend)  # bad image-README variables fail first, even where there is no GPU to detect
    except EnvError as exc:
        raise LaunchError(str(exc)) from None
    detection = None
    if snapshot is None and env.get("GPTOSS_PLATFORM") == "rocm":
        # TODO(core): AMD detection (amdsmi) is not implemented; NVML cannot see AMD GPUs, so the
        # stack must declare its GPU and the fit uses the catalogue VRAM.
        if spec.gpu == "auto":
            raise LaunchError("gpu: auto needs NVIDIA NVML, which cannot see AMD GPUs: declare the GPU in the stack "
                              "(gpu: mi300x-192gb or mi355x-288gb) for the ROCm image")
        warnings.append("ROCm image: GPU detection skipped (no NVML); using the stack's declared GPU and catalogue VRAM")
    else:
        if snapshot is None:
            try:
                snapshot = read_nvml()
            except NvmlUnavailable as exc:
                raise LaunchError(str(exc)) from None
        detection = detect(snapshot, env.get("CUDA_VISIBLE_DEVICES"))
        warnings += list(detection.notes)
        from infra.launcher.driver import check_driver

        warnings += [w for w in [check_driver(detection.driver, backend, detection.gpu, env)] if w]
    try:
        plan = build_plan(spec, env_overrides=env, detected=None if detection is None else
                          Detected(detection.gpu, detection.count, detection.free_bytes_per_gpu))
    except (SpecError, FitError, EnvError) as exc:
        hint = ""
        if detection is not None and detection.mig and isinstance(exc, FitError):
            hint = (f" (this is one MIG instance, {detection.slots[0].name}: a CUDA process uses one instance, so more GPUs "
                    "means a whole GPU without MIG, or use MODEL=openai/gpt-oss-20b)")
        raise LaunchError(str(exc) + hint) from None
    warnings += plan.warnings

    # Engine env: the plan's env (cache dirs, preset env, the spec) < the container's own env.
    engine_env = {**plan.env, **env}
    inherited = {k for k in env if k not in plan.env}
    engine_env.setdefault("TIKTOKEN_ENCODINGS_BASE", C.TIKTOKEN_DIR)
    if detection is not None:
        # CUDA's default order (fastest first) can differ from NVML's (PCI bus); pin it so "GPU 0" is the
        # GPU the launcher checked and the progress bar watches.
        engine_env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        if detection.mig and not env.get("CUDA_VISIBLE_DEVICES"):
            engine_env["CUDA_VISIBLE_DEVICES"] = detection.slots[0].uuid  # the MIG instance that was sized
    inherited.discard("TIKTOKEN_ENCODINGS_BASE") if "TIKTOKEN_ENCODINGS_BASE" not in env else None
    for name in LAUNCHER_ONLY_VARS:
        engine_env.pop(name, None)
        inherited.discard(name)
    if env.get("HUGGING_FACE_HUB_TOKEN") and not env.get("HF_TOKEN"):
        engine_env["HF_TOKEN"] = env["HUGGING_FACE_HUB_TOKEN"]  # the image READMEs' name; huggingface_hub reads HF_TOKEN
        inherited.discard("HF_TOKEN")

    argv = list(plan.argv)
    files = {f"{config_dir}/{name}": text for name, text in plan.files.items()}
    if config_dir != C.CONFIG_DIR:
        argv = [f"{config_dir}/{a[len(C.CONFIG_DIR) + 1:]}" if a.startswith(C.CONFIG_DIR + "/") else a for a in argv]
    secret_files: dict[str, str] = {}
    api_key = env.get("API_KEY") or ""
    wants_key = any(s["env"] == "API_KEY" for s in plan.secrets)
    if wants_key and not api_key:
        raise LaunchError("API_KEY is not set but this stack requires an API key (api_key_mode "
                          f"{spec.api_key_mode!r}, endpoint not loopback-only): pass -e API_KEY=<key> or the deploy's secret")
    if api_key and not wants_key:
        wants_key = True  # the image READMEs: API_KEY set -> auth on
    if wants_key:
        if backend == "vllm":
            engine_env["VLLM_API_KEY"] = api_key  # vLLM reads it; keeps the key out of argv/ps
            inherited.discard("VLLM_API_KEY")
            argv = with_api_key_guard(argv, backend)  # the key on every route, not only /v1 (authguard)
        else:
            # SGLang has no env var for it; its --config YAML (merged into its argv parser) is read
            # from a 0600 file in a fresh 0700 directory instead of the command line.
            if any(a.split("=", 1)[0] == "--config" for a in argv):
                raise LaunchError("extra_args already pass --config to SGLang; remove it so the launcher can pass the API key safely")
            path = f"{secret_dir(runtime_dir)}/sglang-secret.yaml"
            secret_files[path] = "api-key: " + json.dumps(api_key) + "\n"
            argv += ["--config", path]

    summary = _summary(spec, plan, detection, backend, wants_key, ssh.describe(), env)
    return Launch(backend=backend, argv=argv, env=engine_env, files=files, plan=plan, detection=detection,
                  summary=summary, warnings=warnings, secret_files=secret_files, show_progress=show_progress,
                  api_key=wants_key, inherited=inherited)


def _summary(spec, plan, detection, backend, api_key, ssh, env) -> list[str]:
    s = plan.settings
    presets = _preset_ids(plan.provenance) or ["none (catalogue defaults)"]
    if spec.tensor_parallel == "auto":
        tp_why = "TENSOR_PARALLEL_SIZE" if env.get("TENSOR_PARALLEL_SIZE") else (
            f"auto: {'120b uses all GPUs' if plan.model.endswith('120b') else '20b uses 1 GPU'}")
    else:
        tp_why = "stack config"
    if env.get("TENSOR_PARALLEL_SIZE"):
        tp_why = "TENSOR_PARALLEL_SIZE"
    lines = [
        f"engine  {backend} {C.ENGINE_VERSIONS[backend]} serving {plan.model}",
        f"GPU     {detection.describe() if detection else f'{plan.gpu_count} x {plan.gpu} (declared by the stack; not detected)'}",
        f"preset  {', '.join(presets)}",
        f"TP      {plan.tensor_parallel} ({tp_why}) | context {s.get('max_model_len')} | max seqs {s.get('max_num_seqs')}"
        f" | memory fraction {s.get('gpu_memory_fraction')} | attention {s.get('attention_backend')}",
    ]
    if plan.fit:
        lines.append(f"fit     {plan.fit}")
    for k in ("max_model_len", "max_num_seqs", "gpu_memory_fraction", "attention_backend"):
        if k in plan.provenance:
            lines.append(f"why     {k}: {plan.provenance[k]}")
    for n in plan.notes:
        if not n.split(" ", 1)[0] in ("max_model_len", "max_num_seqs", "gpu_memory_fraction", "attention_backend"):
            lines.append(f"note    {n}")
    how = ("VLLM_API_KEY env, every route but /health (authguard)" if backend == "vllm"
           else "0600 --config file, every HTTP route but /health*, /ready*, /metrics*")
    lines.append(f"API     http://{plan.host}:{plan.port}/v1 | key {f'on ({how}; never on the command line)' if api_key else 'off'}")
    lines.append(f"SSH     {ssh}")
    return lines


# ----------------------------------------------------------------------------- side effects

def _write(path: str, text: str, mode: int, owner: tuple[int, int] | None) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(p, mode)
    if owner and os.geteuid() == 0:
        os.chown(p, *owner)


SECRET_DIR_PREFIX = "gptoss-secrets-"


def secret_dir(runtime_dir: str | None = None) -> str:
    """A new, unguessable directory name for this start's secret file, in the container's own temp
    dir ($TMPDIR or /tmp). Never /dev/shm: with --ipc=host that is the host's, shared by every stack."""
    base = os.path.realpath(runtime_dir or tempfile.gettempdir())
    if base == "/dev/shm" or base.startswith("/dev/shm/"):
        base = "/tmp"
    return f"{base.rstrip('/')}/{SECRET_DIR_PREFIX}{token_hex(16)}"


def write_secret_file(path: str, text: str, owner: tuple[int, int] | None) -> None:
    """Create `path` and its directory afresh: mkdir 0700 (fails on anything already there, a planted
    symlink included), the file with O_EXCL|O_NOFOLLOW and 0600, both owned by the engine user. The
    directories left by earlier starts of this container (restarts) are removed first."""
    d = Path(path).parent
    for old in d.parent.glob(SECRET_DIR_PREFIX + "*"):
        st = os.lstat(old)
        if stat.S_ISDIR(st.st_mode) and st.st_uid in {os.geteuid(), *(owner[:1] if owner else ())}:
            shutil.rmtree(old, ignore_errors=True)
    try:
        os.mkdir(d, 0o700)
        os.chmod(d, 0o700)  # exact, whatever the umask
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise LaunchError(f"cannot create the API key file in {d}: {exc.strerror}; the launcher needs a writable "
                          "temp dir ($TMPDIR or /tmp) in the container") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        if owner and os.geteuid() == 0:
            os.fchown(fh.fileno(), *owner)
            os.lchown(d, *owner)
        fh.write(text)


def materialise_files(launch: Launch, owner: tuple[int, int] | None) -> None:
    """Write the rendered config files (CONFIG_DIR, or a private dir when it is read-only and differs)."""
    for path, text in list(launch.files.items()):
        p = Path(path)
        if p.is_file() and p.read_text(encoding="utf-8") == text:
            continue  # mounted by the deploy (ConfigMap) with the same content
        try:
            _write(path, text, 0o644, owner)
        except OSError:
            alt = Path(tempfile.mkdtemp(prefix="gptoss-config-")) / p.name
            _write(str(alt), text, 0o644, owner)
            launch.argv = [str(alt) if a == path else a for a in launch.argv]
            launch.warnings.append(f"{p.parent} is read-only and holds other content; using {alt}")
    for path, text in launch.secret_files.items():
        write_secret_file(path, text, owner)


def main(argv: list[str] | None = None) -> int:
    t0 = time.monotonic()
    ap = argparse.ArgumentParser(prog="gptoss-launch", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print the final argv and env (secrets redacted) and exit 0")
    ap.add_argument("--gpu-snapshot", metavar="FILE", help="read the GPUs from a snapshot JSON instead of NVML")
    ap.add_argument("--json", action="store_true", help="with --dry-run: print the decision as JSON")
    ap.add_argument("--backend", default=os.environ.get("GPTOSS_BACKEND", ""), help="vllm or sglang (the image sets GPTOSS_BACKEND)")
    ap.add_argument("--print-snapshot", action="store_true", help="print this host's GPUs (NVML) as snapshot JSON and exit")
    ap.add_argument("--config-dir", default=C.CONFIG_DIR, help=f"where the rendered engine config goes (default {C.CONFIG_DIR})")
    args = ap.parse_args(argv)
    env = dict(os.environ)
    say = lambda msg: print(f"[gptoss] {msg}", flush=True)  # noqa: E731

    try:
        from infra.launcher.nvml import NvmlUnavailable, load_snapshot, read_nvml, snapshot_to_json

        if args.print_snapshot:
            try:
                print(json.dumps(snapshot_to_json(read_nvml()), indent=1))
            except NvmlUnavailable as exc:
                raise LaunchError(str(exc)) from None
            return 0
        snapshot = None
        if args.gpu_snapshot:
            try:
                snapshot = load_snapshot(args.gpu_snapshot)
            except ValueError as exc:
                raise LaunchError(str(exc)) from None
        launch = prepare(env, args.backend, snapshot, dry_run=args.dry_run, config_dir=args.config_dir.rstrip("/"))
    except LaunchError as exc:
        print(f"[gptoss] error: {exc}", file=sys.stderr, flush=True)
        return exc.code

    if args.dry_run:
        if args.json:
            print(json.dumps(launch.to_json(), indent=1, sort_keys=False))
            return 0
        for line in launch.summary:
            say(line)
        for w in launch.warnings:
            say(f"warning: {w}")
        say("dry run: the engine would be started as")
        print("argv: " + " ".join(shlex.quote(a) for a in redact_argv(launch.argv)))
        print(f"env (set by the launcher; {len(launch.inherited)} more inherited from the container):")
        for k, v in sorted(redact_env({k: v for k, v in launch.env.items() if k not in launch.inherited}).items()):
            print(f"  {k}={v}")
        for path, text in sorted(launch.files.items()):
            print(f"file {path}:")
            print("".join(f"  {line}\n" for line in text.splitlines()), end="")
        for path in sorted(launch.secret_files):
            print(f"file {path}: (0600, holds the API key; not shown)")
        return 0

    return run(launch, t0, say)


def run(launch: Launch, t0: float, say) -> int:
    from infra.launcher.encodings import EncodingError, verify_dir
    from infra.launcher.privileges import choose_user, drop_to
    from infra.launcher.ssh import apply_ssh, plan_ssh

    try:
        verify_dir(launch.env["TIKTOKEN_ENCODINGS_BASE"])
    except EncodingError as exc:
        print(f"[gptoss] error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    engine = shutil.which(launch.argv[0], path=launch.env.get("PATH"))
    if engine is None:
        print(f"[gptoss] error: engine command {launch.argv[0]!r} not found on PATH: this image lacks the "
              f"{launch.backend} engine (wrong base image?)", file=sys.stderr, flush=True)
        return EXIT_ENGINE_MISSING

    launch.warnings += apply_ssh(plan_ssh(os.environ))
    cache_dirs = [launch.env[k] for k in C.CACHE_ENV if launch.env.get(k)]
    user, why = choose_user(_flag("GPTOSS_RUN_AS_ROOT", os.environ.get("GPTOSS_RUN_AS_ROOT"), False), cache_dirs)
    if why:
        launch.warnings.append(why)
    owner = (user.pw_uid, user.pw_gid) if user else None
    try:
        materialise_files(launch, owner)
    except LaunchError as exc:
        print(f"[gptoss] error: {exc}", file=sys.stderr, flush=True)
        return exc.code
    for d in cache_dirs:
        try:
            Path(d).mkdir(parents=True, exist_ok=True)
            if owner and os.geteuid() == 0 and Path(d).stat().st_uid == 0:
                os.chown(d, *owner)
        except OSError:
            pass  # the engine reports its own cache errors with the path

    for line in launch.summary:
        say(line)
    for w in launch.warnings:
        say(f"warning: {w}")
    say(f"exec ({time.monotonic() - t0:.2f}s after start){' as ' + user.pw_name if user else ''}: "
        + " ".join(shlex.quote(a) for a in redact_argv(launch.argv)))
    sys.stdout.flush()
    sys.stderr.flush()
    if user:
        drop_to(user, launch.env)
    if launch.show_progress:
        from infra.launcher.nvml import MemoryProbe
        from infra.launcher.progress import Monitor, exec_with_progress
        from infra.launcher.selfcheck import SelfCheck

        det = launch.detection
        slots = det.slots[: launch.plan.tensor_parallel] if det else ()
        probe_box: list[MemoryProbe] = []

        def used_bytes() -> int | None:
            # Opened on first use, i.e. in the forked monitor: an NVML session does not survive fork().
            if not probe_box:
                probe_box.append(MemoryProbe([s.device_index for s in slots if s.mig_index is None],
                                             [(s.device_index, s.mig_index) for s in slots if s.mig_index is not None]))
            return probe_box[0].used_bytes()

        host = "127.0.0.1" if launch.plan.host in ("0.0.0.0", "::") else launch.plan.host
        monitor = Monitor(total_bytes=sum(s.memory_total for s in slots),
                          health_url=f"http://{host}:{launch.plan.port}/health",
                          api_url=f"http://{launch.plan.host}:{launch.plan.port}/v1",
                          used_bytes=used_bytes, start=t0, selfcheck=SelfCheck.for_plan(launch.backend, launch.plan))
        exec_with_progress(launch.argv, launch.env, monitor)
    os.execvpe(launch.argv[0], launch.argv, launch.env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
