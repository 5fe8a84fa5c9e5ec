"""Container env vars the image READMEs document -> plan overrides (layer 4 of the precedence).

The launcher passes `os.environ`; the plan applies what this returns on top of the stack config.
Each such variable maps to one setting of the settings table (infra.settings: names, engines, bounds); values are validated here so a bad value fails with one
clear line before the engine starts. Legacy names (the gpt-oss-sglang READMEs' NVIDIA Dynamo parser names, DYN_*) are mapped to
the engine's own names with a warning.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from infra.settings import TABLE, Setting, legacy_values, spec_fields


class EnvError(ValueError):
    """A container env var with a value that cannot work (names the var, the value and the fix)."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(name: str, raw: str) -> bool:
    """true/false, 1/0, yes/no, on/off; EnvError naming the variable otherwise."""
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise EnvError(f"{name}={raw!r}: expected true or false")


def _int(row: Setting) -> Callable[[str, str], int]:
    lo, hi = int(row.ge), int(row.le)

    def conv(name: str, raw: str) -> int:
        try:
            val = int(raw.strip())
        except ValueError:
            raise EnvError(f"{name}={raw!r}: expected a whole number") from None
        if not lo <= val <= hi:
            raise EnvError(f"{name}={raw!r}: expected {lo}..{hi}")
        return val
    return conv


def _float(row: Setting) -> Callable[[str, str], float]:
    lo, hi = row.gt, row.le

    def conv(name: str, raw: str) -> float:
        try:
            val = float(raw.strip())
        except ValueError:
            raise EnvError(f"{name}={raw!r}: expected a number such as {row.example}") from None
        if not lo < val <= hi:
            raise EnvError(f"{name}={raw!r}: expected > {lo} and <= {hi}, e.g. {row.example}")
        return val
    return conv


def _str(name: str, raw: str) -> str:
    if not raw.strip():
        raise EnvError(f"{name} is set but empty: unset it or give a value")
    return raw.strip()


def _choice(row: Setting) -> Callable[[str, str], str]:
    def conv(name: str, raw: str) -> str:
        val, known = raw.strip(), list(row.choices())
        if val not in known:
            raise EnvError(f"{name}={raw!r}: expected one of {', '.join(known)}")
        return val
    return conv


def converter(row: Setting) -> Callable[[str, str], Any]:
    """An env var's parser for a row of the settings table: its type and bounds."""
    if row.choices is not None:
        return _choice(row)
    if row.type is bool:
        return parse_bool
    if row.type is int:
        return _int(row)
    if row.type is float:
        return _float(row)
    return _str


EnvVar = tuple[str, str, Callable[[str, str], Any], tuple[str, ...]]


def env_vars(table: Iterable[Setting] = TABLE) -> tuple[EnvVar, ...]:
    """(env var, setting it overrides, converter, backends it belongs to), from the settings table."""
    return tuple((var, row.name, converter(row), backends) for row in table for var, backends in row.env)


ENV_VARS = env_vars()
# Fields that change the spec itself (and so the presets and the fit), not just a flag.
SPEC_FIELDS = spec_fields()


@dataclass
class EnvOverrides:
    values: dict[str, Any] = field(default_factory=dict)  # setting -> value
    sources: dict[str, str] = field(default_factory=dict)  # setting -> env var name
    warnings: list[str] = field(default_factory=list)


def normalise(backend: str, setting: str, value: Any) -> tuple[Any, str | None]:
    """Map a legacy value to the engine's own name; returns (value, warning or None)."""
    legacy = legacy_values(backend, setting)
    if isinstance(value, str) and value in legacy:
        new = legacy[value]
        return new, f"{setting} {value!r} is not a {backend} name (the image READMEs' Dynamo name); using {new!r}"
    return value, None


def parse_env(env: Mapping[str, str], backend: str, variables: tuple[EnvVar, ...] = ENV_VARS) -> EnvOverrides:
    """Read the image READMEs' env vars that apply to `backend`. Raises EnvError on the first bad value."""
    out = EnvOverrides()
    for name, setting, conv, backends in variables:
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        if backend not in backends:
            other = next((n for n, s, _, b in variables if s == setting and backend in b), None)
            hint = f"; use {other}" if other else ""
            out.warnings.append(f"{name} is a {'/'.join(backends)} setting and is ignored by {backend}{hint}")
            continue
        value = conv(name, raw)
        value, warning = normalise(backend, setting, value)
        if warning:
            out.warnings.append(f"{name}: {warning}")
        if setting in out.values and out.values[setting] != value:
            raise EnvError(f"{name}={raw!r} conflicts with {out.sources[setting]}={env[out.sources[setting]]!r}: set only one")
        out.values[setting] = value
        out.sources[setting] = name
    return out
