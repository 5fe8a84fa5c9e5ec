"""The golden files under tests/core/golden/: compare them with a fresh render, and update them only
with a reason that is recorded. The tests never write them.

    .venv/bin/python tests/core/goldens.py                  # print what differs; exit 1 if anything does
    .venv/bin/python tests/core/goldens.py --reason "why"   # write them, print the diff, record the reason

The reason and the changed files are appended to tests/core/golden/REASONS.md, so the commit that
changes a golden says why beside the diff a reviewer reads.
"""
from __future__ import annotations

import argparse
import difflib
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

GOLDEN = Path(__file__).resolve().parent / "golden"
REASONS = "REASONS.md"
MAX_REASON = 500


def render_all(stacks_dir: Path | None = None) -> dict[str, dict[str, str]]:
    """stack -> file name -> text, as `invoke render --all` writes them."""
    from infra.render import render_stack
    from infra.stackfile import list_stacks

    out: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stack in list_stacks(stacks_dir):
            folder = render_stack(stack, Path(tmp), stacks_dir=stacks_dir)
            out[stack] = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())}
    return out


def read_golden(golden: Path = GOLDEN) -> dict[str, dict[str, str]]:
    return {d.name: {p.name: p.read_text(encoding="utf-8") for p in sorted(d.iterdir())}
            for d in sorted(golden.iterdir()) if d.is_dir()}


def differences(produced: dict[str, dict[str, str]], golden: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """'stack/file' -> unified diff lines (golden -> produced) for every file that differs, is new or is gone."""
    out: dict[str, list[str]] = {}
    for stack in sorted(set(produced) | set(golden)):
        new, old = produced.get(stack, {}), golden.get(stack, {})
        for name in sorted(set(new) | set(old)):
            if new.get(name) != old.get(name):
                path = f"{stack}/{name}"
                out[path] = list(difflib.unified_diff(
                    old.get(name, "").splitlines(), new.get(name, "").splitlines(),
                    f"golden/{path}", f"rendered/{path}", lineterm="", n=0))
    return out


def summary(diffs: dict[str, list[str]]) -> str:
    """Each changed file with its added/removed line counts, then the changed lines themselves."""
    if not diffs:
        return "goldens: no difference"
    lines = [f"goldens: {len(diffs)} file(s) differ"]
    for path, diff in diffs.items():
        body = [d for d in diff if not d.startswith(("---", "+++", "@@"))]
        added = sum(d.startswith("+") for d in body)
        lines.append(f"  {path}: +{added} -{len(body) - added}")
    for diff in diffs.values():
        lines += diff
    return "\n".join(lines)


def write(produced: dict[str, dict[str, str]], diffs: dict[str, list[str]], reason: str, golden: Path = GOLDEN) -> None:
    changed = {path.split("/", 1)[0] for path in diffs}
    for stack in sorted(changed):
        folder = golden / stack
        if stack not in produced:
            shutil.rmtree(folder, ignore_errors=True)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            if old.name not in produced[stack]:
                old.unlink()
        for name, text in produced[stack].items():
            (folder / name).write_text(text, encoding="utf-8")
    entry = [f"## {reason}", *[f"- {path}" for path in diffs], ""]
    with open(golden / REASONS, "a", encoding="utf-8") as fh:
        fh.write("\n".join(entry) + "\n")


def main(argv: list[str] | None = None, golden: Path = GOLDEN, stacks_dir: Path | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reason", default="", help="why the goldens change (recorded in golden/REASONS.md)")
    args = parser.parse_args(argv)
    reason = " ".join(args.reason.split())
    produced = render_all(stacks_dir)
    diffs = differences(produced, read_golden(golden))
    print(summary(diffs))
    if not diffs:
        return 0
    if not reason:
        print("nothing written: say why with --reason \"...\" (read the diff above first)", file=sys.stderr)
        return 1
    if len(reason) > MAX_REASON:
        print(f"--reason is {len(reason)} characters: keep it under {MAX_REASON}", file=sys.stderr)
        return 2
    write(produced, diffs, reason, golden)
    print(f"written; reason recorded in {golden / REASONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
