"""`invoke preview|up|destroy|outputs --stack NAME`: thin wrappers around the `pulumi` CLI.

What they add over calling `pulumi` yourself:
- the stack name is checked against `stacks/Pulumi.<name>.yaml` before Pulumi starts;
- state goes to a local file backend (`file://<repo>/.pulumi-state`) when no backend is
  configured, so the `local` stack needs no Pulumi Cloud account;
- a missing CLI or a missing passphrase is one clear message and a non-zero exit.

Secrets and the passphrase: with a file backend Pulumi encrypts `secure:` config values with a
key derived from a passphrase. It reads it from `PULUMI_CONFIG_PASSPHRASE` or
`PULUMI_CONFIG_PASSPHRASE_FILE`; in a terminal it prompts when neither is set, anywhere else it
fails, so we refuse early. An empty passphrase (`export PULUMI_CONFIG_PASSPHRASE=`) is allowed
for stacks whose file holds no secret (the quick start's `local`), but `invoke config --secret`
refuses it, and an unset one, when the stack uses the passphrase provider: the `secure:` value
lands in the git-tracked stack file beside its salt, and an empty passphrase decrypts it. The
passphrase must stay the same for a stack's whole life: the stack file's `encryptionsalt` and
every `secure:` value in it are bound to it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from invoke import Collection
from invoke.exceptions import Exit

from infra import pulumi_run as _run_mod
from infra.constants import REPO_ROOT, STACKS_DIR
from infra.pulumi_run import DIY_BACKENDS, INSTALL_HELP, PLUGINS, PulumiError, find_pulumi, resolve_backend
from infra.tasks import task

MAX_PASSPHRASE_FILE = 64 * 1024
NO_PASSPHRASE = ("{key}: not stored: the passphrase is {state}, and with stack {stack}'s passphrase secrets provider "
                 "anyone with stacks/Pulumi.{stack}.yaml could decrypt the value; export PULUMI_CONFIG_PASSPHRASE='...' "
                 "(or PULUMI_CONFIG_PASSPHRASE_FILE) with a real one, or move the stack to a KMS/Vault secrets provider "
                 "(pulumi stack change-secrets-provider); see the README's Secrets step")


def stack_names(stacks_dir: Path = STACKS_DIR) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def check_stack(name: str | None, stacks_dir: Path = STACKS_DIR) -> None:
    known = stack_names(stacks_dir)
    if not name:
        raise Exit(f"give --stack NAME (one of: {', '.join(known) or '(none)'})", code=2)
    if name not in known:
        raise Exit(
            f"stack {name!r}: no file stacks/Pulumi.{name}.yaml. Known stacks: {', '.join(known) or '(none)'}",
            code=2,
        )


def pulumi_env(base: Mapping[str, str] | None = None, repo: Path = REPO_ROOT, interactive: bool | None = None) -> dict[str, str]:
    """infra.pulumi_run.pulumi_env, its refusal as invoke's Exit."""
    try:
        return _run_mod.pulumi_env(base, repo, interactive)
    except PulumiError as exc:
        raise Exit(str(exc), code=exc.code) from None


def pulumi_argv(action: str, stack: str, *, yes: bool = False, diff: bool = False,
                show_secrets: bool = False, refresh: bool = False, interactive: bool = True) -> list[str]:
    """The `pulumi` arguments for one action (without the binary)."""
    if action == "preview":
        argv = ["preview", "--stack", stack]
        if diff:
            argv.append("--diff")
    elif action == "up":
        argv = ["up", "--stack", stack]
        # Outside a terminal `pulumi up` cannot ask for confirmation and would fail.
        if yes or not interactive:
            argv.append("--yes")
        if diff:
            argv.append("--diff")
    elif action == "destroy":
        argv = ["destroy", "--stack", stack]
        if yes:
            argv.append("--yes")
        elif not interactive:
            raise Exit("destroy outside a terminal needs --yes (nothing was destroyed)", code=2)
    elif action == "outputs":
        return _run_mod.outputs_argv(stack, show_secrets)
    else:  # pragma: no cover - the tasks below are the only callers
        raise ValueError(action)
    if refresh:
        argv.append("--refresh")
    return argv


def _run(binary: str, argv: Sequence[str], env: Mapping[str, str], repo: Path) -> int:
    print("+ pulumi " + " ".join(argv), file=sys.stderr)
    return subprocess.run([binary, *argv], cwd=repo, env=dict(env), check=False).returncode


def run_pulumi(action: str, stack: str, *, repo: Path = REPO_ROOT, stacks_dir: Path = STACKS_DIR,
               env: Mapping[str, str] | None = None, interactive: bool | None = None, **flags: bool) -> int:
    """Check, pick the backend, create the stack in it when needed, run the action. Returns
    pulumi's exit code; raises Exit for our own refusals."""
    check_stack(stack, stacks_dir)
    base = dict(os.environ if env is None else env)
    binary = find_pulumi(base)
    if binary is None:
        raise Exit(INSTALL_HELP.format(plugins=", ".join(PLUGINS), repo=repo), code=127)
    interactive = sys.stdin.isatty() if interactive is None else interactive
    run_env = pulumi_env(base, repo, interactive)
    argv = pulumi_argv(action, stack, interactive=interactive, **flags)
    if action in ("preview", "up"):
        # A fresh backend does not know the stack yet: create it (config stays in stacks/).
        rc = _run(binary, ["stack", "select", "--create", "--stack", stack], run_env, repo)
        if rc != 0:
            return rc
    return _run(binary, argv, run_env, repo)


def _finish(rc: int) -> None:
    if rc != 0:
        raise Exit(code=rc)


@task(help={"stack": "stack name (stacks/Pulumi.<stack>.yaml)", "diff": "show a detailed property diff",
            "refresh": "refresh state from the real resources first"})
def preview(c, stack=None, diff=False, refresh=False):
    """Show what `up` would change for a stack (no image is built during preview)."""
    _finish(run_pulumi("preview", stack, diff=diff, refresh=refresh))


@task(help={"stack": "stack name (stacks/Pulumi.<stack>.yaml)", "yes": "skip the confirmation prompt",
            "diff": "show a detailed property diff", "refresh": "refresh state from the real resources first"})
def up(c, stack=None, yes=False, diff=False, refresh=False):
    """Build and push the image, deploy the stack, print its outputs."""
    _finish(run_pulumi("up", stack, yes=yes, diff=diff, refresh=refresh))


@task(help={"stack": "stack name", "yes": "skip the confirmation prompt (required outside a terminal)"})
def destroy(c, stack=None, yes=False):
    """Remove the stack's container, volume and other resources (pushed image tags are kept)."""
    _finish(run_pulumi("destroy", stack, yes=yes))


@task(help={"stack": "stack name", "show_secrets": "print secret outputs (api_key, client_env) in clear"})
def outputs(c, stack=None, show_secrets=False):
    """Print the stack outputs as JSON (endpoint_url, health_url, model, ...)."""
    _finish(run_pulumi("outputs", stack, show_secrets=show_secrets))


# Provider settings a stack may carry besides the project's own keys (secret ones marked True).
PROVIDER_KEYS = {"runpod:token": True, "kubernetes:context": False, "kubernetes:kubeconfig": True, "docker:host": False}


def config_key(key: str, secret: bool) -> tuple[str, bool]:
    """(fully qualified key, whether it is a --path key). Refuses unknown keys and secrets without --secret."""
    from infra.constants import CONFIG_NAMESPACE, SECRET_KEYS
    from infra.spec import _FIELDS, did_you_mean

    if ":" in key:
        if key.startswith(CONFIG_NAMESPACE + ":"):
            key = key.split(":", 1)[1]
        elif key in PROVIDER_KEYS:
            if PROVIDER_KEYS[key] and not secret:
                raise Exit(f"{key} is a secret: add --secret", code=2)
            return key, False
        else:
            raise Exit(f"config key {key!r}: not a key of this project; use a bare key (e.g. hf_token) for "
                       f"{CONFIG_NAMESPACE}:..., or one of {', '.join(PROVIDER_KEYS)}", code=2)
    top = key.split(".", 1)[0]
    known = [*_FIELDS, *SECRET_KEYS]
    if top not in known:
        raise Exit(f"config key {key!r}: unknown; {did_you_mean(top, known)}", code=2)
    if top in SECRET_KEYS and not secret:
        raise Exit(f"{key} is a secret: add --secret (it is stored encrypted in stacks/Pulumi.<stack>.yaml)", code=2)
    if secret and top not in SECRET_KEYS:
        raise Exit(f"{key} is not a secret setting; secrets are {', '.join(SECRET_KEYS)} (drop --secret)", code=2)
    return f"{CONFIG_NAMESPACE}:{key}", "." in key


def read_value(key: str, secret: bool, stdin=None) -> str:
    """The value from a prompt (hidden for secrets) in a terminal, else all of stdin; never from argv."""
    import getpass

    stdin = sys.stdin if stdin is None else stdin
    if stdin.isatty():
        value = getpass.getpass(f"{key} (hidden): ") if secret else input(f"{key}: ")
    else:
        value = stdin.read(1 << 20)
        if value.endswith("\n"):
            value = value[:-1]
            value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise Exit(f"{key}: empty value, nothing was set", code=2)
    if "\n" in value and secret:
        raise Exit(f"{key}: the value has a line break (a stray newline from a file?); nothing was set", code=2)
    return value


def passphrase_state(env: Mapping[str, str], cwd: Path = REPO_ROOT) -> str | None:
    """Why the passphrase Pulumi would use is no protection ('empty', 'unset', ...), else None. Pulumi's own
    order: PULUMI_CONFIG_PASSPHRASE when set (even empty), else PULUMI_CONFIG_PASSPHRASE_FILE's trimmed text,
    else a prompt (which accepts an empty answer, so unset counts as no passphrase)."""
    if "PULUMI_CONFIG_PASSPHRASE" in env:
        return None if env["PULUMI_CONFIG_PASSPHRASE"].strip() else "empty (PULUMI_CONFIG_PASSPHRASE)"
    path = env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if not path:
        return "unset"
    try:
        with open(cwd / path, "rb") as fh:  # relative to where pulumi runs
            text = fh.read(MAX_PASSPHRASE_FILE)
    except OSError:
        return "unreadable (PULUMI_CONFIG_PASSPHRASE_FILE)"
    return None if text.strip() else "empty (PULUMI_CONFIG_PASSPHRASE_FILE)"


def uses_passphrase_provider(stack_file: Path, backend: str) -> bool:
    """Whether the stack's secrets are encrypted with the passphrase: its file says `secretsprovider: passphrase`
    or carries an `encryptionsalt`, or names no provider on a backend whose default is the passphrase."""
    import yaml

    try:
        doc = yaml.safe_load(stack_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    provider = doc.get("secretsprovider")
    if isinstance(provider, str) and provider.strip():
        return provider.strip() == "passphrase"
    return bool(doc.get("encryptionsalt")) or backend.startswith(DIY_BACKENDS)


def set_config(stack: str | None, key: str, *, secret: bool = False, repo: Path = REPO_ROOT,
               stacks_dir: Path = STACKS_DIR, env: Mapping[str, str] | None = None, stdin=None,
               interactive: bool | None = None) -> int:
    """Create the stack in the project's backend if needed, then `pulumi config set` with the value on stdin."""
    check_stack(stack, stacks_dir)
    full, path = config_key(key, secret)
    base = dict(os.environ if env is None else env)
    binary = find_pulumi(base)
    if binary is None:
        raise Exit(INSTALL_HELP.format(plugins=", ".join(PLUGINS), repo=repo), code=127)
    state = passphrase_state(base, repo) if secret else None
    if state and uses_passphrase_provider(stacks_dir / f"Pulumi.{stack}.yaml", resolve_backend(base, repo)[0]):
        raise Exit(NO_PASSPHRASE.format(key=full, state=state, stack=stack), code=2)  # before the value is asked for
    value = read_value(full, secret, stdin)
    interactive = sys.stdin.isatty() if interactive is None else interactive
    run_env = pulumi_env(base, repo, interactive)
    rc = _run(binary, ["stack", "select", "--create", "--stack", stack], run_env, repo)
    if rc != 0:
        return rc
    argv = ["config", "set", *(["--secret"] if secret else ["--plaintext"]), *(["--path"] if path else []),
            full, "--stack", stack]
    print("+ pulumi " + " ".join(argv) + "  (value on stdin)", file=sys.stderr)
    return subprocess.run([binary, *argv], cwd=repo, env=run_env, input=value, text=True, check=False).returncode


CONFIG_HELP = {"stack": "stack name (stacks/Pulumi.<stack>.yaml)", "key": "config key: a stack key (hf_token, "
               "image.registry, ...) or a provider key (runpod:token)", "secret": "store it encrypted (required for secrets)"}


@task(help=dict(CONFIG_HELP), positional=["key"])
def config(c, key=None, stack=None, secret=False):
    """Set one stack config value (the value from a prompt or stdin, never the command line).

    It uses the project's state backend and passphrase, as `invoke up` does."""
    if key in ("-h", "--help"):  # invoke hands a flag to a pending positional argument
        print("Usage: invoke config --stack NAME KEY [--secret]   (the value: prompt or stdin)\n\n"
              + " ".join((config.__doc__ or "").split()) + "\n\nOptions:\n"
              + "\n".join(f"  {('--' + k if k != 'key' else 'KEY'):<10} {v}" for k, v in CONFIG_HELP.items()))
        return
    if not key:
        raise Exit("give the config KEY: invoke config --stack NAME KEY [--secret]", code=2)
    _finish(set_config(stack, key, secret=secret))


TASKS = (preview, up, destroy, outputs, config)


def register(ns: Collection) -> Collection:
    """Add the tasks at top level (`invoke up --stack local`, not `invoke pulumi-cli.up`)."""
    for t in TASKS:
        ns.add_task(t)
    return ns
