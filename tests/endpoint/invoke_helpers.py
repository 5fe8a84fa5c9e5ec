"""Run the endpoint tasks through invoke's real command-line parser, in-process."""

from __future__ import annotations

from invoke import Collection, Program


def run_task(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `invoke <argv>` with only the endpoint tasks loaded."""
    import infra.tasks.endpoint as endpoint

    ns = Collection()
    endpoint.register(ns)
    capsys.readouterr()
    code = 0
    try:
        Program(namespace=ns, name="invoke", binary="invoke").run(["invoke", *argv], exit=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
