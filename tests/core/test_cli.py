"""The invoke command line as a user meets it: every task's --help, flag names, render --all past a bad file."""
from __future__ import annotations

import copy
import re

import pytest
from invoke import Program

import tasks
from infra import constants as C
from infra.endpoint.checks import CHECK_NAMES


def invoke(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = 0
    try:
        # A copy each time: invoke pops a task's help texts when it parses its arguments.
        Program(namespace=copy.deepcopy(tasks.ns), name="invoke", binary="invoke").run(["invoke", *argv], exit=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


TASK_NAMES = sorted(tasks.ns.task_names)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_has_help_with_true_flag_names(name, capsys):
    code, out, err = invoke([name, "--help"], capsys)
    assert code == 0, err
    assert out.startswith("Usage: invoke ") and f" {name} " in out.splitlines()[0]
    task = tasks.ns[name]
    import inspect

    params = {p.replace("_", "-") for p in list(inspect.signature(task.body).parameters)[1:]}
    flags = re.findall(r"^\s+(?:-\w(?: STRING)?, )?--([^\s=]*)", out, flags=re.M)
    assert flags, out
    for flag in flags:
        assert flag, f"{name}: an empty flag name in --help:\n{out}"
        assert flag in params, f"{name}: --{flag} is not a parameter ({sorted(params)})"


def test_pulumi_tasks_without_stack_say_what_to_give(capsys):
    for name in ("up", "preview", "destroy", "outputs"):
        code, out, err = invoke([name], capsys)
        assert code == 2 and "give --stack NAME" in err and "local" in err


def test_smoke_test_help_lists_the_check_names(capsys):
    _, out, _ = invoke(["smoke-test", "--help"], capsys)
    text = " ".join(out.split())
    for check in CHECK_NAMES:
        assert check in text


def test_render_all_carries_on_past_a_bad_stack_file(tmp_path, monkeypatch, capsys):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    good = (C.STACKS_DIR / "Pulumi.h200-vllm.yaml").read_text()
    (stacks / "Pulumi.a-good.yaml").write_text(good)
    (stacks / "Pulumi.b-broken-yaml.yaml").write_text("config:\n  gptoss-stacks:backend: [vllm\n")
    (stacks / "Pulumi.c-bad-key.yaml").write_text(good.replace("gptoss-stacks:gpu:", "gptoss-stacks:gpuu:"))
    (stacks / "Pulumi.d-good.yaml").write_text(good)
    monkeypatch.setattr(C, "STACKS_DIR", stacks)
    code, out, err = invoke(["render", "--all", "--out", str(tmp_path / "out")], capsys)
    assert code == 1
    assert (tmp_path / "out" / "a-good" / "launch.json").is_file() and (tmp_path / "out" / "d-good" / "launch.json").is_file()
    assert not (tmp_path / "out" / "b-broken-yaml").exists()
    assert "Traceback" not in out + err
    assert "stack 'b-broken-yaml'" in err and "stack 'c-bad-key'" in err and "did you mean 'gpu'" in err
    assert "2 of 4 stack(s) not rendered: b-broken-yaml, c-bad-key" in " ".join(err.split())
    assert "a-good" in out and "d-good" in out and "b-broken-yaml" not in out  # the table (stdout) has the rendered ones


def test_readme_stack_key_reference_is_generated_from_the_spec_and_current():
    from infra.spec_reference import readme_block, render_reference

    block = readme_block()
    assert block == render_reference(), "README.md is stale: run `invoke stack-reference`"
    from infra.spec import _FIELDS

    for field in _FIELDS:  # every key of the spec is in it
        assert f"| `{field}` |" in block


def test_readme_first_two_commands_are_the_set_up_and_the_ci_test_command():
    readme = (C.REPO_ROOT / "README.md").read_text().splitlines()
    ci = (C.REPO_ROOT / ".ci" / "run").read_text()
    test_command = readme[2].split("#")[0].strip()
    assert readme[0] == "```bash" and "invoke up --stack local" in readme[1]
    assert test_command in ci


def test_short_flags_are_initials_never_a_dash_or_h():
    """invoke's own Task gives `max_model_len` the short flag '-' once m, a and x are taken; ours gives a
    flag its initial or nothing, and never -h (help on every task; `outputs -h` was --show-secrets)."""
    import invoke as _invoke

    from infra.tasks import Task, task

    def body(c, model=None, api_key_env=None, max_tokens=None, max_model_len=None, hosts=None, extra=None):
        """A task whose last argument's leading letters are all taken."""

    def short_flags(t):
        return {a.attr_name or a.name: [n for n in a.names if len(n) == 1] for a in t.get_arguments()}

    assert short_flags(_invoke.task(body))["max_model_len"] == ["-"]  # the invoke behaviour worked around
    assert short_flags(_invoke.task(body))["hosts"] == ["h"] and short_flags(_invoke.task(body))["extra"] == ["e"]
    ours = short_flags(task(body))
    assert ours == {"model": ["m"], "api_key_env": ["a"], "max_tokens": [], "max_model_len": [], "hosts": [], "extra": ["e"]}
    for t in tasks.ns.tasks.values():
        for arg in t.get_arguments():
            short = [n for n in arg.names if len(n) == 1]
            assert short in ([], [arg.name[0]]) and short != ["h"], (t.name, arg.name, short)
    assert all(isinstance(t, Task) for t in tasks.ns.tasks.values())  # every registered task uses it


def test_help_texts_survive_a_parse():
    """invoke pops help texts while building a parser; a task parsed twice in one process kept none."""
    from infra.tasks.endpoint import smoke_test

    first = {a.name: a.help for a in smoke_test.get_arguments()}
    second = {a.name: a.help for a in smoke_test.get_arguments()}
    assert first == second and "health, models" in " ".join(first["only"].split())


def test_h_is_help_on_every_task(capsys):
    for name in ("outputs", "smoke-test", "wait-ready", "render"):
        code, out, err = invoke([name, "-h"], capsys)
        assert code == 0 and out.startswith("Usage: invoke "), (name, out, err)


def test_task_list_descriptions_are_whole_sentences(capsys):
    """`invoke --list` shows a docstring's first line: `config`'s stopped mid-sentence ('the value is read')."""
    for t in tasks.ns.tasks.values():
        first = (t.body.__doc__ or "").strip().splitlines()[0]
        assert first.endswith("."), (t.name, first)
    code, out, _ = invoke(["--list"], capsys)
    assert code == 0 and "never the command line)." in " ".join(out.split())


# --- issue 19: what a newcomer reads must be true ---------------------------------------------------

def _stacks(tmp_path, monkeypatch, **files: str):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for name, text in files.items():
        (stacks / f"Pulumi.{name}.yaml").write_text(text)
    monkeypatch.setattr(C, "STACKS_DIR", stacks)
    return stacks


def test_render_reports_every_refusal_up_would_make_and_the_placeholders(tmp_path, capsys):
    """The example h100-vllm stack renders, but `invoke up` refuses it (no base digest, no registry password):
    render says so with deploy's own check, and names each example value still in the file."""
    from infra.deploy.component import GptOssDeploymentArgs, deploy_refusals, validate
    from infra.plan import build_plan
    from infra.stackfile import load_stack

    code, out, err = invoke(["render", "--stack", "h100-vllm", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    spec = load_stack("h100-vllm")
    plan = build_plan(spec)
    refusals = deploy_refusals(spec, plan)
    assert {e.field for e in refusals} == {"registry_password", "image.base_digest"}
    flat = " ".join(err.split())
    for exc in refusals:
        assert f"`invoke up` would refuse: {' '.join(str(exc).split())}" in flat
    with pytest.raises(type(refusals[0]), match="registry_password"):  # deploy raises the same first refusal
        validate(GptOssDeploymentArgs(spec=spec, plan=plan))
    for key, value in (("docker.host", "ssh://ubuntu@gpu-h100.internal"), ("image.registry", "ghcr.io/your-org"),
                       ("image.registry_username", "your-org-bot")):
        assert f"{key} = {value!r} is the example's placeholder" in flat
    assert re.search(r"^h100-vllm .* 5$", out, flags=re.M), out  # the table's `fixes` column
    code, out, err = invoke(["render", "--stack", "local", "--out", str(tmp_path)], capsys)
    assert code == 0 and "would refuse" not in err and "placeholder" not in err and re.search(r"^local .* 0$", out, flags=re.M)


def test_a_key_written_twice_is_refused_with_its_line(tmp_path, monkeypatch, capsys):
    """PyYAML keeps the last of two equal keys: the SSH host vanished and the stack became a local socket."""
    text = (C.STACKS_DIR / "Pulumi.h100-vllm.yaml").read_text() + "  gptoss-stacks:docker:\n    publish_address: 127.0.0.1\n"
    nested = "config:\n  gptoss-stacks:backend: vllm\n  gptoss-stacks:gpu: auto\n  gptoss-stacks:docker:\n" \
             "    host: ssh://a@b\n    host: unix:///var/run/docker.sock\n"
    merged = "base: &b {gpu: auto}\nconfig:\n  gptoss-stacks:backend: vllm\n  gptoss-stacks:docker:\n    <<: {host: ssh://a@b}\n" \
             "    host: ssh://c@d\n"
    _stacks(tmp_path, monkeypatch, twice=text, nested=nested, merged=merged)
    code, out, err = invoke(["render", "--stack", "twice", "--out", str(tmp_path / "o")], capsys)
    first = text.splitlines().index("  gptoss-stacks:docker:") + 1
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0, err  # one line
    assert f"key 'gptoss-stacks:docker' is already set at line {first}" in err and f"line {len(text.splitlines()) - 1}" in err
    code, out, err = invoke(["render", "--stack", "nested", "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and "key 'host' is already set at line 5" in err and "at line 6" in err
    from infra.stackfile import read_yaml_bounded

    doc = read_yaml_bounded(tmp_path / "stacks" / "Pulumi.merged.yaml", "merged")  # a YAML merge may repeat a key
    assert doc["config"]["gptoss-stacks:docker"] == {"host": "ssh://c@d"}
    # two equal keys on one line (a flow mapping) are refused too
    flow = tmp_path / "stacks" / "Pulumi.flow.yaml"
    flow.write_text("config:\n  gptoss-stacks:docker: {host: ssh://a@b, host: unix:///var/run/docker.sock}\n")
    with pytest.raises(Exception, match="key 'host' is already set at line 2"):
        read_yaml_bounded(flow, "flow")


def test_one_bad_stack_is_one_message(tmp_path, monkeypatch, capsys):
    """No empty table, no 'not rendered' summary, the stack named once; the fix for `32k` is a real one."""
    good = (C.STACKS_DIR / "Pulumi.local.yaml").read_text()
    _stacks(tmp_path, monkeypatch, short=good.replace("gptoss-stacks:gpu_count: 1", "gptoss-stacks:max_model_len: 32k"))
    code, out, err = invoke(["render", "--stack", "short", "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and out == "" and err.count("short") == 1, (out, err)
    assert "not rendered" not in err and "above" not in err and "e.g. 32768 (not 32k)" in " ".join(err.split())


def test_render_one_stack_shows_the_engine_command_and_config_on_stdout(tmp_path, capsys):
    code, out, err = invoke(["render", "--stack", "h200-vllm", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert "engine command: vllm serve openai/gpt-oss-120b --config /etc/gptoss/vllm.yaml" in out
    assert (tmp_path / "h200-vllm" / "vllm.yaml").read_text().strip() in out
    assert "KV cache:" in out  # the plan's notes
    assert "engine command" not in err and "h200-vllm" in out


def _run_invoke(args: list[str], cwd, columns: int = 80):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb"}
    return subprocess.run([str(Path(sys.executable).parent / "invoke"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_render_all_fits_80_columns_with_every_stack_name_whole(tmp_path):
    """The table was forced to >= 120 columns on stderr (wrapped at 80, `h100x2-sgla…`); it is data, on stdout."""
    from infra.stackfile import list_stacks

    r = _run_invoke(["render", "--all", "--out", str(tmp_path)], C.REPO_ROOT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1].startswith("files: ")  # then prose, which the terminal wraps
    lines = lines[:-1]
    assert max(len(line) for line in lines) <= 80, r.stdout
    firsts = {line.split()[0] for line in lines if line.strip()}
    assert set(list_stacks()) <= firsts, r.stdout
    assert "│" not in r.stderr and "KV" not in r.stderr  # no table on stderr


@pytest.mark.parametrize("folder", ["infra", "infra/tasks", "infra/deploy/targets", "stacks"])
def test_invoke_works_from_any_folder_of_the_checkout(folder, tmp_path):
    """From infra/ or below invoke found the infra/tasks package before tasks.py ('No idea what render is')."""
    listed = _run_invoke(["--list"], C.REPO_ROOT / folder)
    assert listed.returncode == 0 and "render" in listed.stdout and "smoke-test" in listed.stdout, listed.stderr
    r = _run_invoke(["render", "--stack", "local", "--out", str(tmp_path)], C.REPO_ROOT / folder)
    assert r.returncode == 0 and (tmp_path / "local" / "launch.json").is_file(), r.stderr


def test_120b_on_a_24gb_card_names_the_documents():
    from infra.spec import SpecError, load_spec

    with pytest.raises(SpecError) as exc:
        load_spec({"backend": "vllm", "gpu": "rtx4090-24gb", "model": "openai/gpt-oss-120b"}, stack="s")
    assert "seeds" not in str(exc.value) and "the gpt-oss-sglang image README" in str(exc.value)


COMMAND_WORDS = ("invoke", "pulumi", "bash", "brew", "python", "python3", "curl", "docker", "kubectl")


def _words(command: str) -> list[str]:
    """A command's words, placeholders (NAME, <token>, a URL, an f-string field) as '*'."""
    return ["*" if re.fullmatch(r"[A-Z][A-Z_]*|<[^>]*>|https?://\S+|\{[^}]*\}", w) else w for w in command.split()]


def _readme_commands() -> list[list[str]]:
    text = (C.REPO_ROOT / "README.md").read_text()
    found = re.findall(r"`([^`\n]+)`", text)
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        found += [line.split("  #")[0].strip() for line in block.splitlines()]
    return [_words(part) for c in found for part in c.split(" && ") if part.split()[:1] and part.split()[0] in COMMAND_WORDS]


def _documented(command: str, readme: list[list[str]]) -> bool:
    mine = _words(command)
    return any(len(r) == len(mine) and all(a == b or "*" in (a, b) for a, b in zip(r, mine)) for r in readme)


def _commands_in(text: str) -> list[str]:
    return [c for c in re.findall(r"`([^`\n]+)`", text) if c.split()[0] in COMMAND_WORDS]


def test_every_fix_a_message_gives_is_a_command_the_readme_documents(tmp_path, monkeypatch):
    """The hints said `pulumi config set --secret KEY <value>` (a secret on argv, which the README forbids)
    and `curl ... | sh`; each command a fix names must be one the README documents."""
    from infra.deploy.component import deploy_refusals
    from infra.deploy.image import validate_image
    from infra.plan import build_plan
    from infra.spec import SpecError, load_spec
    from infra.stackfile import load_stack, namespace_error
    from infra.tasks.pulumi_cli import INSTALL_HELP, PLUGINS

    base = {"backend": "vllm", "gpu": "h100-80gb"}
    failing = [
        lambda: load_spec({**base, "api_key": "plain"}, stack="s"),
        lambda: load_spec({**base, "api_key_mode": "config"}, stack="s"),
        lambda: load_spec({**base, "image": {"registry": "https://u:p@ghcr.io/x"}}, stack="s"),
        lambda: load_spec({**base, "image": {"registry": "ghcr.io/x", "registry_username": "u"}}, stack="s").check_deploy_secrets(),
        lambda: validate_image(*(lambda sp: (sp, build_plan(sp)))(load_spec({**base, "image": {"registry": "ghcr.io/x"}}, stack="s"))),
        lambda: (_ for _ in ()).throw(namespace_error("gptoss:api_key", "s")),
        lambda: load_spec({**base, "max_model_len": "32k"}, stack="s"),
    ]
    fixes = []
    for make in failing:
        with pytest.raises(SpecError) as exc:
            make()
        fixes.append(exc.value.fix)
    spec = load_stack("h100-vllm")
    fixes += [e.fix for e in deploy_refusals(spec, build_plan(spec))]
    readme = _readme_commands()
    commands = [c for fix in fixes for c in _commands_in(fix)]
    assert any(c.startswith("invoke config --stack s api_key --secret") for c in commands)
    assert "invoke lock-images" in commands
    install = INSTALL_HELP.format(plugins=", ".join(PLUGINS), repo=C.REPO_ROOT)
    commands += _commands_in(install) + ["bash scripts/bootstrap.sh --with-pulumi"]
    assert "bash scripts/bootstrap.sh --with-pulumi" in install and "curl" not in install
    for command in commands:
        assert _documented(command, readme), f"`{command}` is not a command the README documents"
    assert not any("config set --secret" in f for f in fixes)


def test_no_message_puts_a_secret_on_the_command_line():
    """Every string the code can print (docstrings and comments aside) is free of `pulumi config set --secret`."""
    import ast

    for path in (C.REPO_ROOT / "infra").rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert "config set --secret" not in node.value, f"{path}:{node.lineno}"


def test_bootstrap_says_what_failed_when_pulumi_cannot_be_downloaded(tmp_path):
    """It exited 6 with only curl's 'Could not resolve host'."""
    import os
    import shutil
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "cat", "printf"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    curl = bin_dir / "curl"
    curl.write_text("#!/bin/bash\necho 'curl: (6) Could not resolve host: get.pulumi.com' >&2\nexit 6\n")
    curl.chmod(0o755)
    r = subprocess.run([shutil.which("bash"), "-c", f"source {C.REPO_ROOT / 'scripts/bootstrap.sh'}; install_pulumi"],
                       env={"PATH": str(bin_dir), "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=60,
                       cwd=C.REPO_ROOT)
    assert r.returncode != 0
    flat = " ".join(r.stderr.split())
    assert "Could not resolve host" in flat and "could not install the Pulumi CLI" in flat
    assert "brew install pulumi/tap/pulumi" in flat and "https://github.com/pulumi/pulumi/releases" in flat
    readme = " ".join((C.REPO_ROOT / "README.md").read_text().split())
    assert "`brew install pulumi/tap/pulumi`" in readme and "https://github.com/pulumi/pulumi/releases" in readme
    assert os.environ.get("HOME") != str(tmp_path)


def test_offline_lock_images_says_what_to_do_next(tmp_path, capsys):
    images = tmp_path / "images.yaml"
    images.write_text('vllm:\n  cuda: {image: 127.0.0.1:1/acme/engine, tag: v1, cuda: "13.0", min_driver: 580, source: t}\n')
    code, out, err = invoke(["lock-images", "--images", str(images), "--lock", str(tmp_path / "lock.yaml"), "--timeout", "10"],
                            capsys)
    flat = " ".join(err.split())
    assert code == 1 and "1 of 1 image(s) not resolved. Next: run `invoke lock-images`" in flat
    assert "image.allow_unpinned_base: true" in flat
    assert all(_documented(c, _readme_commands()) for c in _commands_in(flat))
