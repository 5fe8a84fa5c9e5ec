"""`invoke render --stack NAME | --all [--out DIR]`: write each stack's launch plan files.

stdout carries the data (the table; for one stack also the engine command, its config files and the
plan's notes), fitted to the terminal's width; stderr carries what needs fixing: errors, the plan's
warnings, placeholder values still in a stack file and every refusal `invoke up` would make (the same
check deploy runs, infra.deploy.component.deploy_refusals).
"""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from infra.tasks import task

# Narrow enough for an 80-column terminal with every stack name whole; launch.json has the rest.
TABLE_COLUMNS = ("stack", "engine", "model", "gpu", "TP", "context", "seqs", "KV\ntokens", "full\nseqs", "fixes")


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _plan_table(rows: list[tuple[str, ...]]):
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
    for i, col in enumerate(TABLE_COLUMNS):
        # Values are never wrapped or cut (the stack name least of all); headers wrap when space is short.
        table.add_column(col, no_wrap=True, min_width=max((len(r[i]) for r in rows), default=1), justify="left" if i < 4 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def deploy_problems(name: str, spec, plan) -> list[str]:
    """One line per thing to fix before `invoke up`: placeholders still in the file, then deploy's refusals."""
    from infra.deploy.component import deploy_refusals
    from infra.stackfile import placeholders

    lines = [f"stack {name!r}: {key} = {value!r} is the example's placeholder: replace it with yours "
             "(README, Deploy to your own GPU box over SSH, step 2)" for key, value in placeholders(name)]
    lines += [f"`invoke up` would refuse: {exc}" for exc in deploy_refusals(spec, plan)]
    return lines


@task(help={"stack": "stack name (stacks/Pulumi.<stack>.yaml)", "all": "render every stack",
            "out": "output root (default build/render)"})
def render(c, stack=None, all=False, out=None):
    """Render launch.json, the engine config, docker-run.sh and client.env for stacks."""
    from rich.console import Console

    from infra import constants as C
    from infra.fit import FitError
    from infra.plan import build_plan
    from infra.render import render_stack
    from infra.spec import SpecError
    from infra.stackfile import list_stacks, load_stack

    data = Console(highlight=False)  # stdout at the terminal's width (COLUMNS, else 80, when redirected)
    err = Console(stderr=True, highlight=False)

    def problem(text: str, style: str = "red") -> None:
        err.print(text, style=style, markup=False, soft_wrap=True)

    if bool(stack) == bool(all):
        problem("give exactly one of --stack NAME or --all")
        sys.exit(2)
    names = list_stacks() if all else [stack]
    out_root = Path(out) if out else None
    failed: list[str] = []
    rows: list[tuple[str, ...]] = []
    rendered = []
    for name in names:
        try:
            path = render_stack(name, out_root)
            spec = load_stack(name)
            plan = build_plan(spec)
        except (SpecError, FitError) as exc:  # the message names the stack, the field and the fix
            failed.append(name)
            problem(str(exc) if isinstance(exc, SpecError) else f"stack {name!r}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - one bad file must not hide the others (render --all)
            if not all:
                raise
            failed.append(name)
            first = (str(exc).splitlines() or [""])[0][:300]
            problem(f"stack {name!r}: {type(exc).__name__}: {first}")
            continue
        for w in plan.warnings:
            problem(f"stack {name!r}: {w}", style="yellow")
        to_fix = deploy_problems(name, spec, plan)
        for line in to_fix:
            problem(line, style="yellow")
        fit = plan.fit_figures  # the engine's predicted accounting (infra.fit)
        rows.append((name, plan.backend, plan.model.split("/")[1].removeprefix("gpt-oss-"), re.sub(r"-\d+gb$", "", plan.gpu),
                     str(plan.tensor_parallel), str(plan.settings["max_model_len"]), str(plan.settings["max_num_seqs"]),
                     f"{fit['kv_tokens']:,}" if fit else "at start",
                     f"{fit['max_concurrency_at_max_model_len']:.2f}" if fit else "-", str(len(to_fix))))
        rendered.append((name, path, plan))
    if rows:
        data.print(_plan_table(rows))
    if not all and rendered:
        _, path, plan = rendered[0]
        print(f"engine command: {shlex.join(plan.argv)}")
        for fname, content in sorted(plan.files.items()):
            print(f"--- {C.CONFIG_DIR}/{fname} in the container ({_rel(path / fname)}):\n{content.rstrip()}")
        for note in plan.notes:
            print(f"note: {note}")
        print(f"files: {_rel(path)}/ ({', '.join(sorted(p.name for p in path.iterdir()))})")
    elif rendered:
        print(f"files: {_rel(rendered[0][1].parent)}/<stack>/ (launch.json, docker-run.sh, client.env, engine config)")
    if failed and all:
        problem(f"{len(failed)} of {len(names)} stack(s) not rendered: {', '.join(failed)}")
    if failed:
        sys.exit(1)


@task(help={"check": "only check that README.md's copy is current (exit 1 if not)"})
def stack_reference(c, check=False):
    """Write the README's stack key reference from infra/spec.py (the one source of every key)."""
    from infra.spec_reference import readme_block, render_reference, update_readme

    if check:
        if readme_block() != render_reference():
            print("README.md's stack key reference is stale: run `invoke stack-reference`", file=sys.stderr)
            sys.exit(1)
        return
    print("README.md: stack key reference " + ("updated" if update_readme() else "already current"), file=sys.stderr)
