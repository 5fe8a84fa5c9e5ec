"""What the launcher prints never shows a secret: env values by name, option values by option."""
from __future__ import annotations

from typing import Mapping

from infra.engine_command import REDACTED, redact_argv  # one parser of engine options

__all__ = ["REDACTED", "is_secret_name", "redact_argv", "redact_env"]

# Env vars whose value must never be printed. Anything else containing these words is redacted too.
SECRET_VARS = ("API_KEY", "VLLM_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "SSH_PASSWORD")
# TODO(lead, issue 18): infra.spec.env_name_looks_secret is the other copy of this heuristic; they differ
# (this one takes a whole word KEY, so SIGNING_KEY or X-API-KEY is redacted here and not there; that one
# takes a word ending in token/password, so MYTOKEN is redacted there and not here). Keep one.
_SECRET_WORDS = {"TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "APIKEY", "CREDENTIALS"}


def is_secret_name(name: str) -> bool:
    # Whole words only: TIKTOKEN_ENCODINGS_BASE is not a token, HF_TOKEN is.
    up = name.upper()
    return up in SECRET_VARS or bool(_SECRET_WORDS & set(up.replace("-", "_").split("_")))


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if is_secret_name(k) and v else v) for k, v in env.items()}
