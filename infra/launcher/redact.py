"""What the launcher prints never shows a secret: env values by name, option values by option."""
from __future__ import annotations

from typing import Mapping

from infra import constants as C

REDACTED = "<redacted>"


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """Values of secret-looking names (constants.looks_secret, the spec's rule too) hidden."""
    return {k: (REDACTED if C.looks_secret(k) and v else v) for k, v in env.items()}


def redact_argv(argv: list[str]) -> list[str]:
    # TODO(lead, issue 18 part 1): H1's one option parser (infra/engine_command.py) replaces this walk.
    out, hide = [], False
    for a in argv:
        if hide:
            out.append(REDACTED)
            hide = False
        elif a.split("=", 1)[0] in ("--api-key", "--hf-token"):
            if "=" in a:
                out.append(a.split("=", 1)[0] + "=" + REDACTED)
            else:
                out.append(a)
                hide = True
        else:
            out.append(a)
    return out
