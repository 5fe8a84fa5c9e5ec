"""What the launcher prints never shows a secret: env values by name, option values by option."""
from __future__ import annotations

from typing import Mapping

from infra import constants as C
from infra.engine_command import REDACTED, redact_argv  # one parser of engine options

__all__ = ["REDACTED", "redact_argv", "redact_env"]


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """Values of secret-looking names (constants.looks_secret, the spec's rule too) hidden."""
    return {k: (REDACTED if C.looks_secret(k) and v else v) for k, v in env.items()}
