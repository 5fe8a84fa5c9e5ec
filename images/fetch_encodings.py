#!/usr/bin/env python3
"""Put the Harmony tokenizer files (o200k_base / cl100k_base) into images/encodings/ for offline builds.

    python images/fetch_encodings.py              # from OpenAI's public blob store (needs that host)
    python images/fetch_encodings.py --from-pypi  # from a PyPI wheel that bundles them (pip only)

Both paths verify tiktoken's SHA-256 (infra/launcher/encodings.py) before writing. The PyPI path
uses litellm's wheel, which ships the two files as tiktoken cache entries (named by sha1 of their
URL); it is downloaded with `pip download --no-deps` and only those two members are read.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.launcher.encodings import ENCODINGS, URL_BASE, EncodingError, install  # noqa: E402

DEST = ROOT / "images" / "encodings"
PYPI_WHEEL = "litellm==1.104.0"
MEMBER_DIR = "litellm/litellm_core_utils/tokenizers/"


def from_pypi(dest: Path, requirement: str = PYPI_WHEEL) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        requirement, "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            staged = Path(tmp) / "staged"
            staged.mkdir()
            for name in ENCODINGS:
                # tiktoken's cache key: sha1 of the download URL.
                member = MEMBER_DIR + hashlib.sha1((URL_BASE + name).encode()).hexdigest()
                (staged / name).write_bytes(zf.read(member))
        return install(dest, staged, allow_download=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from-pypi", action="store_true")
    ap.add_argument("--dest", default=str(DEST))
    a = ap.parse_args(argv)
    try:
        done = from_pypi(Path(a.dest)) if a.from_pypi else install(a.dest, None, allow_download=True)
    except (EncodingError, subprocess.CalledProcessError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in done:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
