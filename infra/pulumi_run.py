"""Running the `pulumi` CLI: finding it, its state backend, the environment it needs, reading a
stack's outputs. Below both callers: the invoke tasks (infra/tasks/pulumi_cli.py) and the endpoint
client (infra/endpoint/target.py, for `--stack`), so the client layer never imports the CLI layer.
Errors are `PulumiError` (message + exit code); the tasks turn them into invoke's Exit.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.constants import REPO_ROOT


class PulumiError(Exception):
    """Pulumi cannot run or answered badly; `code` is the exit code to use."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


STATE_DIR = REPO_ROOT / ".pulumi-state"
# Plugin versions = the pip-installed SDK versions (each SDK's pulumi-plugin.json); `pulumi`
# downloads them on first use, or `pulumi install` does it up front.
PLUGINS = ("docker", "docker-build", "random")

INSTALL_HELP = """\
The Pulumi CLI (`pulumi`) is not installed or not on PATH. Install it with the project's set-up
command, then run this command again:
  bash scripts/bootstrap.sh --with-pulumi        # into ~/.pulumi/bin (your user, no root)
Other ways (README, Requirements): on macOS `brew install pulumi/tap/pulumi`; anywhere, a release
archive from https://github.com/pulumi/pulumi/releases unpacked so that ~/.pulumi/bin/pulumi exists.
On first use Pulumi downloads the provider plugins this project uses ({plugins});
`pulumi install` in {repo} does that up front."""

PASSPHRASE_HELP = """\
Pulumi needs the passphrase that encrypts this stack's secrets (file backend: {backend}),
and this is not a terminal, so it cannot ask. Set one of:
  export PULUMI_CONFIG_PASSPHRASE='...'          # empty ('') only for a stack file without secrets
  export PULUMI_CONFIG_PASSPHRASE_FILE=/path/to/file
Use the same passphrase every time for a stack: its `secure:` values are bound to it."""

# Backends without Pulumi Cloud's secrets service: a stack there defaults to the passphrase provider.
DIY_BACKENDS = ("file://", "s3://", "gs://", "azblob://")

def find_pulumi(env: Mapping[str, str] | None = None) -> str | None:
    """The `pulumi` binary on PATH, else the installer's default place (~/.pulumi/bin)."""
    env = os.environ if env is None else env
    found = shutil.which("pulumi", path=env.get("PATH"))
    if found:
        return found
    home = env.get("HOME")
    if home:
        candidate = Path(home) / ".pulumi" / "bin" / "pulumi"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _project_backend_url(repo: Path) -> str | None:
    """`backend.url` from Pulumi.yaml, if the project pins one."""
    project = repo / "Pulumi.yaml"
    if not project.is_file():
        return None
    import yaml  # core dependency; imported here so `find_pulumi` stays dependency-free

    data = yaml.safe_load(project.read_text()) or {}
    backend = data.get("backend") or {}
    return backend.get("url") if isinstance(backend, dict) else None


def _logged_in_backend(env: Mapping[str, str]) -> str | None:
    """The backend `pulumi login` recorded for this user (~/.pulumi/credentials.json `current`)."""
    home = env.get("PULUMI_HOME") or (str(Path(env["HOME"]) / ".pulumi") if env.get("HOME") else None)
    if not home:
        return None
    creds = Path(home) / "credentials.json"
    try:
        return json.loads(creds.read_text()).get("current") or None
    except (OSError, ValueError):
        return None


def resolve_backend(env: Mapping[str, str], repo: Path = REPO_ROOT) -> tuple[str, bool]:
    """(backend URL, whether we chose it). Precedence: PULUMI_BACKEND_URL, Pulumi.yaml
    `backend.url`, the user's `pulumi login`, else our local file backend."""
    for configured in (env.get("PULUMI_BACKEND_URL"), _project_backend_url(repo), _logged_in_backend(env)):
        if configured:
            return configured, False
    return (repo / ".pulumi-state").resolve().as_uri(), True


def pulumi_env(base: Mapping[str, str] | None = None, repo: Path = REPO_ROOT, interactive: bool | None = None) -> dict[str, str]:
    """The environment to run `pulumi` with. Raises PulumiError when a file backend has no passphrase
    and nobody can be asked for one."""
    env = dict(os.environ if base is None else base)
    backend, chosen = resolve_backend(env, repo)
    if chosen:
        # An env var, not `pulumi login`: it does not change the user's global login.
        Path(backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        env["PULUMI_BACKEND_URL"] = backend
        print(f"pulumi state: {backend} (no backend configured; set PULUMI_BACKEND_URL to use another)", file=sys.stderr)
    interactive = sys.stdin.isatty() if interactive is None else interactive
    needs_passphrase = backend.startswith(DIY_BACKENDS)
    has_passphrase = "PULUMI_CONFIG_PASSPHRASE" in env or "PULUMI_CONFIG_PASSPHRASE_FILE" in env
    if needs_passphrase and not has_passphrase and not interactive:
        raise PulumiError(PASSPHRASE_HELP.format(backend=backend), code=2)
    env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    return env


def outputs_argv(stack: str, show_secrets: bool = False) -> list[str]:
    """`pulumi stack output` as JSON (without the binary)."""
    return ["stack", "output", "--json", "--stack", stack, *(["--show-secrets"] if show_secrets else [])]


def stack_outputs(stack: str, repo: Path = REPO_ROOT, timeout: float = 60.0) -> dict[str, Any]:
    """``pulumi stack output --json --show-secrets --stack NAME`` as a dict; PulumiError with install
    instructions when the CLI is missing (exit 127)."""
    binary = find_pulumi()
    if binary is None:
        raise PulumiError(INSTALL_HELP.format(plugins=", ".join(PLUGINS), repo=repo), code=127)
    env = pulumi_env(repo=repo, interactive=False)  # e.g. a file backend without a passphrase: its own message
    try:
        proc = subprocess.run([binary, *outputs_argv(stack, show_secrets=True)], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PulumiError(f"`pulumi stack output --stack {stack}` did not answer within {timeout:.0f}s") from None
    if proc.returncode != 0:
        # stderr from pulumi carries no secret values (they are only on stdout)
        raise PulumiError(f"`pulumi stack output --stack {stack}` failed ({proc.returncode}): "
                          f"{proc.stderr.strip()[-800:]}", code=proc.returncode or 1)
    try:
        data = json.loads(proc.stdout or "{}")
    except ValueError:
        raise PulumiError(f"`pulumi stack output --stack {stack}` did not print JSON") from None
    if not isinstance(data, dict):
        raise PulumiError(f"`pulumi stack output --stack {stack}` printed {type(data).__name__}, not an object")
    return data
