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
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    return env


def render_template(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
