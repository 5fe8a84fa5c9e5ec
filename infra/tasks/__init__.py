"""invoke task modules; tasks.py at the repo root assembles them into one Collection.

Every module declares its tasks with this package's `task`, not invoke's: invoke 3 picks a task
argument's short flag from the letters of its dashed name and, once the letters before the first dash
are taken, picks the dash itself (`max_model_len` after `model`, `api_key_env` and `max_tokens` became
`--=STRING` in --help and `-`-prefixed nonsense on the command line). Skipping dashes fixes that for
every task. invoke also pops each argument's help text out of the task as it builds the parser, so a
task parsed twice in one process (tests, an embedding program) printed no help the second time: the
texts are put back after each parse.
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
        # A dash is treated as taken: invoke then tries the next character of the name.
        return super().arg_opts(name, default, set(taken_names) | {"-"})


def task(*args, **kwargs):
    """invoke.task with this package's Task class (see the module docstring)."""
    kwargs.setdefault("klass", Task)
    return invoke.task(*args, **kwargs)
