"""Host side of the probes: run the engine's real parser in its venv, one process per engine."""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from infra.constants import CONFIG_DIR, ENGINE_VERSIONS
from devtools.flagcheck import venvs
from infra.flagcheck.snapshot import Problem, check_argv, check_launch, snapshot_path, split_launcher

PROBES = {e: Path(__file__).with_name(f"probe_{e}.py") for e in ENGINE_VERSIONS}


class ProbeError(RuntimeError):
    pass


# A parser can't change within one process: every probe run records its dump here, so a
# `--diff` after a check (or a second test) doesn't import the engine again (~10 s for vLLM).
_DUMPS: dict[tuple[str, str], dict] = {}


def run_probe(engine: str, cmd: str, cases: list[dict] | None = None, *, venv: Path | None = None,
              timeout: float = 600) -> dict:
    venv = venv or venvs.ensure_venv(engine)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        proc = subprocess.run(
            [str(venvs.python_of(venv)), str(PROBES[engine]), cmd, "--out", str(out)],
            input=json.dumps({"cases": cases or []}), capture_output=True, text=True,
            env=venvs.engine_env(engine), timeout=timeout, cwd=tmp)
        if proc.returncode or not out.exists():
            raise ProbeError(f"probe_{engine}.py {cmd} failed (exit {proc.returncode}):\n"
                             + "\n".join((proc.stderr or proc.stdout).splitlines()[-20:]))
        result = json.loads(out.read_text())
    if result["dump"]["version"] != ENGINE_VERSIONS[engine]:
        raise ProbeError(f"{engine} venv has {result['dump']['version']}, "
                         f"the project pins {ENGINE_VERSIONS[engine]}")
    _DUMPS[(engine, str(venv))] = result["dump"]
    return result


def live_dump(engine: str, *, venv: Path | None = None, **kw) -> dict:
    venv = venv or venvs.ensure_venv(engine)
    if (engine, str(venv)) not in _DUMPS:
        run_probe(engine, "dump", venv=venv, **kw)
    return _DUMPS[(engine, str(venv))]


def parse_with_real_parser(engine: str, cases: list[dict], **kw) -> tuple[dict, list[dict]]:
    """cases: [{"id", "args" (parser input, no launcher words), "files", "config_dir"}].
    Returns (live dump, [{"id", "ok", "error", "namespace"}])."""
    result = run_probe(engine, "check", cases, **kw)
    return result["dump"], result["results"]


def check_launches(launches: dict[str, dict], **kw) -> dict[str, dict]:
    """Validate launch.json dicts against the REAL parsers.

    Per launch: the engine's own parse (and its post-parse validation) must accept argv and the
    --config file, AND the exact-name/registry checks must pass against the live parser's dump
    (not the committed snapshot). Returns {name: {"backend", "parser_ok", "parser_error",
    "namespace" (the engine's parse, where it accepted), "problems": [Problem]}}."""
    out: dict[str, dict] = {}
    by_engine: dict[str, list[dict]] = {}
    for name, launch in launches.items():
        split = split_launcher(launch["backend"], launch["argv"])
        out[name] = {"backend": launch["backend"], "parser_ok": None, "parser_error": None, "namespace": None,
                     "problems": []}
        if split is None:
            out[name]["problems"] = check_argv(launch["backend"], launch["argv"], launch.get("files"))
            out[name]["parser_ok"], out[name]["parser_error"] = False, "unknown launcher"
            continue
        by_engine.setdefault(launch["backend"], []).append(
            {"id": name, "args": split[1], "files": launch.get("files") or {},
             "config_dir": launch.get("config_dir") or CONFIG_DIR})
    for engine, cases in sorted(by_engine.items()):
        dump, results = parse_with_real_parser(engine, cases, **kw)
        for res in results:
            name = res["id"]
            out[name]["parser_ok"], out[name]["parser_error"] = res["ok"], res["error"]
            out[name]["namespace"] = res.get("namespace")
            out[name]["problems"] = check_launch(launches[name], snapshot=dump)
    return out


def diff_dumps(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two parser dumps (snapshot vs live)."""
    lines: list[str] = []
    oo, no = old.get("options", {}), new.get("options", {})
    for opt in sorted(set(oo) - set(no)):
        lines.append(f"- option {opt} (only in the first)")
    for opt in sorted(set(no) - set(oo)):
        lines.append(f"+ option {opt} (only in the second)")
    for opt in sorted(set(oo) & set(no)):
        for key in sorted(set(oo[opt]) | set(no[opt])):
            if key != "help" and oo[opt].get(key) != no[opt].get(key):
                lines.append(f"~ {opt} {key}: {oo[opt].get(key)!r} -> {no[opt].get(key)!r}")
    for section in ("registries",):
        oreg, nreg = old.get(section, {}), new.get(section, {})
        for reg in sorted(set(oreg) | set(nreg)):
            a, b = set(oreg.get(reg, [])), set(nreg.get(reg, []))
            lines += [f"- {reg}: {v}" for v in sorted(a - b)] + [f"+ {reg}: {v}" for v in sorted(b - a)]
    for key in ("registry_options", "positionals", "config", "version", "allow_abbrev", "prog"):
        if old.get(key) != new.get(key):
            lines.append(f"~ {key}: {old.get(key)!r} -> {new.get(key)!r}")
    return lines


def write_snapshot(engine: str, dump: dict) -> Path:
    path = snapshot_path(engine, dump["version"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dump, indent=1, sort_keys=True) + "\n")
    return path


__all__ = ["Problem", "ProbeError", "check_launches", "diff_dumps", "live_dump",
           "parse_with_real_parser", "run_probe", "write_snapshot"]
