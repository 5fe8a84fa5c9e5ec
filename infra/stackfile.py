"""Read `stacks/Pulumi.<stack>.yaml` without Pulumi (for render, check-flags and tests).

Inside `pulumi up` the Pulumi program reads the same keys through `pulumi.Config`; both paths end
in `infra.spec.load_spec`, so a stack is validated identically with or without the CLI.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from infra import constants as C
from infra.spec import SpecError, StackSpec, load_spec, set_config_fix, shown


def stack_path(name: str, stacks_dir: Path | None = None) -> Path:
    return (stacks_dir or C.STACKS_DIR) / f"Pulumi.{name}.yaml"


def list_stacks(stacks_dir: Path | None = None) -> list[str]:
    d = stacks_dir or C.STACKS_DIR
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in d.glob("Pulumi.*.yaml"))


# A stack file is a few kilobytes; these bounds keep a hostile one (an alias bomb, a huge file) from
# exhausting memory before it can be refused.
MAX_STACK_FILE_BYTES = 256 * 1024
MAX_ALIASES = 64
MAX_NODES = 20_000  # scalars, lists and maps, counting every alias expansion
PULUMI_TOP_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping key written twice (its message is ours, the key already shown safely)."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that stops at MAX_ALIASES alias uses (a YAML alias bomb is all aliases) and refuses a
    key written twice in one mapping (PyYAML keeps the last one: a second `gptoss-stacks:docker:` block
    silently replaced the first)."""

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *alias` merges are allowed to repeat keys
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if repeated:  # also on one line: `{port: 1, port: 2}`
                    raise _DuplicateKey(None, None, f"key {shown(str(key))} is already set at line {first}; the "
                                        "second would replace the first", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self.alias_count = getattr(self, "alias_count", 0) + 1
            if self.alias_count > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (*name)")
        return super().compose_node(parent, index)


def _count_nodes(value: Any, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"more than {MAX_NODES} values once aliases are expanded")
    if isinstance(value, dict):
        for k, v in value.items():
            _count_nodes(k, budget)
            _count_nodes(v, budget)
    elif isinstance(value, list):
        for v in value:
            _count_nodes(v, budget)


def read_yaml_bounded(path: Path, stack: str) -> Any:
    """Parse a stack file within size, alias and node bounds; a SpecError naming the file otherwise."""
    def refuse(problem: str, fix: str) -> SpecError:
        return SpecError("stack", str(path), problem, fix, stack=stack)

    size = path.stat().st_size
    if size > MAX_STACK_FILE_BYTES:
        raise refuse(f"the stack file is {size} bytes (at most {MAX_STACK_FILE_BYTES})", "keep only the stack's settings in it")
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader)
        _count_nodes(doc, [MAX_NODES])
    except UnicodeDecodeError:
        raise refuse("is not UTF-8 text", "save the stack file as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, _DuplicateKey):
            raise refuse(f"is not valid YAML{where}: {problem}", "merge the two into one") from None
        raise refuse(f"is not valid YAML{where}: {shown(problem)}", "fix the YAML (`invoke config` writes valid files)") from None
    except (ValueError, RecursionError) as exc:
        raise refuse(f"is too large: {shown(str(exc))}", "write the settings out without YAML aliases") from None
    return doc


def mistyped_namespace(key: str) -> bool:
    """A `ns:key` whose namespace looks like this project's misspelt (gptoss:, gptoss_stacks:, ...).
    Provider namespaces (docker:, kubernetes:, aws:, ...) are Pulumi's and are left alone."""
    ns = key.split(":", 1)[0].lower()
    if ns == C.CONFIG_NAMESPACE:
        return False
    return "gptoss" in ns or difflib.SequenceMatcher(None, ns, C.CONFIG_NAMESPACE).ratio() >= 0.75


def namespace_error(key: str, stack: str) -> SpecError:
    """Never shows the value: a plaintext secret may be what was mistyped."""
    bare = key.split(":", 1)[1] if ":" in key else key
    return SpecError(key, "<value not shown>", f"is not in the {C.CONFIG_NAMESPACE} namespace, so it would be ignored",
                     (f"delete it from the stack file, then {set_config_fix(bare, stack)}, which writes it encrypted as "
                      f"{C.CONFIG_NAMESPACE}:{bare}" if bare in C.SECRET_KEYS
                      else f"write it as {C.CONFIG_NAMESPACE}:{bare}"),
                     stack=stack)


def read_stack_config(name: str, stacks_dir: Path | None = None) -> dict[str, Any]:
    """The project's config keys of one stack, namespace stripped. Other namespaces (provider
    settings such as `docker:host` or `kubernetes:context`) are left to Pulumi."""
    path = stack_path(name, stacks_dir)
    if not path.exists():
        known = ", ".join(list_stacks(stacks_dir)) or "none"
        raise SpecError("stack", name, f"no stack file {path}", f"use one of: {known}")
    doc = read_yaml_bounded(path, name)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise SpecError("stack", str(path), f"the file holds a {type(doc).__name__}, not a Pulumi stack file",
                        "write `config:` with gptoss-stacks:<key>: <value> lines under it", stack=name)
    unknown_top = [k for k in doc if k not in PULUMI_TOP_KEYS]
    if unknown_top:
        raise SpecError(str(unknown_top[0]), "...", f"is not a Pulumi stack file key ({path.name})",
                        "put project settings under `config:` as gptoss-stacks:<key>", stack=name)
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise SpecError("config", f"<{type(config).__name__}>", f"`config:` in {path.name} must be a mapping",
                        "write gptoss-stacks:<key>: <value> lines under config:, not a list", stack=name)
    prefix = C.CONFIG_NAMESPACE + ":"
    out: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str):
            raise SpecError(str(key), "...", f"config keys in {path.name} are strings", f"write it as {prefix}<key>", stack=name)
        if key.startswith(prefix):
            out[key[len(prefix):]] = value
        elif ":" not in key:
            raise SpecError(key, "<value not shown>", "has no namespace", f"write it as {prefix}{key}", stack=name)
        elif mistyped_namespace(key):
            raise namespace_error(key, name)
    return out


def placeholders(name: str, stacks_dir: Path | None = None) -> list[tuple[str, str]]:
    """(key, value) for each example value (constants.PLACEHOLDER_PATTERNS) still in a stack's settings."""
    found: list[tuple[str, str]] = []

    def walk(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{key}.{k}", v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{key}[{i}]", v)
        elif isinstance(value, str) and any(re.search(p, value) for p in C.PLACEHOLDER_PATTERNS):
            found.append((key, value))

    for key, value in read_stack_config(name, stacks_dir).items():
        if key not in C.SECRET_KEYS:
            walk(key, value)
    return found


def load_stack(name: str, stacks_dir: Path | None = None) -> StackSpec:
    return load_spec(read_stack_config(name, stacks_dir), stack=name)
