"""`invoke preview|up|destroy|outputs`: the wrappers around the Pulumi CLI.

There is no Pulumi CLI here, so a stand-in `pulumi` executable records how it was called; the
wrapper code (PATH lookup, backend choice, passphrase rule, arguments, exit codes) is the real one.
"""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from invoke import Collection, Context
from invoke.exceptions import Exit

from infra import constants as C
from infra.tasks import pulumi_cli

FAKE = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(),
        "backend": os.environ.get("PULUMI_BACKEND_URL"),
        "passphrase_set": "PULUMI_CONFIG_PASSPHRASE" in os.environ,
        "stdin": sys.stdin.read() if sys.argv[1:3] == ["config", "set"] else None}}) + "\\n")
sys.exit(int(os.environ.get("FAKE_PULUMI_RC", "0")))
"""


@pytest.fixture
def world(tmp_path):
    """A repo with one stack, a HOME without a Pulumi login, and a stand-in `pulumi` on PATH."""
    repo = tmp_path / "repo"
    (repo / "stacks").mkdir(parents=True)
    (repo / "Pulumi.yaml").write_text("name: gptoss-stacks\nruntime: python\nstackConfigDir: stacks\n")
    (repo / "stacks" / "Pulumi.local.yaml").write_text("config: {}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(FAKE)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "calls.jsonl"
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(home),
           "FAKE_PULUMI_LOG": str(log), "PULUMI_CONFIG_PASSPHRASE": ""}

    class World:
        def run(self, action, stack="local", interactive=False, **flags):
            return pulumi_cli.run_pulumi(action, stack, repo=repo, stacks_dir=repo / "stacks", env=env,
                                         interactive=interactive, **flags)

        def calls(self):
            return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    w = World()
    w.repo, w.env, w.home = repo, env, home
    return w


def test_up_creates_the_stack_in_a_local_file_backend_and_runs_up(world):
    assert world.run("up") == 0
    select, up = world.calls()
    state = (world.repo / ".pulumi-state").resolve()
    assert select["argv"] == ["stack", "select", "--create", "--stack", "local"]
    # Not a terminal: pulumi up cannot prompt, so it gets --yes.
    assert up["argv"] == ["up", "--stack", "local", "--yes"]
    assert up["backend"] == state.as_uri() and state.is_dir()
    assert up["cwd"] == str(world.repo) and up["passphrase_set"]


def test_interactive_up_keeps_the_confirmation_prompt(world):
    world.run("up", interactive=True)
    assert world.calls()[-1]["argv"] == ["up", "--stack", "local"]


def test_preview_diff_and_refresh(world):
    world.run("preview", diff=True, refresh=True)
    assert world.calls()[-1]["argv"] == ["preview", "--stack", "local", "--diff", "--refresh"]


def test_outputs_as_json_with_optional_secrets(world):
    world.run("outputs")
    world.run("outputs", show_secrets=True)
    plain, shown = world.calls()
    assert plain["argv"] == ["stack", "output", "--json", "--stack", "local"]
    assert shown["argv"] == ["stack", "output", "--json", "--stack", "local", "--show-secrets"]


def test_destroy_outside_a_terminal_needs_yes(world):
    with pytest.raises(Exit) as info:
        world.run("destroy")
    assert info.value.code == 2 and "--yes" in str(info.value.message)
    assert world.calls() == []
    world.run("destroy", yes=True)
    assert world.calls()[-1]["argv"] == ["destroy", "--stack", "local", "--yes"]


def test_a_configured_backend_is_respected(world):
    world.env["PULUMI_BACKEND_URL"] = "s3://team-state"
    world.run("preview")
    assert world.calls()[-1]["backend"] == "s3://team-state"
    assert not (world.repo / ".pulumi-state").exists()


def test_a_pulumi_login_is_respected(world):
    (world.home / ".pulumi").mkdir()
    (world.home / ".pulumi" / "credentials.json").write_text(json.dumps({"current": "https://api.pulumi.com"}))
    world.run("preview")
    assert world.calls()[-1]["backend"] is None  # pulumi uses its own login


def test_project_backend_in_pulumi_yaml_is_respected(world):
    (world.repo / "Pulumi.yaml").write_text("name: gptoss-stacks\nruntime: python\nbackend:\n  url: file:///srv/state\n")
    world.run("preview")
    assert world.calls()[-1]["backend"] is None  # pulumi reads Pulumi.yaml itself


def test_missing_passphrase_outside_a_terminal_is_one_clear_error(world):
    del world.env["PULUMI_CONFIG_PASSPHRASE"]
    with pytest.raises(Exit) as info:
        world.run("up")
    assert info.value.code == 2
    assert "PULUMI_CONFIG_PASSPHRASE" in info.value.message and "PULUMI_CONFIG_PASSPHRASE_FILE" in info.value.message
    assert world.calls() == []
    # In a terminal pulumi asks for it itself.
    assert world.run("preview", interactive=True) == 0


def test_passphrase_file_counts(world):
    del world.env["PULUMI_CONFIG_PASSPHRASE"]
    world.env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(world.home / "pass")
    assert world.run("preview") == 0


def test_missing_cli_says_how_to_install_and_exits_non_zero(world):
    world.env["PATH"] = str(world.home / "nothing-here")
    with pytest.raises(Exit) as info:
        world.run("up")
    assert info.value.code == 127
    message = info.value.message
    assert "bash scripts/bootstrap.sh --with-pulumi" in message and "brew install pulumi/tap/pulumi" in message
    assert "curl" not in message  # the README's set-up command, not a piped installer
    assert "docker, docker-build, random" in message


def test_installer_location_is_found_without_path(world):
    installed = world.home / ".pulumi" / "bin"
    installed.mkdir(parents=True)
    (installed / "pulumi").write_text(FAKE)
    (installed / "pulumi").chmod(0o755)
    world.env["PATH"] = str(world.home / "nothing-here")
    assert world.run("preview") == 0


def test_unknown_stack_is_refused_before_pulumi_runs(world):
    with pytest.raises(Exit) as info:
        world.run("up", stack="h100-vlm")
    assert info.value.code == 2 and "local" in info.value.message
    assert world.calls() == []


def test_pulumi_exit_code_is_passed_on(world):
    world.env["FAKE_PULUMI_RC"] = "3"
    assert world.run("preview") == 3  # stack select failed: preview not attempted
    assert len(world.calls()) == 1


def test_tasks_register_at_top_level_and_fail_with_pulumis_code(world, monkeypatch):
    ns = pulumi_cli.register(Collection())
    assert set(ns.task_names) >= {"preview", "up", "destroy", "outputs"}
    # Through the task itself, against this repo's real stacks/ (state kept in a temp dir).
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PULUMI_BACKEND_URL", (world.home / "state").as_uri())
    monkeypatch.setenv("FAKE_PULUMI_RC", "4")
    with pytest.raises(Exit) as info:
        pulumi_cli.up(Context(), stack="local")
    assert info.value.code == 4
    assert Path(world.calls()[0]["cwd"]) == pulumi_cli.REPO_ROOT


class Stdin:
    def __init__(self, text: str, tty: bool = False):
        self.text, self.tty = text, tty

    def isatty(self):
        return self.tty

    def read(self, n=-1):
        return self.text


def test_config_secret_uses_the_project_backend_creates_the_stack_and_passes_the_value_on_stdin(world):
    secret = "hf_canary_config_0001"
    world.env["PULUMI_CONFIG_PASSPHRASE"] = "correct horse battery staple"
    rc = pulumi_cli.set_config("local", "hf_token", secret=True, repo=world.repo, stacks_dir=world.repo / "stacks",
                               env=world.env, stdin=Stdin(secret + "\n"), interactive=False)
    assert rc == 0
    select, setc = world.calls()
    state = (world.repo / ".pulumi-state").resolve().as_uri()
    assert select["argv"] == ["stack", "select", "--create", "--stack", "local"] and select["backend"] == state
    assert setc["argv"] == ["config", "set", "--secret", f"{C.CONFIG_NAMESPACE}:hf_token", "--stack", "local"]
    assert setc["backend"] == state and setc["passphrase_set"] and setc["cwd"] == str(world.repo)
    assert setc["stdin"] == secret  # the value, without the newline of `echo`, on stdin ...
    assert not any(secret in " ".join(c["argv"]) for c in world.calls())  # ... never in argv


def test_config_plain_and_nested_keys(world):
    run = lambda key, value, **kw: pulumi_cli.set_config("local", key, repo=world.repo, stacks_dir=world.repo / "stacks",
                                                          env=world.env, stdin=Stdin(value), interactive=False, **kw)
    assert run("image.registry", "ghcr.io/acme") == 0
    assert world.calls()[-1]["argv"] == ["config", "set", "--plaintext", "--path", f"{C.CONFIG_NAMESPACE}:image.registry",
                                         "--stack", "local"]
    assert world.env["PULUMI_CONFIG_PASSPHRASE"] == ""  # the quick start's: fine for plain values ...
    world.env["PULUMI_CONFIG_PASSPHRASE"] = "correct horse battery staple"  # ... a secret needs a real one
    assert run("runpod:token", "rp_x", secret=True) == 0
    assert world.calls()[-1]["argv"][:4] == ["config", "set", "--secret", "runpod:token"]


@pytest.mark.parametrize("key, secret, words", [
    ("hf_token", False, "add --secret"),
    ("max_model_len", True, "not a secret setting"),
    ("max_model_lenn", False, "did you mean 'max_model_len'"),
    ("gptoss:max_model_len", False, "not a key of this project"),
    ("runpod:token", False, "add --secret"),
])
def test_config_refuses_bad_keys_before_calling_pulumi(world, key, secret, words):
    with pytest.raises(Exit) as info:
        pulumi_cli.set_config("local", key, secret=secret, repo=world.repo, stacks_dir=world.repo / "stacks",
                              env=world.env, stdin=Stdin("v"), interactive=False)
    assert info.value.code == 2 and words in str(info.value.message)
    assert world.calls() == []


def test_config_refuses_an_empty_value_and_an_unknown_stack(world):
    world.env["PULUMI_CONFIG_PASSPHRASE"] = "correct horse battery staple"
    with pytest.raises(Exit, match="empty value"):
        pulumi_cli.set_config("local", "hf_token", secret=True, repo=world.repo, stacks_dir=world.repo / "stacks",
                              env=world.env, stdin=Stdin(""), interactive=False)
    with pytest.raises(Exit, match="no file stacks/Pulumi.nope.yaml"):
        pulumi_cli.set_config("nope", "hf_token", secret=True, repo=world.repo, stacks_dir=world.repo / "stacks",
                              env=world.env, stdin=Stdin("x"), interactive=False)
    assert world.calls() == []


# ----------------------------------------------------------------------------- secrets need a passphrase (issue 24, finding 6)

class CountingStdin(Stdin):
    reads = 0

    def read(self, n=-1):
        CountingStdin.reads += 1
        return super().read(n)


def set_secret(world, stack="local", interactive=False):
    CountingStdin.reads = 0
    return pulumi_cli.set_config(stack, "hf_token", secret=True, repo=world.repo, stacks_dir=world.repo / "stacks",
                                 env=world.env, stdin=CountingStdin("hf_canary_config_0002"), interactive=interactive)


@pytest.mark.parametrize("passphrase_env", [
    {"PULUMI_CONFIG_PASSPHRASE": ""},  # the README quick start's
    {"PULUMI_CONFIG_PASSPHRASE": "  "},
    {"PULUMI_CONFIG_PASSPHRASE_FILE": "{empty_file}"},  # Pulumi trims the file's text: only a newline is empty
    {"PULUMI_CONFIG_PASSPHRASE": "", "PULUMI_CONFIG_PASSPHRASE_FILE": "{good_file}"},  # the variable wins (Pulumi's order)
    {},  # unset: Pulumi would prompt, and accepts an empty answer
])
@pytest.mark.parametrize("interactive", [False, True])
def test_config_secret_refuses_an_empty_or_unset_passphrase_before_anything_runs(world, tmp_path, passphrase_env,
                                                                                 interactive):
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "good").write_text("correct horse battery staple\n")
    del world.env["PULUMI_CONFIG_PASSPHRASE"]
    world.env.update({k: v.format(empty_file=tmp_path / "empty", good_file=tmp_path / "good")
                      for k, v in passphrase_env.items()})
    with pytest.raises(Exit) as info:
        set_secret(world, interactive=interactive)
    message = str(info.value.message)
    assert info.value.code == 2 and "\n" not in message
    assert "hf_token" in message and "PULUMI_CONFIG_PASSPHRASE" in message and "secrets provider" in message
    assert world.calls() == [] and CountingStdin.reads == 0  # no stack created, the secret not even asked for


@pytest.mark.parametrize("passphrase_env", [{"PULUMI_CONFIG_PASSPHRASE": "correct horse battery staple"},
                                            {"PULUMI_CONFIG_PASSPHRASE_FILE": "{good_file}"},
                                            {"PULUMI_CONFIG_PASSPHRASE_FILE": "pass.txt"}])  # where pulumi runs: the repo
def test_config_secret_with_a_passphrase_goes_through(world, tmp_path, passphrase_env):
    (tmp_path / "good").write_text("correct horse battery staple\n")
    (world.repo / "pass.txt").write_text("correct horse battery staple\n")
    del world.env["PULUMI_CONFIG_PASSPHRASE"]
    world.env.update({k: v.format(good_file=tmp_path / "good") for k, v in passphrase_env.items()})
    assert set_secret(world) == 0 and world.calls()[-1]["stdin"] == "hf_canary_config_0002"


@pytest.mark.parametrize("stack_file, backend", [
    ("secretsprovider: awskms://alias/gptoss?region=us-east-1\nencryptedkey: AQICAHh\nconfig: {}\n", None),
    ("secretsprovider: hashivault://gptoss\nconfig: {}\n", None),
    ("config: {}\n", "https://api.pulumi.com"),  # Pulumi Cloud: its own secrets service by default
])
def test_config_secret_without_a_passphrase_is_fine_with_another_secrets_provider(world, stack_file, backend):
    (world.repo / "stacks" / "Pulumi.local.yaml").write_text(stack_file)
    if backend:
        world.env["PULUMI_BACKEND_URL"] = backend
    assert set_secret(world) == 0 and world.calls()[-1]["argv"][:3] == ["config", "set", "--secret"]


def test_a_passphrase_stack_on_pulumi_cloud_still_needs_the_passphrase(world):
    (world.repo / "stacks" / "Pulumi.local.yaml").write_text("secretsprovider: passphrase\nconfig: {}\n")
    world.env["PULUMI_BACKEND_URL"] = "https://api.pulumi.com"
    with pytest.raises(Exit, match="PULUMI_CONFIG_PASSPHRASE"):
        set_secret(world)
    (world.repo / "stacks" / "Pulumi.local.yaml").write_text("encryptionsalt: v1:abc:def\nconfig: {}\n")
    with pytest.raises(Exit, match="PULUMI_CONFIG_PASSPHRASE"):
        set_secret(world)
    assert world.calls() == []


def test_the_quick_starts_empty_passphrase_still_deploys_a_stack_without_secrets(world):
    assert world.env["PULUMI_CONFIG_PASSPHRASE"] == ""
    assert world.run("up") == 0 and world.calls()[-1]["argv"][0] == "up"
