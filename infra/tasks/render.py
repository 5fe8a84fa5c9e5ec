"""`invoke render --stack NAME | --all [--out DIR]`: write each stack's launch plan files."""
from __future__ import annotations

import sys
from pathlib import Path

from infra.tasks import task


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@task(help={"stack": "stack name (stacks/Pulumi.<stack>.yaml)", "all": "render every stack",
            "out": "output root (default build/render)"})
def render(c, stack=None, all=False, out=None):
    """Render launch.json, the engine config, docker-run.sh and client.env for stacks."""
    from rich.console import Console
    from rich.table import Table

    from infra.fit import FitError
    from infra.plan import build_plan
    from infra.render import render_stack
    from infra.spec import SpecError
    from infra.stackfile import list_stacks, load_stack

    console = Console(stderr=True, width=max(Console(stderr=True).width, 120))
    if bool(stack) == bool(all):
        console.print("[red]give exactly one of --stack NAME or --all[/red]")
        sys.exit(2)
    names = list_stacks() if all else [stack]
    out_root = Path(out) if out else None
    table = Table(title="rendered stacks")
    for col in ("stack", "backend", "model", "gpu", "TP", "context", "seqs", "KV tokens", "full-length seqs", "files"):
        table.add_column(col)
    failed: list[str] = []
    for name in names:
        try:
            path = render_stack(name, out_root)
            plan = build_plan(load_stack(name))
        except (SpecError, FitError) as exc:
            failed.append(name)
            console.print(f"{name}: {exc}", style="red", markup=False, highlight=False)
            continue
        except Exception as exc:  # noqa: BLE001 - one bad file must not hide the others (render --all)
            if not all:
                raise
            failed.append(name)
            first = (str(exc).splitlines() or [""])[0][:300]
            console.print(f"{name}: {type(exc).__name__}: {first}", style="red", markup=False, highlight=False)
            continue
        fit = plan.fit_figures  # the engine's predicted accounting (infra.fit)
        for w in plan.warnings:
            console.print(f"[yellow]{name}: {w}[/yellow]")
        table.add_row(name, plan.backend, plan.model.split("/")[1], plan.gpu, str(plan.tensor_parallel),
                      str(plan.settings["max_model_len"]), str(plan.settings["max_num_seqs"]),
                      f"{fit['kv_tokens']:,}" if fit else "at start",
                      f"{fit['max_concurrency_at_max_model_len']:.2f}" if fit else "at start", _rel(path))
    console.print(table)
    if failed:
        console.print(f"{len(failed)} of {len(names)} stack(s) not rendered: {', '.join(failed)}",
                      style="red", markup=False, highlight=False)
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
