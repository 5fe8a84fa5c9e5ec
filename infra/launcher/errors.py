"""Launcher refusals: one line, exit code 2, before the engine starts."""
from __future__ import annotations

EXIT_CONFIG = 2  # bad env value, GPU/fit/stack mismatch: the user must change something
EXIT_ENGINE_MISSING = 127  # the engine executable is not in the image


class LaunchError(Exception):
    """A refusal with the variable/field, the value and the fix in one line."""

    def __init__(self, message: str, code: int = EXIT_CONFIG):
        self.code = code
        super().__init__(message)
