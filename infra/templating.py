"""Jinja2 environment for every rendered file (StrictUndefined; deterministic: no timestamps, stable order).

Both the plan (engine config files) and the renderer (docker-run.sh, client.env) use it, so neither
imports the other for it.
"""
from __future__ import annotations

import shlex
from functools import lru_cache
from typing import Any

import jinja2
import yaml

from infra import constants as C


def sh_quote(value: Any) -> str:
    """One shell word that bash reads back as exactly `value`, on one line: shlex.quote, or ANSI-C
    $'...' quoting when the text holds control characters (the spec refuses those; this keeps a
    comment line or a command line whole even so)."""
    text = str(value)
    if not any(ord(c) < 32 or ord(c) == 127 for c in text):
        return shlex.quote(text)
    out = []
    for c in text:
        if c in "\\'":
            out.append("\\" + c)
        elif ord(c) < 32 or ord(c) == 127:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return "$'" + "".join(out) + "'"


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(C.TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["yaml_scalar"] = _yaml_scalar
    env.filters["shquote"] = sh_quote
    return env


def render_template(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
