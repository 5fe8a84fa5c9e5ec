"""Parse-only virtualenvs for the pinned engines, cached under
``~/.cache/gptoss-stacks/engine-venvs/`` (override: ``GPTOSS_ENGINE_VENVS``).

Layout::

    engine-venvs/torch-2.13.0/     torch (local CPU wheel) and its own deps, shared
    engine-venvs/vllm-0.33.0/      vllm --no-deps + the pinned light deps below
    engine-venvs/sglang-0.5.23/    sglang --no-deps + the pinned light deps below

The engine venvs see the shared torch through a ``.pth`` file (no ``--system-site-packages``,
so the host's packages never leak in). That saves ~900 MB and ~35 s per engine.

The light deps were found by trying: install the engine with ``--no-deps``, build its serve
parser and registries, add whatever import failed, repeat. They are exact pins installed with
``--no-deps`` so a new release of a transitive dep (say triton behind xgrammar, or a fastapi
that imports opentelemetry) can't creep in; where the engine pins a range we chose inside it.

A venv is healthy when its marker file matches the spec below and the engine and torch are
importable by metadata; otherwise it is deleted and rebuilt.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra.constants import ENGINE_VERSIONS

TORCH_VERSION = "2.13.0"
MARKER = ".gptoss-venv.json"
SCHEMA = 1  # bump to force a rebuild of every cached venv

# Shared by both engines: what pydantic/aiohttp/requests and friends need at import time.
_COMMON = [
    "aiohappyeyeballs==2.7.1", "aiohttp==3.14.5", "aiosignal==1.4.0", "annotated-types==0.8.0",
    "anyio==4.16.0", "attrs==26.1.0", "certifi==2026.10.18", "charset-normalizer==3.5.2",
    "frozenlist==1.8.0", "idna==3.20", "msgspec==0.22.0", "multidict==7.2.1", "numpy==2.4.6",
    "orjson==3.13.0", "packaging==26.3", "pillow==13.0.0", "propcache==0.5.4", "psutil==7.2.2",
    "pybase64==1.5.1", "pydantic==2.14.3", "pydantic-core==2.50.4", "PyYAML==6.0.3",
    "pyzmq==27.3.0", "requests==2.34.2", "starlette==1.10.0", "tqdm==4.70.1",
    "typing-inspection==0.4.5", "urllib3==2.8.0", "yarl==1.25.1", "sniffio==1.3.1",
]

_VLLM = _COMMON + [
    "annotated-doc==0.0.7", "apache-tvm-ffi==0.1.11", "cachetools==8.0.1", "cbor2==6.2.1",
    "click==8.5.1", "cloudpickle==3.1.2", "fastapi==0.136.3", "h11==0.16.0", "httpcore2==2.16.2",
    "httpx2==2.16.2", "huggingface-hub==2.4.0", "llguidance==1.7.6", "openai==3.54.0",
    "oss-harmony==0.0.11", "partial-json-parser==0.2.1.1.post7", "prometheus-client==0.26.0",
    "py-cpuinfo==9.0.0", "regex==2026.11.15", "safetensors==0.8.0", "tokenizers==0.23.3",
    "transformers==5.20.2", "truststore==0.10.5", "uvicorn==0.54.0", "uvloop==0.23.0",
    "watchfiles==1.3.0", "xgrammar==0.2.8",
]

# `import sglang` pulls IPython (sglang.lang); its import needs only these two of its deps.
_SGLANG = _COMMON + ["ipython==9.18.1", "traitlets==5.16.1", "pygments==2.21.0"]


@dataclass(frozen=True)
class EngineVenv:
    engine: str
    version: str
    deps: tuple[str, ...]
    # env for pip and the probes: vLLM picks its platform at import and must not run offline
    env_set: dict[str, str] = field(default_factory=dict)
    env_unset: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.engine}-{self.version}"

    def spec_hash(self) -> str:
        blob = json.dumps([SCHEMA, self.engine, self.version, sorted(self.deps), TORCH_VERSION,
                           list(sys.version_info[:2])])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


ENGINES: dict[str, EngineVenv] = {
    "vllm": EngineVenv("vllm", ENGINE_VERSIONS["vllm"], tuple(_VLLM),
                       env_set={"VLLM_TARGET_DEVICE": "cpu"}, env_unset=("HF_HUB_OFFLINE",)),
    "sglang": EngineVenv("sglang", ENGINE_VERSIONS["sglang"], tuple(_SGLANG)),
}


class VenvBuildError(RuntimeError):
    pass


def cache_root() -> Path:
    env = os.environ.get("GPTOSS_ENGINE_VENVS")
    return Path(env) if env else Path.home() / ".cache" / "gptoss-stacks" / "engine-venvs"


def torch_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / f"torch-{TORCH_VERSION}"


def venv_dir(engine: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / ENGINES[engine].name


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def engine_env(engine: str) -> dict[str, str]:
    """Environment for anything run in an engine venv: no host venv/PYTHONPATH leaking in."""
    spec = ENGINES[engine]
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", *spec.env_unset)}
    env.update(spec.env_set)
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _torch_hash() -> str:
    return hashlib.sha256(json.dumps([SCHEMA, TORCH_VERSION, list(sys.version_info[:2])])
                          .encode()).hexdigest()[:16]


def _read_marker(venv: Path) -> dict:
    try:
        return json.loads((venv / MARKER).read_text())
    except (OSError, ValueError):
        return {}


def _dist_version(venv: Path, dist: str) -> str | None:
    """Installed version of `dist` as seen from inside `venv` (sub-second, no engine import)."""
    py = python_of(venv)
    if not py.exists():
        return None
    code = ("import importlib.metadata as m, sys\n"
            "try: print(m.version(sys.argv[1]))\n"
            "except m.PackageNotFoundError: pass\n")
    res = subprocess.run([str(py), "-c", code, dist], capture_output=True, text=True,
                         env={**os.environ, "PYTHONNOUSERSITE": "1"}, timeout=60)
    return res.stdout.strip() or None


def torch_healthy(root: Path | None = None) -> bool:
    d = torch_dir(root)
    return (_read_marker(d).get("hash") == _torch_hash()
            and (_dist_version(d, "torch") or "").startswith(TORCH_VERSION))


def engine_healthy(engine: str, root: Path | None = None) -> bool:
    spec, d = ENGINES[engine], venv_dir(engine, root)
    if _read_marker(d).get("hash") != spec.spec_hash() or not torch_healthy(root):
        return False
    return (_dist_version(d, spec.engine) == spec.version
            and (_dist_version(d, "torch") or "").startswith(TORCH_VERSION))


def _nice() -> list[str]:
    # The machine is shared; pip compiles bytecode for thousands of files.
    return ["nice", "-n", "10"] if shutil.which("nice") else []


HEARTBEAT_S = 20.0  # a log or CI without a terminal gets a line at least this often during a build


class _Steps:
    """Rich progress for a build: one line per step, pip output to the venv's build.log. Without a
    terminal (CI, logs) rich draws nothing until the end, so plain start/"still running" lines are
    printed instead."""

    def __init__(self, progress, log: Path, say=None):
        self.progress, self.log, self.say = progress, log, say  # say: a line printer instead of rich's console

    def _say(self, text: str) -> None:
        if self.say is not None:
            self.say(text)
            return
        console = getattr(self.progress, "console", None)
        if console is not None and not console.is_terminal:
            console.print(text, markup=False, highlight=False)

    def run(self, label: str, cmd: list[str], env: dict[str, str]) -> None:
        task = self.progress.add_task(label, total=None) if self.progress else None
        t0 = time.monotonic()
        self._say(f"{label} ... (log {self.log})")
        with self.log.open("a") as fh:
            fh.write(f"\n$ {' '.join(cmd)}\n")
            fh.flush()
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
            while True:
                try:
                    proc.wait(timeout=HEARTBEAT_S)
                    break
                except subprocess.TimeoutExpired:
                    self._say(f"  {label}: still running, {time.monotonic() - t0:.0f}s")
        self._say(f"{label}: done in {time.monotonic() - t0:.0f}s")
        if task is not None:
            self.progress.update(task, total=1, completed=1,
                                 description=f"{label} ({time.monotonic() - t0:.0f}s)")
        if proc.returncode:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-25:])
            raise VenvBuildError(f"{label} failed (exit {proc.returncode}); log {self.log}:\n{tail}")


def _new_venv(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # without system site-packages: the host's own packages must not satisfy engine imports
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)


def _pip(venv: Path, *args: str) -> list[str]:
    return [*_nice(), str(python_of(venv)), "-m", "pip", "install", "--no-input", *args]


def _build_torch(root: Path, steps_factory) -> None:
    d = torch_dir(root)
    _new_venv(d)
    steps = steps_factory(d / "build.log")
    env = {**os.environ, "PYTHONNOUSERSITE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # plain `torch==2.13.0` resolves to the local CPU wheel (pip's find-links on this machine)
    steps.run(f"torch {TORCH_VERSION} (CPU) venv", _pip(d, f"torch=={TORCH_VERSION}"), env)
    (d / MARKER).write_text(json.dumps({"hash": _torch_hash(), "torch": TORCH_VERSION}))


def _build_engine(engine: str, root: Path, steps_factory) -> None:
    spec, d = ENGINES[engine], venv_dir(engine, root)
    _new_venv(d)
    # share torch without --system-site-packages: a .pth line appends its site-packages
    (site_packages(d) / "_gptoss_torch.pth").write_text(f"{site_packages(torch_dir(root))}\n")
    steps = steps_factory(d / "build.log")
    env = engine_env(engine)
    steps.run(f"{spec.name} --no-deps", _pip(d, "--no-deps", f"{spec.engine}=={spec.version}"), env)
    steps.run(f"{spec.name} light deps ({len(spec.deps)})", _pip(d, "--no-deps", *spec.deps), env)
    steps.run(f"{spec.name} import check",
              [str(python_of(d)), str(Path(__file__).with_name(f"probe_{engine}.py")), "selftest"],
              env)
    (d / MARKER).write_text(json.dumps({"hash": spec.spec_hash(), "engine": spec.engine,
                                        "version": spec.version}))


@contextlib.contextmanager
def lock(root: Path, *, ready=None, say=None, every: float = 20.0):
    """The engine-venvs lock: two pytest/invoke runs (or CI's background builds) must not build in
    the same cache at once. Yields True once held. While another process holds it, ``say`` (if given)
    is told every ``every`` seconds; if ``ready()`` turns true meanwhile, yields False without the
    lock: what this process waits for is built, and a build it does not need (another waiter may
    take the lock the moment it is released) must not hold it back."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as fh:
        t0 = last = checked = time.monotonic()
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if ready is not None and now - checked >= 2.0:
                    checked = now
                    if ready():
                        yield False
                        return
                if say is not None and (now - last >= every or last == t0):
                    say(f"waiting for another process building a venv under {root} ({now - t0:.0f}s)")
                    last = time.monotonic()
                time.sleep(0.5)
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_venv(engine: str, *, rebuild: bool = False, quiet: bool = False,
                root: Path | None = None) -> Path:
    """Return the engine's venv, building it (and the shared torch venv) if missing or unhealthy."""
    if engine not in ENGINES:
        raise KeyError(f"unknown engine {engine!r}; known: {sorted(ENGINES)}")
    root = root or cache_root()
    with lock(root, say=None if quiet else (lambda m: print(m, file=sys.stderr, flush=True)),
              ready=None if rebuild else (lambda: torch_healthy(root) and engine_healthy(engine, root))):
        need_torch = rebuild or not torch_healthy(root)
        if not need_torch and not rebuild and engine_healthy(engine, root):
            return venv_dir(engine, root)
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(stderr=True, quiet=quiet)
        t0 = time.monotonic()
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            factory = lambda log: _Steps(progress, log)  # noqa: E731
            if need_torch:
                _build_torch(root, factory)
            # the .pth points at a fixed path, so a rebuilt torch venv alone leaves the engine valid
            if rebuild or not engine_healthy(engine, root):
                _build_engine(engine, root, factory)
        console.print(f"[green]{ENGINES[engine].name} venv ready in {time.monotonic() - t0:.0f}s[/green]"
                      f" at {venv_dir(engine, root)}")
        return venv_dir(engine, root)
