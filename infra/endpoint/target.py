"""Where the endpoint is: a ``--url`` given by the user, or a Pulumi stack's outputs.

Stack outputs (docs/ARCHITECTURE.md) are read with
``pulumi stack output --json --show-secrets --stack NAME`` from the repo root:
``endpoint_url`` (base URL ending in ``/v1``), ``health_url``, ``model``, ``backend``,
``gpu``, ``api_key`` (secret, may be absent), ``logs_command`` (argv list or None), and
``launch_plan`` (launch.json), whose ``settings.max_model_len`` is the context the server must offer.

The API key is held in :class:`Target` but never shown: ``repr`` masks it, and nothing in
this package prints or logs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parents[2]


class TargetError(Exception):
    """The endpoint could not be determined; ``code`` is the exit code to use."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    base_url: str                    # ends in /v1, no trailing slash
    health_url: str
    model: str | None = None         # expected served model id (None: take what /v1/models lists)
    api_key: str | None = field(default=None, repr=False)
    backend: str | None = None
    gpu: str | None = None
    logs_command: list[str] | None = None
    source: str = "url"              # "url" or "stack:NAME"
    max_model_len: int | None = None  # the context the stack was planned with (None: not checked)

    def __repr__(self) -> str:  # the key never appears, even in tracebacks
        key = "set" if self.api_key else "none"
        return (f"Target(base_url={self.base_url!r}, model={self.model!r}, api_key=<{key}>, "
                f"backend={self.backend!r}, gpu={self.gpu!r}, source={self.source!r})")

    def headers(self, with_key: bool = True) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if with_key and self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def with_model(self, model: str) -> "Target":
        return replace(self, model=model)


def normalize_base_url(url: str) -> str:
    """``http://h:8000``, ``http://h:8000/``, ``http://h:8000/v1/`` -> ``http://h:8000/v1``."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TargetError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path = path + "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def default_health_url(base_url: str) -> str:
    """vLLM, SGLang and llama-server serve ``/health`` at the root, beside ``/v1``."""
    parts = urlsplit(base_url)
    root = parts.path[: -len("/v1")] if parts.path.endswith("/v1") else parts.path
    return urlunsplit((parts.scheme, parts.netloc, root.rstrip("/") + "/health", "", ""))


def key_from_env(var: str | None) -> str | None:
    if not var:
        return None
    value = os.environ.get(var)
    if value is None:
        raise TargetError(f"--api-key-env {var}: that environment variable is not set")
    return value or None


def read_stack_outputs(stack: str, repo: Path = REPO_ROOT, timeout: float = 60.0) -> dict[str, Any]:
    """``pulumi stack output --json --show-secrets --stack NAME`` as a dict (infra.pulumi_run, the layer
    below both this client and the CLI). TargetError with install instructions when the CLI is missing (127)."""
    from infra.pulumi_run import PulumiError, stack_outputs

    try:
        return stack_outputs(stack, repo, timeout)
    except PulumiError as exc:
        raise TargetError(str(exc), code=exc.code) from None


MAX_CONTEXT = 1 << 24  # bound on a context length read from outputs or the command line


def parse_max_model_len(value: Any, where: str) -> int | None:
    """A context length from a stack output or ``--max-model-len``: a whole number 1..2**24, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONTEXT:
        raise TargetError(f"{where} is {str(value)[:40]!r}: expected a whole number of tokens, 1..{MAX_CONTEXT}")
    return value


def _planned_max_model_len(outputs: dict[str, Any], stack: str) -> int | None:
    plan = outputs.get("launch_plan")
    if plan is None:
        return None
    where = f"stack {stack!r}: output launch_plan.settings.max_model_len"
    if not isinstance(plan, dict) or not isinstance(plan.get("settings", {}), dict):
        raise TargetError(f"stack {stack!r}: output launch_plan is not a launch.json object "
                          f"(fix: `invoke up --stack {stack}` to refresh the outputs)")
    return parse_max_model_len((plan.get("settings") or {}).get("max_model_len"), where)


def target_from_outputs(outputs: dict[str, Any], stack: str) -> Target:
    url = outputs.get("endpoint_url")
    if not url:
        raise TargetError(f"stack {stack!r} has no `endpoint_url` output (is it deployed? `invoke up --stack {stack}`)")
    base = normalize_base_url(str(url))
    logs = outputs.get("logs_command")
    if isinstance(logs, str):
        logs = [logs] if logs else None
    key = outputs.get("api_key")
    return Target(
        base_url=base,
        health_url=str(outputs.get("health_url") or default_health_url(base)),
        model=outputs.get("model") or None,
        api_key=str(key) if key else None,
        backend=outputs.get("backend") or None,
        gpu=outputs.get("gpu") or None,
        logs_command=[str(a) for a in logs] if logs else None,
        source=f"stack:{stack}",
        max_model_len=_planned_max_model_len(outputs, stack),
    )


def resolve_target(*, stack: str | None = None, url: str | None = None, api_key_env: str | None = None,
                   model: str | None = None, backend: str | None = None, gpu: str | None = None,
                   repo: Path = REPO_ROOT) -> Target:
    """The endpoint to test. Exactly one of ``stack`` / ``url``; explicit options win over outputs."""
    if bool(stack) == bool(url):
        raise TargetError("give exactly one of --stack NAME or --url URL")
    if stack:
        target = target_from_outputs(read_stack_outputs(stack, repo), stack)
    else:
        base = normalize_base_url(url or "")
        target = Target(base_url=base, health_url=default_health_url(base), source="url")
    env_key = key_from_env(api_key_env)
    return replace(
        target,
        api_key=env_key if api_key_env else target.api_key,
        model=model or target.model,
        backend=backend or target.backend,
        gpu=gpu or target.gpu,
    )
