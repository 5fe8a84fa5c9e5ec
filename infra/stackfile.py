"""Read `stacks/Pulumi.<stack>.yaml` without Pulumi (for render, check-flags and tests).

Inside `pulumi up` the Pulumi program reads the same keys through `pulumi.Config`; both paths end
in `infra.spec.load_spec`, so a stack is validated identically with or without the CLI.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infra import constants as C
from infra.spec import SpecError, StackSpec, load_spec


def stack_path(name: str, stacks_dir: Path | None = None) -> Path:
    return (stacks_dir or C.STACKS_DIR) / f"Pulumi.{name}.yaml"


def list_stacks(stacks_dir: Path | None = None) -> list[str]:
    d = stacks_dir or C.STACKS_DIR
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in d.glob("Pulumi.*.yaml"))


def read_stack_config(name: str, stacks_dir: Path | None = None) -> dict[str, Any]:
    """The project's config keys of one stack, namespace stripped. Other namespaces (provider
    settings such as `docker:host` or `kubernetes:context`) are left to Pulumi."""
    path = stack_path(name, stacks_dir)
    if not path.exists():
        known = ", ".join(list_stacks(stacks_dir)) or "none"
        raise SpecError("stack", name, f"no stack file {path}", f"use one of: {known}")
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown_top = set(doc) - {"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"}
    if unknown_top:
        raise SpecError(sorted(unknown_top)[0], "...", f"is not a Pulumi stack file key ({path.name})",
                        "put project settings under `config:` as gptoss-stacks:<key>", stack=name)
    prefix = C.CONFIG_NAMESPACE + ":"
    out: dict[str, Any] = {}
    for key, value in (doc.get("config") or {}).items():
        if key.startswith(prefix):
            out[key[len(prefix):]] = value
        elif ":" not in key:
            raise SpecError(key, value, "has no namespace", f"write it as {prefix}{key}", stack=name)
    return out


def load_stack(name: str, stacks_dir: Path | None = None) -> StackSpec:
    return load_spec(read_stack_config(name, stacks_dir), stack=name)
