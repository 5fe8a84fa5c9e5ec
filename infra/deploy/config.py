"""Read the stack's `gptoss-stacks:*` config inside a running Pulumi program.

The Pulumi CLI hands the program every config value as a string (objects and lists as JSON) and
says which keys are secret. Plain keys become the mapping `infra.spec.load_spec` validates (the
same function the CLI-less `infra.stackfile` path ends in). Secret keys are read only with
`require_secret`, so their values exist only inside secret Outputs; the spec learns just that
they are set. (`Config.get` on a secret key returns the plaintext and would lose the secret bit.)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from infra import constants as C
from infra.spec import SpecError, set_config_fix

# Stands in for a secret's value in the mapping given to load_spec (only "is it set" matters).
SECRET_PLACEHOLDER = "<secret>"


@dataclass(frozen=True)
class StackConfig:
    stack: str
    plain: dict[str, Any]                       # bare keys -> values, secret keys -> placeholder
    secrets: dict[str, pulumi.Output[str]]      # set secret keys -> secret Outputs


def _namespace_keys(namespace: str) -> list[str]:
    """Every config key of the namespace the engine gave this program (set_all_config), plus the
    PULUMI_CONFIG env bag used by some test runners."""
    prefix = namespace + ":"
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return sorted(k for k in keys if k.startswith(prefix))


def _decode(raw: Any) -> Any:
    """Objects and lists arrive as JSON text; scalars stay strings (pydantic converts them)."""
    if isinstance(raw, str) and raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def read_pulumi_config(namespace: str = C.CONFIG_NAMESPACE, stack: str | None = None) -> StackConfig:
    stack = stack or pulumi.get_stack()
    from infra.stackfile import mistyped_namespace, namespace_error

    for full_key in sorted(set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())):
        if mistyped_namespace(full_key):
            raise namespace_error(full_key, stack)  # a mistyped key is never silently dropped
    cfg = pulumi.Config(namespace)
    plain: dict[str, Any] = {}
    secrets: dict[str, pulumi.Output[str]] = {}
    for full_key in _namespace_keys(namespace):
        key = full_key.split(":", 1)[1]
        is_secret = runtime_config.is_config_secret(full_key)
        if key in C.SECRET_KEYS:
            if not is_secret:
                raise SpecError(key, "<plaintext hidden>", "a secret is set in plain text",
                                set_config_fix(key, stack), stack=stack)
            # Emptiness is checked on the raw value without it leaving this function.
            if runtime_config.get_config(full_key) in (None, ""):
                continue
            secrets[key] = cfg.require_secret(key)
            plain[key] = SECRET_PLACEHOLDER
        elif is_secret:
            raise SpecError(key, "<secure>", "is not a secret setting, but is stored as one",
                            f"{set_config_fix(key, stack, secret=False)}, without --secret; "
                            f"secrets are {', '.join(C.SECRET_KEYS)}", stack=stack)
        else:
            plain[key] = _decode(cfg.get(key))
    return StackConfig(stack=stack, plain=plain, secrets=secrets)
