"""The image entrypoint: container env + the GPUs found -> a checked launch plan -> exec the engine.

    python -m infra.launcher [--dry-run] [--gpu-snapshot FILE] [--json] [--backend vllm|sglang]
    python -m infra.launcher --print-snapshot      # this host's GPUs in the snapshot format

`main` reads the container env (os.environ) once and passes it on; `prepare` runs the decision stages
(infra.launcher.stages), none of which reads os.environ; all refusals happen there, before the engine
starts (one line on stderr, exit code 2):
1. read_container_env: the launcher's variables and the stack spec, GPTOSS_STACK_SPEC (written by the
   deploy from the stack file) or, for a plain `docker run IMAGE` as in the image READMEs, `gpu: auto`
   with the image's backend;
2. detect_gpus: NVML (or a snapshot file) -> catalogue GPU, count, free memory (infra.launcher.detect);
3. make_plan: infra.plan.build_plan with the container env as layer 4 (infra.envmap reads the image
   READMEs' variables), the detected GPU (a declared GPU that differs is refused unless the stack says
   auto) and the memory really free (fit check);
4. route_secrets: each secret where the plan's `secrets[].pass_as` says (vLLM's key as VLLM_API_KEY,
   SGLang's in a 0600 --config file), never on the command line (`ps`); nothing secret is printed;
5. engine_env: the plan's env < the container's, less the launcher's own inputs.
Then `run` (exec): optional SSH (root only), drop to the unprivileged user, exec the engine
(os.execvpe) so it keeps this PID and gets signals; with SHOW_LOADING_PROGRESS=true a forked monitor
shows progress and runs the start-up self-check (infra.launcher.selfcheck: the plan's fit vs the
engine's own log).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

from infra import constants as C
from infra.launcher.errors import EXIT_CONFIG, EXIT_ENGINE_MISSING, LaunchError
from infra.launcher.redact import redact_argv, redact_env
from infra.launcher.secretroute import SECRET_DIR_PREFIX, secret_dir, write_secret_file
from infra.launcher.stages import Launch, prepare, spec_from_env

# Importers use these names from here (tests, infra.launcher.__main__).
__all__ = ["Launch", "SECRET_DIR_PREFIX", "main", "materialise_files", "prepare", "redact_argv", "redact_env", "run", "start",
           "secret_dir", "spec_from_env", "write_secret_file"]


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


def materialise_files(launch: Launch, owner: tuple[int, int] | None) -> None:
    """Write the rendered config files (CONFIG_DIR, or a private dir when it is read-only and differs)."""
    for path, text in list(launch.files.items()):
        p = Path(path)
        if p.is_file() and p.read_text(encoding="utf-8") == text:
            continue  # mounted by the deploy (ConfigMap) with the same content
        try:
            _write(path, text, 0o644, owner)
        except OSError:
            alt = Path(tempfile.mkdtemp(prefix="gptoss-config-", dir=launch.runtime_dir)) / p.name
            _write(str(alt), text, 0o644, owner)
            launch.argv = [str(alt) if a == path else a for a in launch.argv]
            launch.warnings.append(f"{p.parent} is read-only and holds other content; using {alt}")
    for path, text in launch.secret_files.items():
        write_secret_file(path, text, owner)


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The entry point: the one place the container env is read (os.environ, unless `environ` is given)."""
    t0 = time.monotonic()
    env = dict(os.environ if environ is None else environ)
    return start(parse_args(argv, env), env, t0)


def parse_args(argv: list[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="gptoss-launch", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print the final argv and env (secrets redacted) and exit 0")
    ap.add_argument("--gpu-snapshot", metavar="FILE", help="read the GPUs from a snapshot JSON instead of NVML")
    ap.add_argument("--json", action="store_true", help="with --dry-run: print the decision as JSON")
    ap.add_argument("--backend", default=env.get("GPTOSS_BACKEND", ""), help="vllm or sglang (the image sets GPTOSS_BACKEND)")
    ap.add_argument("--print-snapshot", action="store_true", help="print this host's GPUs (NVML) as snapshot JSON and exit")
    ap.add_argument("--config-dir", default=C.CONFIG_DIR, help=f"where the rendered engine config goes (default {C.CONFIG_DIR})")
    return ap.parse_args(argv)


def start(args: argparse.Namespace, env: Mapping[str, str], t0: float) -> int:
    """Decide (prepare), then print (--dry-run) or run; `env` is the container env, read by main."""
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
        return print_dry_run(launch, args.json, say)
    return run(launch, t0, say)


def print_dry_run(launch: Launch, as_json: bool, say) -> int:
    """What run() would exec, secrets redacted (values, and secret files by name only)."""
    if as_json:
        print(json.dumps(launch.to_json(), indent=1, sort_keys=False))
        return 0
    for line in launch.summary:
        say(line)
    for w in launch.warnings:
        say(f"warning: {w}")
    say("dry run: the engine would be started as")
    print("argv: " + " ".join(shlex.quote(a) for a in redact_argv(launch.argv)))
    print(f"env (set by the launcher; {len(launch.inherited)} more inherited from the container):")
    for k, v in launch.shown_env().items():
        print(f"  {k}={v}")
    for path, text in sorted(launch.files.items()):
        print(f"file {path}:")
        print("".join(f"  {line}\n" for line in text.splitlines()), end="")
    for path in sorted(launch.secret_files):
        print(f"file {path}: (0600, holds the API key; not shown)")
    return 0


def run(launch: Launch, t0: float, say) -> int:
    """The exec stage: everything it needs is in `launch` (decided by prepare from the env given)."""
    from infra.launcher.encodings import EncodingError, verify_dir
    from infra.launcher.privileges import choose_user, drop_to
    from infra.launcher.ssh import apply_ssh

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

    launch.warnings += apply_ssh(launch.ssh)
    cache_dirs = [launch.env[k] for k in C.CACHE_ENV if launch.env.get(k)]
    user, why = choose_user(launch.run_as_root, cache_dirs)
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

        host = "127.0.0.1" if launch.plan.host in C.ALL_ADDRESSES else launch.plan.host
        monitor = Monitor(total_bytes=sum(s.memory_total for s in slots),
                          health_url=f"http://{host}:{launch.plan.port}/health",
                          api_url=f"http://{launch.plan.host}:{launch.plan.port}/v1",
                          used_bytes=used_bytes, start=t0, selfcheck=SelfCheck.for_plan(launch.backend, launch.plan))
        exec_with_progress(launch.argv, launch.env, monitor)
    os.execvpe(launch.argv[0], launch.argv, launch.env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
