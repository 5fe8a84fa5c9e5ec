"""`invoke check-flags [--stack NAME | --all] [--diff] [--refresh-snapshot] [--rebuild]`.

Renders each stack's launch plan and validates argv and the --config file against the REAL
vLLM 0.33.0 / SGLang 0.5.23 parsers, each in its own parse-only venv (built on first use,
cached): the engine's own parse must accept it, and the exact-name / registry / range checks
must pass against the live parser's dump. `--diff` compares the committed snapshot with the live
parser; `--refresh-snapshot` rewrites the snapshots from the live parsers.
"""
from __future__ import annotations

import sys

from infra.tasks import task


def _launches(names):
    from infra.plan import build_plan
    from infra.stackfile import load_stack

    launches, errors = {}, {}
    for name in names:
        try:
            launches[name] = build_plan(load_stack(name)).to_launch_json()
        except Exception as exc:  # a stack that doesn't render can't be flag-checked
            errors[name] = f"{type(exc).__name__}: {exc}"
    return launches, errors


def _diff(console, engines, refresh):
    from devtools.flagcheck import live
    from infra.flagcheck.snapshot import load_snapshot, snapshot_path

    changed = 0
    for engine in engines:
        dump = live.live_dump(engine)
        try:
            old = load_snapshot(engine)
        except FileNotFoundError:
            old = {}
        lines = live.diff_dumps(old, dump)
        if refresh:
            path = live.write_snapshot(engine, dump)
            console.print(f"[green]{engine}: wrote {path}[/green] ({len(lines)} differences before)")
            continue
        if lines:
            changed += 1
            console.print(f"[red]{engine}: snapshot {snapshot_path(engine).name} differs from the live parser "
                          f"({len(lines)}):[/red]")
            for line in lines[:200]:
                console.print(f"  {line}", markup=False)
            console.print("  run `invoke check-flags --refresh-snapshot` if the engine change is intended")
        else:
            console.print(f"[green]{engine}: snapshot == live parser "
                          f"({len(dump['options'])} option strings)[/green]")
    return changed


@task(help={"stack": "one stack (stacks/Pulumi.<stack>.yaml)", "all": "every stack (the default)",
            "diff": "compare the committed snapshots with the live parsers",
            "refresh_snapshot": "rewrite the snapshots from the live parsers",
            "rebuild": "rebuild the engine venvs even if cached"})
def check_flags(c, stack=None, all=False, diff=False, refresh_snapshot=False, rebuild=False):
    """Validate rendered argv/config against the real vLLM/SGLang parsers (parse-only venvs)."""
    from rich.console import Console
    from rich.table import Table

    from devtools.flagcheck import live, venvs
    from infra.constants import ENGINE_VERSIONS
    from infra.stackfile import list_stacks

    console = Console(stderr=True, width=max(Console(stderr=True).width, 140))
    if stack and all:
        console.print("[red]give --stack NAME or --all, not both[/red]")
        sys.exit(2)
    if rebuild:
        for engine in sorted(ENGINE_VERSIONS):
            venvs.ensure_venv(engine, rebuild=True)
    if diff or refresh_snapshot:
        sys.exit(1 if _diff(console, sorted(ENGINE_VERSIONS), refresh_snapshot) else 0)

    names = [stack] if stack else list_stacks()
    launches, errors = _launches(names)
    results = live.check_launches(launches)

    table = Table(title=f"check-flags: real parsers (vllm {ENGINE_VERSIONS['vllm']}, "
                        f"sglang {ENGINE_VERSIONS['sglang']})", show_lines=True)
    for col in ("stack", "backend", "real parser", "exact names / registries", "problems"):
        table.add_column(col, overflow="fold")
    bad = 0
    for name in names:
        if name in errors:
            bad += 1
            table.add_row(name, "?", "[red]not rendered[/red]", "-", errors[name])
            continue
        r = results[name]
        ok = r["parser_ok"] and not r["problems"]
        bad += not ok
        details = [f"parser: {r['parser_error']}"] if not r["parser_ok"] else []
        details += [str(p) for p in r["problems"]]
        table.add_row(name, r["backend"],
                      "[green]accepts[/green]" if r["parser_ok"] else "[red]rejects[/red]",
                      "[green]ok[/green]" if not r["problems"] else f"[red]{len(r['problems'])}[/red]",
                      "\n".join(details) or "-")
    console.print(table)
    if bad:
        console.print(f"[red]{bad} of {len(names)} stack(s) failed the real-parser check[/red]")
        sys.exit(1)
    console.print(f"[green]all {len(names)} stack(s) pass the real-parser check[/green]")


def register(ns) -> None:
    """Called by tasks.py: adds `check-flags` to the Collection."""
    ns.add_task(check_flags)
