"""`invoke render --stack NAME | --all [--out DIR]`: write each stack's launch plan files."""
from __future__ import annotations

import sys
from pathlib import Path

from invoke import task


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
    for col in ("stack", "backend", "model", "gpu", "TP", "context", "seqs", "fit", "files"):
        table.add_column(col)
    failed = 0
    for name in names:
        try:
            path = render_stack(name, out_root)
            plan = build_plan(load_stack(name))
        except (SpecError, FitError) as exc:
            failed += 1
            console.print(f"[red]{name}: {exc}[/red]")
            continue
        for w in plan.warnings:
            console.print(f"[yellow]{name}: {w}[/yellow]")
        table.add_row(name, plan.backend, plan.model.split("/")[1], plan.gpu, str(plan.tensor_parallel),
                      str(plan.settings["max_model_len"]), str(plan.settings["max_num_seqs"]),
                      "ok" if plan.fit else "at start", _rel(path))
    console.print(table)
    if failed:
        sys.exit(1)
