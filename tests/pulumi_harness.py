"""Run the Pulumi program offline, for the tests: a mock engine that records everything the program
sends it, the secret scanner, and the stack-level helpers the deploy and cloud tests share.

Test code only (tests/ is on sys.path through tests/conftest.py; import it as `pulumi_harness`, a
unique name, so it cannot collide with other test folders' helpers); nothing under infra/ imports it.
Only the engine boundary is faked: the program, the component, the targets, the provider SDKs'
serialisation and the config reading are the real code. Pitfalls handled here (pulumi 3.272):
- the root stack resource lives in a context variable and outlives `set_mocks`: reset per run;
- `set_all_config` keeps the previous secret keys unless given new ones: always pass them;
- the mock monitor does not apply `additional_secret_outputs`, so secrecy is judged on what the
  program itself sends (inputs and outputs as serialised for the engine), never on mock state;
- assertions inside `apply` never run unless awaited: we record first, assert afterwards.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from pulumi.runtime import config as _config
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc as _rpc
from pulumi.runtime import settings as _settings
from pulumi.runtime import stack as _stack
from pulumi.runtime.sync_await import _sync_await

from infra import constants as C
from infra.spec import SpecError
from infra.stackfile import list_stacks, stack_path

SECRET_SIG_KEY = _rpc._special_sig_key
SECRET_SIG = _rpc._special_secret_sig
STACK_TYPE = "pulumi:pulumi:Stack"
# Request fields that are about where the call came from, not what was asked for.
_PROVENANCE = ("sourcePosition", "stackTrace")


def _fake_digest(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


class DeterministicMocks(_mocks.Mocks):
    """Echo inputs back as state and fill the computed outputs the program reads, deterministically
    (same inputs, same outputs), so two runs can be compared byte for byte."""

    def __init__(self, random_password: str = "mock-generated-api-key-0000000000"):
        self.random_password = random_password

    def new_resource(self, args: _mocks.MockResourceArgs) -> tuple[str | None, dict]:
        state = dict(args.inputs)
        typ = args.typ
        if typ == "docker-build:index:Image":
            tags = _unwrap(state.get("tags")) or []
            digest = _fake_digest("image", args.name, json.dumps(tags, sort_keys=True))
            state["digest"] = digest
            state["contextHash"] = _fake_digest("context", args.name)[7:]
            if tags:
                state["ref"] = f"{tags[0]}@{digest}" if _unwrap(state.get("push")) else tags[0]
        elif typ == "docker:index/remoteImage:RemoteImage":
            name = _unwrap(state.get("name")) or args.name
            state["imageId"] = _fake_digest("image-id", str(name))
            state["repoDigest"] = str(name)
        elif typ == "random:index/randomPassword:RandomPassword":
            # The real provider marks `result` secret through additional_secret_outputs, which
            # mocks do not apply: the program must wrap it itself, and the tests prove it does.
            state["result"] = self.random_password
            state["bcryptHash"] = "$2a$10$" + "x" * 53
        elif typ == "docker:index/container:Container":
            state.setdefault("bridge", "")
            state["networkDatas"] = [{"ipAddress": "172.17.0.2", "networkName": "bridge"}]
        return f"{args.name}-id", state

    def call(self, args: _mocks.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None


class RecordingMonitor(_mocks.MockMonitor):
    """A mock monitor that keeps every request the program sends, as plain dicts."""

    def __init__(self, mocks: _mocks.Mocks):
        super().__init__(mocks)
        self.registrations: list[dict[str, Any]] = []
        self.urns: list[str] = []               # the URN answered for each registration
        self.output_registrations: list[dict[str, Any]] = []
        self.invokes: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        sent = json_format.MessageToDict(request)
        response = super().RegisterResource(request)
        with self._lock:  # the SDK calls the monitor from worker threads
            self.registrations.append(sent)
            self.urns.append(response.urn)
        return response

    def RegisterResourceOutputs(self, request):  # noqa: N802
        with self._lock:
            self.output_registrations.append(json_format.MessageToDict(request))
        return super().RegisterResourceOutputs(request)

    def Invoke(self, request):  # noqa: N802
        with self._lock:
            self.invokes.append(json_format.MessageToDict(request))
        return super().Invoke(request)


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class Resource:
    """One custom or component resource as the program registered it."""

    type: str
    name: str
    urn: str
    parent: str
    provider: str
    inputs: dict[str, Any]          # as sent: secret values still wrapped
    dependencies: list[str]
    custom: bool
    raw: dict[str, Any] = field(repr=False)

    def plain(self, key: str, default: Any = None) -> Any:
        """An input with secret wrappers removed (for checking values, not secrecy)."""
        return unwrap_secrets(self.inputs.get(key, default))


@dataclass
class ProgramRun:
    stack: str
    monitor: RecordingMonitor
    logs: list[str]

    @property
    def resources(self) -> list[Resource]:
        out = []
        for req, urn in zip(self.monitor.registrations, self.monitor.urns):
            if req.get("type") == STACK_TYPE:
                continue
            out.append(Resource(
                type=req["type"], name=req["name"], urn=urn, parent=req.get("parent", ""),
                provider=req.get("provider", ""), inputs=req.get("object", {}) or {},
                dependencies=list(req.get("dependencies", [])), custom=bool(req.get("custom")), raw=req,
            ))
        return out

    def of_type(self, typ: str) -> list[Resource]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str) -> Resource:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {[r.name for r in found]}"
        return found[0]

    @property
    def stack_outputs(self) -> dict[str, Any]:
        """The stack's exported outputs as sent to the engine (secrets still wrapped)."""
        stack_urns = [r for r in self.monitor.output_registrations if r["urn"].split("::")[2] == STACK_TYPE]
        merged: dict[str, Any] = {}
        for reg in stack_urns:
            merged.update(reg.get("outputs", {}) or {})
        return merged

    def comparable(self) -> list[dict[str, Any]]:
        """Everything sent, minus where in the source it was sent from, in a stable order (the
        SDK registers from worker threads, so arrival order may vary): for idempotency checks."""
        def strip(req: dict[str, Any]) -> dict[str, Any]:
            out = {k: v for k, v in req.items() if k not in _PROVENANCE}
            # A transform is a callback served by this run's SDK process: its address and token are per run.
            if out.get("transforms"):
                out["transforms"] = ["callback"] * len(out["transforms"])
            # Dependencies are sets to the engine; the SDK collects them in set order.
            if "dependencies" in out:
                out["dependencies"] = sorted(out["dependencies"])
            if "propertyDependencies" in out:
                out["propertyDependencies"] = {k: {"urns": sorted(v.get("urns", []))}
                                               for k, v in out["propertyDependencies"].items()}
            return out
        every = ([strip(r) for r in self.monitor.registrations]
                 + [strip(r) for r in self.monitor.output_registrations]
                 + [strip(r) for r in self.monitor.invokes])
        return sorted(every, key=lambda r: json.dumps(r, sort_keys=True))

    def everything_sent(self) -> dict[str, Any]:
        return {"registrations": self.monitor.registrations,
                "outputs": self.monitor.output_registrations,
                "invokes": self.monitor.invokes,
                "logs": self.logs}


def pulumi_config_from_stackfile(data: Mapping[str, Any], secrets: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Turn a parsed stack file's `config:` into what the Pulumi CLI hands the program: every
    value a string (objects and lists as JSON), `secure:` values replaced by `secrets[key]`.
    Returns (config, secret_keys), keys fully qualified."""
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for full_key, value in data.items():
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            short = full_key.split(":", 1)[-1]
            if short not in secrets:
                raise KeyError(f"no test value for secret {full_key}")
            config[full_key] = secrets[short]
            secret_keys.append(full_key)
        elif isinstance(value, str):
            config[full_key] = value
        elif isinstance(value, bool):
            config[full_key] = "true" if value else "false"
        elif isinstance(value, (int, float)):
            config[full_key] = str(value)
        else:
            config[full_key] = json.dumps(value)
    return config, secret_keys


def stack_file_config(name: str, *, secrets: Mapping[str, str], overrides: Mapping[str, Any] | None = None,
                      drop: Iterable[str] = ()) -> tuple[dict[str, str], list[str]]:
    """What the Pulumi CLI would hand the program for stack `name`: its stack file's `config:`,
    then `overrides` (bare keys; None deletes), minus `drop`, plus each secret in `secrets` as a
    `secure:` entry whose decrypted value is the given one."""
    doc = stack_doc(name)
    for key, value in (overrides or {}).items():
        full = f"{C.CONFIG_NAMESPACE}:{key}"
        if value is None:
            doc.pop(full, None)
        else:
            doc[full] = value
    for key in drop:
        doc.pop(f"{C.CONFIG_NAMESPACE}:{key}", None)
    for key in secrets:
        doc[f"{C.CONFIG_NAMESPACE}:{key}"] = {"secure": "v1:placeholder"}
    return pulumi_config_from_stackfile(doc, secrets)


def run_program(program: Callable[[], Any], *, project: str, stack: str, config: Mapping[str, str],
                secret_keys: Iterable[str], mocks: _mocks.Mocks | None = None, preview: bool = False,
                monitor: RecordingMonitor | None = None) -> ProgramRun:
    """Run `program` as `pulumi up` would (inside a Stack, exports included) against a recording
    mock engine. Exceptions from the program propagate after the runtime has settled; pass your
    own `monitor` to inspect what was registered before one."""
    monitor = monitor or RecordingMonitor(mocks or DeterministicMocks())
    logger = logging.getLogger(f"gptoss.mock-engine.{stack}")
    logger.propagate = False
    handler = _ListHandler()
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    _config.set_all_config(dict(config), list(secret_keys))
    _settings.ROOT.set(None)
    # Pulumi's runtime creates futures on the current loop; an earlier asyncio.run() in the same
    # process (the endpoint tests' bench) leaves none set, so give it one, as a fresh process has.
    # Reuse a live loop: a new one per run leaks its selector and self-pipe (3 fds a run).
    try:
        if asyncio.get_event_loop().is_closed():
            raise RuntimeError
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    _mocks.set_mocks(monitor.mocks, project=project, stack=stack, preview=preview, monitor=monitor, logger=logger)
    # set_mocks made a root stack of its own; the program gets a fresh one, as under the CLI.
    _settings.ROOT.set(None)
    try:
        _sync_await(_stack.run_in_stack(program))
    finally:
        _settings.ROOT.set(None)
    return ProgramRun(stack=stack, monitor=monitor, logs=handler.messages)


def first_difference(a: Any, b: Any, path: str = "$") -> str | None:
    """Path and values of the first place two JSON-like values differ (None if equal)."""
    if type(a) is not type(b):
        return f"{path}: {a!r:.200} != {b!r:.200}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{path}.{key}: only in {'second' if key not in a else 'first'}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None if len(a) == len(b) else f"{path}: length {len(a)} != {len(b)}"
    return None if a == b else f"{path}: {a!r:.200} != {b!r:.200}"


# --- secrecy -----------------------------------------------------------------------------------

def is_secret_wrapper(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def unwrap_secrets(value: Any) -> Any:
    if is_secret_wrapper(value):
        return unwrap_secrets(value.get("value"))
    if isinstance(value, Mapping):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def _unwrap(value: Any) -> Any:
    return unwrap_secrets(value)


def plaintext_strings(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """Every string (keys included) that is NOT inside a secret wrapper, with its path."""
    if is_secret_wrapper(value):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield f"{path}.{k}<key>", str(k)
            yield from plaintext_strings(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from plaintext_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def base64_forms(secret: str) -> set[str]:
    """Substrings that any base64 encoding containing `secret` must contain, at each of the three
    byte alignments (so `user:secret` in a dockerconfigjson `auth` is caught), std and url-safe."""
    raw = secret.encode()
    forms: set[str] = set()
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + raw + b"\0\0").decode()
        start = -(-8 * k // 6)                       # first char made only of secret bits
        end = (8 * (k + len(raw))) // 6               # chars after this include following bytes
        core = encoded[start:end]
        if len(core) >= 8:
            forms.add(core)
            forms.add(core.replace("+", "-").replace("/", "_"))
    return forms


_B64_RE = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")


def _decoded_views(text: str, depth: int) -> Iterator[str]:
    """JSON string members and base64 decodings hidden inside `text`, recursively."""
    if depth <= 0:
        return
    try:
        parsed = json.loads(text)
    except (ValueError, TypeError):
        parsed = None
    if isinstance(parsed, (dict, list)):
        for _, s in plaintext_strings(parsed):
            yield s
            yield from _decoded_views(s, depth - 1)
    for chunk in _B64_RE.findall(text):
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                padded = chunk + "=" * (-len(chunk) % 4)
                decoded = decoder(padded).decode("utf-8")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                continue
            yield decoded
            yield from _decoded_views(decoded, depth - 1)


def find_plaintext_secrets(sent: Any, sentinels: Mapping[str, str]) -> list[str]:
    """Where any sentinel (or a base64 form of it, or it inside decoded JSON/base64) appears in
    `sent` outside a secret wrapper. Empty list = no leak."""
    forms = {name: ({value} | base64_forms(value)) for name, value in sentinels.items()}
    leaks: list[str] = []
    for path, text in plaintext_strings(sent):
        views = [text, *_decoded_views(text, depth=3)]
        for name, needles in forms.items():
            for view in views:
                hit = next((n for n in needles if n in view), None)
                if hit is not None:
                    how = "plain" if hit == sentinels[name] else "base64"
                    leaks.append(f"{name} ({how}) at {path}")
                    break
    return leaks


def is_secret_output(value: Any) -> bool:
    """For a stack output as sent to the engine: is it wrapped as a secret?"""
    return is_secret_wrapper(value)


def write_stand_in_image_lock(path) -> Path:
    """An images.lock.yaml where every catalogue base has a digest, as `invoke lock-images` writes it
    where the registries answer (Docker Hub cannot be reached from the test machines). The digests are
    sha256 of "stand-in <image:tag>": well-formed, clearly not real, never pulled by the mocked engine."""
    from infra.imagelock import catalogue_refs, write_lock

    refs = catalogue_refs(yaml.safe_load((C.CATALOGUE_DIR / "images.yaml").read_text(encoding="utf-8")))
    path = Path(path)
    write_lock(path, {ref: {"digest": _fake_digest("stand-in", ref), "media_type": "application/vnd.oci.image.index.v1+json"}
                      for ref in refs})
    return path


# --- the project's stacks under the mock engine ------------------------------------------------

STACKS = list_stacks()
RUNPOD_STACKS = ["runpod-h100-sglang", "runpod-a100-vllm"]
K8S_STACKS = ["k8s-h100-vllm", "k8s-h200-sglang", "k8s-h200x8-vllm-tp1"]
NEW_STACKS = RUNPOD_STACKS + K8S_STACKS
# Distinct, long, greppable values: any of them (or its base64) outside a secret wrapper is a leak.
SENTINELS = {key: f"SENTINEL-{key}-7c1e9a52d4b8f036" for key in C.SECRET_KEYS}
GENERATED_KEY = "SENTINEL-generated-api-key-5b9d2e81c7a4"
ALL_SENTINELS = {**SENTINELS, "generated_api_key": GENERATED_KEY}
# Kubernetes refuses SSH into the pods (ssh_password included): its stacks get every other secret.
K8S_SENTINELS = {key: value for key, value in SENTINELS.items() if key != "ssh_password"}


def stack_doc(name: str) -> dict[str, Any]:
    """The stack file's `config:` exactly as written (namespaced keys)."""
    return dict((yaml.safe_load(stack_path(name).read_text()) or {}).get("config") or {})


def target_of(name: str) -> str:
    return stack_doc(name).get(f"{C.CONFIG_NAMESPACE}:target") or "docker"


# One engine container each; a stack with the python tool has a second (tests/cloud/test_builtin_tools_deploy.py).
DOCKER_STACKS = [name for name in STACKS if target_of(name) == "docker"
                 and not stack_doc(name).get(f"{C.CONFIG_NAMESPACE}:builtin_tools")]


def sentinels_for(name: str) -> dict[str, str]:
    """Every sentinel, but ssh_password on Kubernetes, which refuses SSH into its pods."""
    return K8S_SENTINELS if target_of(name) == "kubernetes" else SENTINELS


def pulumi_config(name: str, *, secrets: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None,
                  drop: Iterable[str] = ()) -> tuple[dict[str, str], list[str]]:
    """The stack's config (stack_file_config) with the sentinels as its secrets unless `secrets` is given."""
    return stack_file_config(name, secrets=sentinels_for(name) if secrets is None else secrets,
                             overrides=overrides, drop=drop)


def run_stack(name: str, *, secrets: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None,
              config: tuple[dict[str, str], list[str]] | None = None, program: Callable[[], Any] | None = None,
              monitor: RecordingMonitor | None = None) -> ProgramRun:
    """The real program (or `program`) for stack `name` under the mock engine, the random API key
    being GENERATED_KEY; `config` replaces the stack file's (in pulumi_config's form)."""
    from infra.deploy.program import deploy

    cfg, secret_keys = config or pulumi_config(name, secrets=secrets, overrides=overrides)
    # fetch_build_inputs=False: the program assembles image contexts but fetches nothing (no PyPI in tests)
    return run_program(program or functools.partial(deploy, fetch_build_inputs=False), project=C.PROJECT, stack=name, config=cfg, secret_keys=secret_keys,
                       mocks=DeterministicMocks(random_password=GENERATED_KEY), monitor=monitor)


def run_stacks(names: Iterable[str]) -> dict[str, ProgramRun]:
    """Each stack's run, by name (for a module-scoped fixture)."""
    return {name: run_stack(name) for name in names}


def manifest(resource: Resource) -> dict[str, Any]:
    """A registered Kubernetes resource as the object the provider would send to the API server
    (secret wrappers removed: validation is about shape, secrecy is checked separately)."""
    return unwrap_secrets(resource.inputs)


def refused(name: str, overrides: dict, secrets: Mapping[str, str] | None = None) -> SpecError:
    """Run the program; it must raise SpecError having registered nothing but the stack."""
    monitor = RecordingMonitor(DeterministicMocks(random_password=GENERATED_KEY))
    with pytest.raises(SpecError) as info:
        run_stack(name, overrides=overrides, secrets=secrets, monitor=monitor)
    types = {r.get("type") for r in monitor.registrations}
    assert types <= {STACK_TYPE}, types
    return info.value
