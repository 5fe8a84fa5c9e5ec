"""invoke task modules; tasks.py at the repo root assembles them into one Collection.

Every module declares its tasks with this package's `task`, not invoke's: invoke 3 picks a task
argument's short flag from the letters of its dashed name and, once the letters before the first dash
are taken, picks the dash itself (`max_model_len` after `model`, `api_key_env` and `max_tokens` became
`--=STRING` in --help and `-`-prefixed nonsense on the command line). Skipping dashes fixes that for
every task. invoke also pops each argument's help text out of the task as it builds the parser, so a
task parsed twice in one process (tests, an embedding program) printed no help the second time: the
texts are put back after each parse. A short flag is only ever a task argument's first letter, and
never `-h` (help, on every task): `outputs -h` was `--show-secrets` and `smoke-test -e` `--max-model-len`.

invoke looks for a module or package named `tasks` from the current folder upwards, so run from
`infra/` or below it finds this package before the repository's `tasks.py`: loaded that way (its
`__name__` is then `tasks`) the package hands invoke the root collection instead of an empty one.
"""
from __future__ import annotations

import invoke
from invoke.tasks import Task as _InvokeTask


class Task(_InvokeTask):
    """An invoke Task whose automatic short flags are letters of the name, never '-', and whose help
    texts survive being parsed."""

    def get_arguments(self, ignore_unknown_help=None):
        kept = dict(self.help)  # invoke's arg_opts pops from self.help; its leftover check still runs
        try:
            return super().get_arguments(ignore_unknown_help)
        finally:
            self.help = kept

    def arg_opts(self, name, default, taken_names):
        # invoke gives the first character of the name not in taken_names: block all but the first
        # letter (and '-' and 'h'), so a flag gets its own initial or no short form at all.
        first = name[0]
        blocked = set(name.replace("_", "-")) | {"-", "h"}
        if first not in taken_names and first != "h":
            blocked.discard(first)
        return super().arg_opts(name, default, set(taken_names) | blocked)


def task(*args, **kwargs):
    """invoke.task with this package's Task class (see the module docstring)."""
    kwargs.setdefault("klass", Task)
    return invoke.task(*args, **kwargs)


def _root_collection() -> invoke.Collection:
    """The repository's tasks.py collection, loaded by path (see the module docstring)."""
    import importlib.util
    import sys
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    if here in sys.path:  # invoke put this folder first on sys.path: its modules are not top-level names
        sys.path.remove(here)
    root = Path(__file__).resolve().parents[2] / "tasks.py"
    spec = importlib.util.spec_from_file_location("gptoss_stacks_tasks", root)
    if spec is None or spec.loader is None:
        raise ImportError(f"{root} is missing: it assembles the invoke tasks")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ns


if __name__ == "tasks":  # invoke found this package first (run from infra/ or below)
    ns = _root_collection()
