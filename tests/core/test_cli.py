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
    assert "b-broken-yaml:" in err and "c-bad-key:" in err and "did you mean 'gpu'" in err
    assert "2 of 4 stack(s) not rendered: b-broken-yaml, c-bad-key" in " ".join(err.split())


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


def test_short_flags_are_letters_never_a_dash():
    """invoke's own Task gives `max_model_len` the short flag '-' once m, a and x are taken."""
    import invoke as _invoke

    from infra.tasks import Task, task

    def body(c, model=None, api_key_env=None, max_tokens=None, max_model_len=None):
        """A task whose last argument's leading letters are all taken."""

    def short_flags(t):
        return {a.attr_name or a.name: [n for n in a.names if len(n) == 1] for a in t.get_arguments()}

    assert short_flags(_invoke.task(body))["max_model_len"] == ["-"]  # the invoke behaviour worked around
    ours = short_flags(task(body))
    assert ours["max_model_len"] == ["o"]
    assert all(len(f) == 1 and f[0].isalpha() for f in ours.values()), ours
    assert all(isinstance(t, Task) for t in tasks.ns.tasks.values())  # every registered task uses it


def test_help_texts_survive_a_parse():
    """invoke pops help texts while building a parser; a task parsed twice in one process kept none."""
    from infra.tasks.endpoint import smoke_test

    first = {a.name: a.help for a in smoke_test.get_arguments()}
    second = {a.name: a.help for a in smoke_test.get_arguments()}
    assert first == second and "health, models" in " ".join(first["only"].split())
