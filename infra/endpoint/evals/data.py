"""The eval datasets: fetched on first use from the reference harness's public sources, checked by
sha256 and cached; or a user's copy (``--data PATH``) in the same formats. Every row is validated
where it is read; a bad one is a one-line :class:`DataError` naming the file, the row and the field.

Formats (those of the sources, so a mirror works unchanged):
- GPQA: CSV with a header row holding at least ``Question``, ``Correct Answer``,
  ``Incorrect Answer 1``, ``Incorrect Answer 2``, ``Incorrect Answer 3`` (other columns ignored);
- AIME25: JSON Lines, one object per line with ``question`` (text) and ``answer`` (an integer, or a
  string starting with its digits, as the source has; the reference keeps those leading digits).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import httpx

from infra.endpoint.deadline import Deadline, http_client, scope
from infra.endpoint.safetext import printable

MAX_FILE_BYTES = 32 << 20      # gpqa_diamond.csv is ~1.6 MB; an AIME file a few KB
MAX_ROWS = 100_000
MAX_FIELD_CHARS = 100_000      # one question or answer
FETCH_TIMEOUT_S = 120.0        # one download, start to last byte
DATA_HELP = "README 'Accuracy gate': datasets"


class DataError(Exception):
    """A dataset that cannot be used; the message is one line with the fix."""


@dataclass(frozen=True)
class Source:
    name: str      # the cached file's name
    url: str
    sha256: str


# Where gpt_oss/evals (openai/gpt-oss @7b58334) reads them. gpqa_eval.py: the simple-evals CSV.
# aime_eval.py reads opencompass/AIME2025 at `raw/main`; here the same files at the revision whose
# sha256 was recorded (a6ad95f6), so the check cannot break when the branch moves.
# sha256: gpqa_diamond.csv as published in two independent evaluation repos' pinned checksums;
# the AIME files as recorded for that revision (not re-downloaded here: this machine has no internet).
_AIME_REV = "a6ad95f611d72cf628a80b58bd0432ef6638f958"
_AIME_RAW = f"https://huggingface.co/datasets/opencompass/AIME2025/raw/{_AIME_REV}"
SOURCES: dict[str, tuple[Source, ...]] = {
    "gpqa": (Source("gpqa_diamond.csv", "https://openaipublic.blob.core.windows.net/simple-evals/gpqa_diamond.csv",
                    "41d1213cd7a4998605a26c2798500652572007161b3a92817ba46b35befcd305"),),
    "aime25": (
        Source("aime2025-I.jsonl", f"{_AIME_RAW}/aime2025-I.jsonl",
               "b91b3c96f05d9635d2a0692b124ebe023c1ff59cb19c074275e6c4b349d0659e"),
        Source("aime2025-II.jsonl", f"{_AIME_RAW}/aime2025-II.jsonl",
               "16a2dcfbbf9db1b11f8a69a3ba5e4cac73e3641b19a37e2307e9c12240bbed5e"),
    ),
}
GPQA_COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


@dataclass(frozen=True)
class Example:
    question: str
    answers: tuple[str, ...] = ()   # GPQA: (correct, incorrect 1, 2, 3)
    answer: int | None = None       # AIME: the integer answer
    where: str = ""                 # "file row N", for messages


def cache_dir() -> Path:
    root = os.environ.get("GPTOSS_STACKS_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "gptoss-stacks") / "evals"


def fetch(source: Source, cache: Path, timeout: float = FETCH_TIMEOUT_S, deadline: Deadline | None = None) -> Path:
    """The cached copy of ``source``, downloaded (within ``timeout`` and ``deadline``) and sha256-checked
    on first use. Only a file with the right sha256 is ever kept."""
    path = cache / source.sha256[:16] / source.name
    if path.is_file():
        return path
    fix = f"(fix: download it yourself and pass --data PATH; {DATA_HELP})"
    digest, body = hashlib.sha256(), bytearray()
    try:
        with http_client(timeout) as http, scope(deadline, Deadline.after(timeout, "dataset download")):
            with http.stream("GET", source.url, follow_redirects=True) as resp:
                if resp.status_code != 200:
                    raise DataError(f"download {source.url}: HTTP {resp.status_code} {fix}")
                for piece in resp.iter_bytes():
                    body += piece
                    if len(body) > MAX_FILE_BYTES:
                        raise DataError(f"download {source.url}: larger than {MAX_FILE_BYTES} bytes {fix}")
                    digest.update(piece)
    except httpx.HTTPError as exc:
        raise DataError(f"download {source.url}: {type(exc).__name__}: {printable(exc)} {fix}") from None
    got = digest.hexdigest()
    if got != source.sha256:
        raise DataError(f"download {source.url}: sha256 {got} is not the expected {source.sha256} "
                        f"(the source changed or the download was altered) {fix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(bytes(body))
    tmp.replace(path)  # atomic: a reader sees the whole checked file or none
    return path


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"--data {path}: cannot read it ({exc.strerror}) "
                        f"(fix: give an existing file; {DATA_HELP})") from None
    if size > MAX_FILE_BYTES:
        raise DataError(f"--data {path}: {size} bytes, more than {MAX_FILE_BYTES} (fix: a smaller file; {DATA_HELP})")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"--data {path}: not UTF-8 (byte {exc.start}) (fix: save it as UTF-8; {DATA_HELP})") from None


def _text(value: object, where: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        shown = "missing" if value is None else f"{printable(value, 40)!r}"
        raise DataError(f"{where}: `{field}` is {shown}, expected non-empty text (fix: correct that row; {DATA_HELP})")
    if len(value) > MAX_FIELD_CHARS:
        raise DataError(f"{where}: `{field}` is {len(value)} characters, more than {MAX_FIELD_CHARS} "
                        f"(fix: correct that row; {DATA_HELP})")
    return value


def load_gpqa(path: Path) -> list[Example]:
    text = _read(path)
    csv.field_size_limit(MAX_FIELD_CHARS + 1)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in GPQA_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: no column {', '.join(repr(c) for c in missing)} in the header "
                        f"(fix: a GPQA CSV with columns {', '.join(GPQA_COLUMNS)}; {DATA_HELP})")
    out = []
    try:
        for row in reader:
            where = f"{path} row {len(out) + 1}"
            if len(out) >= MAX_ROWS:
                raise DataError(f"{path}: more than {MAX_ROWS} rows (fix: a smaller file; {DATA_HELP})")
            if None in row:  # more fields than the header names
                raise DataError(f"{where}: {len(row[None]) + len(reader.fieldnames or [])} fields, the header has "
                                f"{len(reader.fieldnames or [])} (fix: quote fields that hold commas; {DATA_HELP})")
            values = [_text(row.get(c), where, c) for c in GPQA_COLUMNS]
            out.append(Example(values[0], tuple(values[1:]), where=where))
    except csv.Error as exc:
        raise DataError(f"{path} line {reader.line_num}: not valid CSV ({exc}) "
                        f"(fix: correct that line; {DATA_HELP})") from None
    return out


_LEADING_DIGITS = re.compile(r"\d+")


def load_aime(path: Path) -> list[Example]:
    out = []
    for n, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        if len(out) >= MAX_ROWS:
            raise DataError(f"{path}: more than {MAX_ROWS} rows (fix: a smaller file; {DATA_HELP})")
        try:
            row = json.loads(line)
        except ValueError:
            raise DataError(f"{where}: not JSON: {printable(line, 60)!r} "
                            f"(fix: one JSON object per line; {DATA_HELP})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: a JSON {type(row).__name__}, expected an object with `question` and `answer` "
                            f"(fix: correct that line; {DATA_HELP})")
        question = _text(row.get("question"), where, "question")
        raw = row.get("answer")
        answer = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            answer = raw
        elif isinstance(raw, str):  # the reference keeps the leading digits ("070" -> 70)
            m = _LEADING_DIGITS.match(raw.strip())
            answer = int(m.group()) if m and len(m.group()) <= 18 else None
        if answer is None:
            raise DataError(f"{where}: `answer` is {printable(json.dumps(raw), 40)}, expected an integer "
                            f"(fix: correct that line; {DATA_HELP})")
        out.append(Example(question, answer=answer, where=where))
    return out


LOADERS = {"gpqa": load_gpqa, "aime25": load_aime}


def load(eval_name: str, data: list[Path] | None = None, cache: Path | None = None,
         deadline: Deadline | None = None, on_fetch=None) -> tuple[list[Example], list[dict[str, str]]]:
    """(the examples, where they came from: path and sha256 of each file). ``data``: the user's
    files (several AIME files are read in order, as the reference reads part I then II)."""
    if data:
        paths = list(data)
    else:
        paths = []
        for src in SOURCES[eval_name]:
            if on_fetch is not None:
                on_fetch(src)
            paths.append(fetch(src, cache or cache_dir(), deadline=deadline))
    examples: list[Example] = []
    files = []
    for p in paths:
        examples += LOADERS[eval_name](Path(p))
        files.append({"path": str(p), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()})
    if not examples:
        raise DataError(f"{', '.join(map(str, paths))}: no rows (fix: a file with at least one example; {DATA_HELP})")
    return examples, files
