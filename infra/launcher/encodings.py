"""Harmony tokenizer files (o200k_base / cl100k_base) baked into the image.

openai-harmony (used by vLLM and SGLang for gpt-oss) downloads `o200k_base.tiktoken` at first
use unless TIKTOKEN_ENCODINGS_BASE points at a directory holding it. Offline, that download fails
("error downloading or loading vocab file", vLLM #22525, SGLang #18074), and in its silent form
tool calls come back empty with raw channel markers in the content. So the build installs the
files (checksum-verified) and the launcher refuses to start when they are missing or altered.

The SHA-256 values are tiktoken's own `expected_hash` for these files (tiktoken_ext/openai_public.py;
openai-harmony checks the same value for o200k).

CLI (used by the Dockerfiles and images/fetch_encodings.py):
    python -m infra.launcher.encodings install --dest DIR [--from DIR] [--allow-download]
    python -m infra.launcher.encodings verify DIR
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.request
from pathlib import Path

ENCODINGS = {
    "o200k_base.tiktoken": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base.tiktoken": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
URL_BASE = "https://openaipublic.blob.core.windows.net/encodings/"


class EncodingError(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_dir(directory: str | os.PathLike) -> None:
    """Raise EncodingError naming the file and the fix when a file is missing or altered."""
    d = Path(directory)
    for name, want in ENCODINGS.items():
        p = d / name
        if not p.is_file():
            raise EncodingError(
                f"TIKTOKEN_ENCODINGS_BASE={d}: {name} is missing; gpt-oss tool calls would break offline. "
                "Rebuild the image (it installs the file) or mount a directory holding it")
        got = sha256_file(p)
        if got != want:
            raise EncodingError(f"{p}: sha256 {got} does not match tiktoken's {want}; replace the file")


def install(dest: str | os.PathLike, source: str | os.PathLike | None, allow_download: bool) -> list[str]:
    """Copy each file from `source` (build context) if there, else download it; verify either way."""
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for name, want in ENCODINGS.items():
        src = Path(source) / name if source else None
        if src is not None and src.is_file():
            data = src.read_bytes()
            origin = f"build context ({src})"
        elif allow_download:
            with urllib.request.urlopen(URL_BASE + name, timeout=120) as resp:  # noqa: S310 (fixed https URL)
                data = resp.read()
            origin = URL_BASE + name
        else:
            raise EncodingError(
                f"{name} not found in {source} and downloads are off: put the file there "
                "(python images/fetch_encodings.py) or build with --build-arg TIKTOKEN_DOWNLOAD=1")
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            raise EncodingError(f"{name} from {origin}: sha256 {got} != expected {want}; refusing to install it")
        (out / name).write_bytes(data)
        os.chmod(out / name, 0o644)
        done.append(f"{name} <- {origin} (sha256 ok)")
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m infra.launcher.encodings")
    sub = ap.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("install")
    i.add_argument("--dest", required=True)
    i.add_argument("--from", dest="source")
    i.add_argument("--allow-download", action="store_true")
    v = sub.add_parser("verify")
    v.add_argument("dir")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "install":
            for line in install(args.dest, args.source, args.allow_download):
                print(line)
        else:
            verify_dir(args.dir)
            print(f"{args.dir}: {', '.join(ENCODINGS)} ok")
    except EncodingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
