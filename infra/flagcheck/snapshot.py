"""The engines' serve parsers as committed data, and the allow-list check built on them.

Pure Python (stdlib + PyYAML): the core and the in-image launcher call this without the
engine venvs. The snapshots (``snapshots/<engine>-<version>.json``) are dumps of the real
parsers made by ``probe_<engine>.py``; ``invoke check-flags --refresh-snapshot`` rewrites them
and ``invoke check-flags --diff`` compares them with the live parsers.

`check_argv` is stricter than argparse on purpose:

- exact option names only: argparse would take ``--tp`` for ``--tp-size`` (abbreviation) and
  vLLM would take ``--max_model_len``; we don't, so a renamed flag can't slip through;
- an option that needs a value has one, a flag has none;
- choices, and the values argparse never checks (tool-call / reasoning parser, attention
  backend, KV-cache dtype, quantization) against the engine's own registries;
- ranges the engines don't check (``--mem-fraction-static 1.5`` parses fine);
- the keys of the ``--config`` YAML file, including vLLM silently dropping ``key: false``.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from infra.constants import CONFIG_DIR, ENGINE_VERSIONS
from infra.engine_command import LAUNCHERS, is_option, split_launcher
from infra.settings import TABLE

SNAPSHOT_DIR = Path(__file__).with_name("snapshots")

# Accepted by the parser but wrong for us (issue 2, item 7).
DISCOURAGED = {
    "vllm": {"--model": "deprecated for `vllm serve`: pass the model positionally "
                        "(`vllm serve openai/gpt-oss-120b`) or as `model:` in the --config YAML"},
    "sglang": {},
}

# Gone from the parser; the generic "unknown option" gets this fix instead of a guess.
REMOVED = {
    "vllm": {
        "--swap-space": "removed in vLLM V1 (no CPU swap space): drop it",
        "--num-scheduler-steps": "removed (multi-step scheduling is gone): drop it; "
                                 "--async-scheduling is the replacement for overlap",
        "--cuda-graph-sizes": "removed: use --max-cudagraph-capture-size",
        "--max-seq-len-to-capture": "removed: CUDA graphs are bounded by --max-cudagraph-capture-size",
    },
    "sglang": {},
}

# Known cross-engine mix-ups (the gpt-oss-sglang READMEs carry Dynamo's / vLLM's names): the settings
# table's legacy names and engine spellings (infra/settings.py), keyed by the engine's registry, plus the
# other engine's reasoning-parser name.
_OTHER_ENGINE_NAMES = {"vllm": {"reasoning_parsers": {"openai": "openai_gptoss"}},
                       "sglang": {"reasoning_parsers": {"openai_gptoss": "gpt-oss"}}}
VALUE_HINTS = {
    backend: {f"{row.name}s": {**row.legacy.get(backend, {}), **row.form(backend).values,
                               **_OTHER_ENGINE_NAMES[backend].get(f"{row.name}s", {})}
              for row in TABLE if row.form(backend) and (row.legacy.get(backend) or row.form(backend).values)}
    for backend in ENGINE_VERSIONS
}

# (low, high, low inclusive, high inclusive): ranges the parsers accept blindly.
RANGES = {
    "vllm": {"--gpu-memory-utilization": (0.0, 1.0, False, True), "--port": (1, 65535, True, True)},
    "sglang": {"--mem-fraction-static": (0.0, 1.0, False, False), "--port": (1, 65535, True, True)},
}

# Env vars the engines no longer read; setting them silently does nothing.
REMOVED_ENV = {
    "vllm": {"VLLM_ATTENTION_BACKEND": "gone in vLLM 0.33: use --attention-backend (or "
                                       "`attention-backend:` in the --config YAML)"},
    "sglang": {},
}


@dataclass(frozen=True)
class Problem:
    option: str  # option string, YAML key or value the problem is about
    message: str  # what is wrong
    fix: str  # what to do instead
    where: str = "argv"  # "argv", "env" or the name of a launch.json file

    def __str__(self) -> str:
        return f"[{self.where}] {self.option}: {self.message}; fix: {self.fix}"


def snapshot_path(backend: str, version: str | None = None) -> Path:
    return SNAPSHOT_DIR / f"{backend}-{version or ENGINE_VERSIONS[backend]}.json"


@lru_cache(maxsize=None)
def _load(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)


def load_snapshot(backend: str) -> dict:
    """The committed dump of `backend`'s serve parser for the pinned engine version."""
    if backend not in ENGINE_VERSIONS:
        raise KeyError(f"unknown backend {backend!r}; known: {sorted(ENGINE_VERSIONS)}")
    return _load(str(snapshot_path(backend)))


def known_options(backend: str, snapshot: dict | None = None) -> set[str]:
    return set((snapshot or load_snapshot(backend))["options"])


def _suggest(word: str, pool, n: int = 3) -> list[str]:
    pool = list(pool)
    lower = {p.lower(): p for p in pool}
    if word.lower() in lower:  # wrong case only
        return [lower[word.lower()]]
    return difflib.get_close_matches(word, pool, n=n, cutoff=0.6)


class _Checker:
    def __init__(self, backend: str, snap: dict, files: dict, config_dir: str):
        self.backend, self.snap, self.files, self.config_dir = backend, snap, files, config_dir
        self.options = snap["options"]
        self.registries = snap.get("registries", {})
        self.registry_options = snap.get("registry_options", {})
        self.problems: list[Problem] = []

    def add(self, option, message, fix, where):
        self.problems.append(Problem(option, message, fix, where))

    # -- option names -------------------------------------------------------------------
    def unknown(self, name: str, where: str) -> None:
        if name in REMOVED[self.backend]:
            self.add(name, f"not a {self.backend} {self.snap['version']} option", REMOVED[self.backend][name], where)
            return
        long = [o for o in self.options if o.startswith("--")]
        prefixed = sorted(o for o in long if o.startswith(name)) if name.startswith("--") else []
        dashed = "--" + name[2:].replace("_", "-") if name.startswith("--") else name
        if dashed != name and dashed in self.options:
            self.add(name, "not the exact option name", f"spell it {dashed}", where)
        elif prefixed:
            shown = ", ".join(prefixed[:4]) + (" ..." if len(prefixed) > 4 else "")
            self.add(name, "abbreviation (argparse would expand it; we require exact names)",
                     f"write the full name: {shown}", where)
        else:
            close = _suggest(name, long)
            self.add(name, f"unknown {self.backend} {self.snap['version']} option",
                     f"did you mean {' or '.join(close)}?" if close else "remove it", where)

    # -- values -------------------------------------------------------------------------
    def value(self, opt: str, info: dict, value: str, where: str) -> None:
        canonical = info["canonical"]
        if info.get("choices") is not None and value not in info["choices"]:
            hint = self._hint(opt, value, info["choices"])
            self.add(f"{canonical} {value}", f"not one of the parser's choices ({len(info['choices'])})",
                     hint, where)
            return  # the registry would say the same again
        registry = self.registry_options.get(opt) or self.registry_options.get(canonical)
        # where the parser has choices (SGLang: registry + "auto") they are the authority
        if registry and info.get("choices") is None and value not in self.registries.get(registry, []):
            hint = self._hint(opt, value, self.registries.get(registry, []), registry)
            self.add(f"{canonical} {value}", f"not in {self.backend}'s {registry.replace('_', ' ')}",
                     hint, where)
            return
        kind = info.get("type")
        if kind in ("int", "float"):
            try:
                num = int(value) if kind == "int" else float(value)
            except ValueError:
                self.add(f"{canonical} {value}", f"needs a{'n' if kind == 'int' else ''} {kind}",
                         f"give {canonical} a number", where)
                return
            rng = RANGES[self.backend].get(canonical)
            if rng:
                lo, hi, lo_in, hi_in = rng
                if (num < lo or (num == lo and not lo_in)) or (num > hi or (num == hi and not hi_in)):
                    span = f"{'[' if lo_in else '('}{lo}, {hi}{']' if hi_in else ')'}"
                    self.add(f"{canonical} {value}", f"out of range {span} (the parser doesn't check)",
                             f"use a value in {span}", where)

    def _hint(self, opt, value, pool, registry=None) -> str:
        if registry is None:
            registry = self.registry_options.get(opt)
        mapped = VALUE_HINTS[self.backend].get(registry or "", {}).get(value)
        if mapped and mapped in pool:
            return f"use {mapped}"
        close = _suggest(value, pool)
        if close:
            return f"did you mean {' or '.join(close)}?"
        return "one of: " + ", ".join(list(pool)[:12]) + (" ..." if len(pool) > 12 else "")

    # -- walking argv -------------------------------------------------------------------
    def walk(self, args: list[str], where: str, *, allow_positional: bool) -> None:
        positionals = list(self.snap.get("positionals", [])) if allow_positional else []
        i = 0
        while i < len(args):
            tok = args[i]
            i += 1
            if not is_option(tok):
                if positionals and i == 1:
                    positionals.pop(0)
                    continue
                self.add(tok, "stray value (no option takes it)", "remove it or add the option it belongs to", where)
                continue
            name, inline = tok.split("=", 1) if "=" in tok else (tok, None)  # argparse splits -x=v too
            info = self.options.get(name)
            if info is None and "." in name and self.backend == "vllm":
                # vLLM's `--json-arg.key value` form
                info = self.options.get(name.split(".", 1)[0].rstrip("+"))
                if info is not None and info["takes_value"]:
                    if inline is None:
                        if i >= len(args):
                            self.add(name, "needs a value", f"give {name} a value", where)
                        i += 1
                    continue
                info = None
            if info is None:
                self.unknown(name, where)
                if inline is None and i < len(args) and not is_option(args[i]):
                    i += 1  # its value would otherwise be reported as a stray value too
                continue
            if info.get("deprecated"):
                self.add(name, "deprecated", info.get("help") or "use its replacement", where)
            if where == "argv" and name in DISCOURAGED[self.backend]:
                self.add(name, "accepted but discouraged", DISCOURAGED[self.backend][name], where)
            if not info["takes_value"]:
                if inline is not None:
                    self.add(tok, "flag takes no value", f"write {name} alone" + (
                        "" if not info.get("boolean_optional") else " (or its --no- form for false)"), where)
                continue
            values, i = self._take(args, i, inline, info, name, where)
            for v in values:
                self.value(name, info, v, where)
            if info["dest"] == "config" and values:
                self.config(values[0])

    def _take(self, args, i, inline, info, name, where):
        nargs = info["nargs"]
        if inline is not None:
            return [inline], i
        if nargs is None or isinstance(nargs, int):
            want = 1 if nargs is None else nargs
            got = []
            while len(got) < want and i < len(args) and not is_option(args[i]):
                got.append(args[i])
                i += 1
            if len(got) < want:
                self.add(name, f"needs {want} value{'s' if want > 1 else ''}, got {len(got)}",
                         f"give {name} a value", where)
            return got, i
        got = []
        while i < len(args) and not is_option(args[i]):
            got.append(args[i])
            i += 1
            if nargs == "?":
                break
        if nargs == "+" and not got:
            self.add(name, "needs at least one value", f"give {name} a value", where)
        return got, i

    # -- the --config file ----------------------------------------------------------------
    def config(self, path: str) -> None:
        prefix = self.config_dir.rstrip("/") + "/"
        name = path[len(prefix):] if path.startswith(prefix) else None
        if name is None or name not in self.files:
            self.add(f"--config {path}", "refers to no file of the launch plan",
                     f"write the file into launch.json `files` and pass {prefix}<name>", "argv")
            return
        if not name.endswith((".yaml", ".yml")):
            self.add(f"--config {path}", "config file must end in .yaml or .yml (both engines check)",
                     "rename it", name)
        try:
            data = yaml.safe_load(self.files[name]) or {}
        except yaml.YAMLError as exc:
            self.add(name, f"not valid YAML: {exc}".splitlines()[0], "fix the YAML", name)
            return
        if not isinstance(data, dict):
            self.add(name, "config file must be a mapping at the top level", "write `key: value` lines", name)
            return
        self.walk(self._config_to_args(data, name), name, allow_positional=False)

    def _config_to_args(self, data: dict, where: str) -> list[str]:
        """Turn YAML into the argv the engine would make of it, reporting what it would lose."""
        args: list[str] = []
        for key, value in data.items():
            key = str(key)
            opt = "--" + key
            info = self.options.get(opt)
            if info is None:
                dashed = "--" + key.replace("_", "-")
                if dashed in self.options:
                    self.add(key, "YAML keys must be the dashed option name" + (
                        " (SGLang passes keys verbatim, so this fails to parse)" if self.backend == "sglang" else ""),
                        f"write {key.replace('_', '-')}:", where)
                else:
                    self.unknown(opt, where)
                continue
            if isinstance(value, bool):
                if not info["takes_value"]:
                    if value:
                        args.append(opt)
                    else:
                        neg = self._negative_of(opt)
                        self.add(f"{key}: false", "false in a --config file is silently dropped" + (
                            " by vLLM" if self.backend == "vllm" else " (store_true flags are only ever set)"),
                            f"remove it from the YAML and pass {neg} on the command line" if neg
                            else "remove it (false is the default)", where)
                    continue
                if self.backend == "vllm":
                    self.add(f"{key}: {str(value).lower()}", "vLLM turns a boolean into a bare flag, "
                             f"but {opt} needs a value", f"give {key} a real value", where)
                    continue
                args += [opt, str(value).lower()]
            elif info.get("boolean_optional") and self.backend == "sglang":
                self.add(key, "SGLang's --config can't set BooleanOptionalAction flags",
                         f"pass {opt} on the command line", where)
            elif not info["takes_value"]:
                self.add(f"{key}: {value}", "flag takes no value", f"write `{key}: true`", where)
            elif isinstance(value, list):
                args += [opt, *(str(v) for v in value)] if value else []
            elif isinstance(value, dict):
                args += [opt, json.dumps(value)]
            else:
                args += [opt, str(value)]
        return args

    def _negative_of(self, opt: str) -> str | None:
        """The command-line spelling that sets this flag to False, `--no-...` first (issue 2)."""
        dest = self.options[opt]["dest"]
        negs = sorted((o for o, i in self.options.items() if i["dest"] == dest and i.get("negative")),
                      key=lambda o: (not o.startswith("--no-"), o))
        return " (or ".join(negs[:2]) + (")" if len(negs) > 1 else "") if negs else None


def check_argv(backend: str, argv: list[str], files: dict[str, str] | None = None, *,
               snapshot: dict | None = None, config_dir: str = CONFIG_DIR) -> list[Problem]:
    """Problems with a launch.json argv (and the --config file it names) for `backend`.

    `files` is launch.json's `files`: argv `--config /etc/gptoss/<name>` refers to
    ``files[<name>]``. `snapshot` defaults to the committed one; `invoke check-flags` passes
    the live parser's dump instead."""
    snap = snapshot or load_snapshot(backend)
    if backend not in LAUNCHERS:
        raise KeyError(f"unknown backend {backend!r}; known: {sorted(LAUNCHERS)}")
    split = split_launcher(backend, argv)
    if split is None:
        launchers = " | ".join(" ".join(ln) for ln in LAUNCHERS[backend])
        return [Problem(" ".join(argv[:3]), f"not a {backend} server command", f"start argv with {launchers}")]
    _, args = split
    checker = _Checker(backend, snap, files or {}, config_dir)
    checker.walk(args, "argv", allow_positional=True)
    return checker.problems


def check_launch(launch: dict, *, snapshot: dict | None = None) -> list[Problem]:
    """check_argv on a launch.json dict, plus env vars the engine no longer reads."""
    backend = launch["backend"]
    problems = check_argv(backend, launch["argv"], launch.get("files") or {}, snapshot=snapshot,
                          config_dir=launch.get("config_dir") or CONFIG_DIR)
    # `<name>.args` files hold the same parser input one token per line (comments with #)
    for name, content in sorted((launch.get("files") or {}).items()):
        if name.endswith(".args"):
            tokens = [ln.strip() for ln in content.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            checker = _Checker(backend, snapshot or load_snapshot(backend), launch.get("files") or {},
                               launch.get("config_dir") or CONFIG_DIR)
            checker.walk(tokens, name, allow_positional=True)
            problems += checker.problems
    for var, fix in REMOVED_ENV[backend].items():
        if var in (launch.get("env") or {}):
            problems.append(Problem(var, "env var no longer read", fix, "env"))
    return problems
