"""Shared part of the probe scripts. Runs INSIDE an engine venv: standard library only.

Protocol (the host side is `devtools.flagcheck.live`):

    python probe_<engine>.py selftest             build the parser and registries, exit 0
    python probe_<engine>.py dump  --out FILE     write the parser/registry JSON to FILE
    python probe_<engine>.py check --out FILE     read {"cases": [...]} on stdin, parse each
                                                  case with the real parser, write results + dump

Results go to a file, not stdout, because the engines log to stdout while importing.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import traceback

SCHEMA = 1


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def _choices(action):
    if action.choices is None:
        return None
    # sets (SGLang) and enums (vLLM) both occur: store sorted display strings
    return sorted({getattr(c, "value", c) if not isinstance(c, str) else c for c in action.choices},
                  key=str)


def _type_name(action):
    t = action.type
    if t is None:
        return None
    return getattr(t, "__name__", type(t).__name__)


def _negative(action, opt):
    """True when this spelling sets the flag to False (`--no-x`, vLLM's `--disable-x`)."""
    if not isinstance(action, argparse.BooleanOptionalAction):
        return False
    neg = getattr(action, "negative_option_strings", None)  # vLLM's EnableDisableAction
    return opt in neg if neg is not None else opt.startswith("--no-")


def describe_parser(parser, *, deprecated=lambda action: False, hidden=lambda action, opt: False):
    """Every option string the parser accepts, with what it takes. Keyed by option string."""
    options = {}
    for opt, action in sorted(parser._option_string_actions.items()):
        nargs = action.nargs
        options[opt] = {
            "dest": action.dest,
            "action": type(action).__name__,
            "canonical": action.option_strings[0] if action.option_strings else opt,
            "takes_value": nargs != 0,
            "nargs": nargs,
            "choices": [str(c) for c in _choices(action)] if action.choices is not None else None,
            "type": _type_name(action),
            "boolean_optional": isinstance(action, argparse.BooleanOptionalAction),
            "negative": _negative(action, opt),
            "deprecated": bool(deprecated(action)),
            "hidden": bool(hidden(action, opt)),
            "help": " ".join((action.help or "").split())[:300],
        }
    positionals = [{"dest": a.dest, "nargs": a.nargs} for a in parser._actions if not a.option_strings]
    return {"options": options, "positionals": positionals, "allow_abbrev": parser.allow_abbrev}


def materialize(args, files, config_dir, tmpdir):
    """Write launch.json `files` to tmpdir and point argv paths under config_dir at them."""
    for name, content in (files or {}).items():
        with open(os.path.join(tmpdir, name), "w") as fh:
            fh.write(content)
    prefix = config_dir.rstrip("/") + "/"
    out = []
    for a in args:
        if a.startswith(prefix) and a[len(prefix):] in (files or {}):
            a = os.path.join(tmpdir, a[len(prefix):])
        elif "=" in a and a.startswith("--"):
            k, v = a.split("=", 1)
            if v.startswith(prefix) and v[len(prefix):] in (files or {}):
                a = f"{k}={os.path.join(tmpdir, v[len(prefix):])}"
        out.append(a)
    return out


def capture(fn):
    """Run a parse; argparse reports errors by printing and calling sys.exit(2)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = fn()
    except SystemExit as exc:
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        msg = next((ln for ln in reversed(lines) if "error:" in ln), lines[-1] if lines else "")
        return {"ok": False, "error": msg or f"exit {exc.code}"}
    except Exception as exc:  # engine validation raises ValueError/TypeError/AssertionError
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=3)}
    return {"ok": True, "error": None, "namespace": _jsonable(ns)}


def main(engine, build_dump, parse_case):
    """build_dump() -> dict; parse_case(args) -> namespace-ish (raises/exits on error)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["selftest", "dump", "check"])
    ap.add_argument("--out")
    opts = ap.parse_args()
    from importlib.metadata import version

    dump = build_dump()
    dump.update({"engine": engine, "version": version(engine), "schema": SCHEMA})
    if opts.cmd == "selftest":
        assert dump["options"] and all(dump["registries"].values()), "empty parser or registry"
        print(f"{engine} {dump['version']}: {len(dump['options'])} option strings, registries "
              + ", ".join(f"{k}={len(v)}" for k, v in sorted(dump["registries"].items())))
        return
    result = {"dump": dump}
    if opts.cmd == "check":
        request = json.load(sys.stdin)
        results = []
        for case in request["cases"]:
            with tempfile.TemporaryDirectory() as tmp:
                args = materialize(case["args"], case.get("files"), case.get("config_dir", "/etc/gptoss"), tmp)
                res = capture(lambda: parse_case(args))
            res["id"] = case.get("id")
            results.append(res)
        result["results"] = results
    with open(opts.out, "w") as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
