"""An engine command line as one typed value, and the one parser of engine options.

`EngineCommand.parse` splits argv into the launcher words (`vllm serve`, `python3 -m
sglang.launch_server`), the positionals before the first option (vLLM's model) and the options, each
with the values that follow it. Every place that reads engine options uses it: the extra_args
allow-list and merge (infra.plan), the flag check (infra.flagcheck.snapshot), the launcher's redaction
and the Kubernetes target's checks (`find_options`).

What counts as an option is argparse's rule, so what we check is what the engine parses: a token
starting with `-` (one dash or two: vLLM's `-tp`, `-dp`, `-cc`) that is not a negative number
(`--chunked-prefill-size -1` gives the value -1). `--x=v` and `-x=v` carry their value inline (argparse
splits both). Which option a token names is decided by `option_key`: the engine's canonical name from
the committed parser snapshot (`-tp` is `--tensor-parallel-size`, SGLang's `--tensor-parallel-size` is
`--tp-size`), without the `--no-` / `--disable-` of a false form, so an option and its negation are one
setting.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

# Options whose values are secrets: shown as REDACTED, and the token after them is taken as their value
# whatever it looks like (vLLM's --api-key takes several keys: nargs "+").
SECRET_OPTIONS = ("--api-key", "--hf-token")
REDACTED = "<redacted>"
# A false form's prefixes: `--no-x` (vLLM's BooleanOptionalAction) and `--disable-x` (SGLang).
NEGATION_PREFIXES = ("no-", "disable-")
# How each engine's server is started (launch.json argv; the plan writes the first); what follows is parser input.
LAUNCHERS = {
    "vllm": (("vllm", "serve"), ("python3", "-m", "vllm.entrypoints.cli.main", "serve"),
             ("python", "-m", "vllm.entrypoints.cli.main", "serve")),
    "sglang": (("python3", "-m", "sglang.launch_server"), ("python", "-m", "sglang.launch_server"),
               ("sglang", "serve")),
}


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def is_option(tok: str) -> bool:
    """An option token (`--x`, `--x=v`, `-x`), not a value (`8192`, `-1`, `openai/gpt-oss-120b`)."""
    return tok.startswith("-") and len(tok) > 1 and not _is_number(tok)


@dataclass(frozen=True)
class Option:
    """One option as written, with the values that follow it. `name` is empty for values that follow
    no option (stray values, kept so that `tokens` gives back exactly what was parsed)."""

    name: str  # before any `=`: "--max-num-seqs", "-dp", "--no-enable-prefix-caching"
    values: tuple[str, ...] = ()
    inline: bool = False  # written `--name=value`
    index: int = 0  # where its first token sits in the parsed list

    @property
    def tokens(self) -> list[str]:
        if self.inline:
            return [f"{self.name}={self.values[0]}", *self.values[1:]]
        return [self.name, *self.values] if self.name else list(self.values)

    @property
    def negated(self) -> bool:
        return self.name.lstrip("-").startswith(NEGATION_PREFIXES)

    def key(self, backend: str | None = None) -> str | None:
        return option_key(self.name, backend) if self.name else None


def canonical_option(name: str, backend: str | None) -> str:
    """The engine's own name for an option spelling (`-tp` -> `--tensor-parallel-size` for vLLM), from the
    committed parser snapshot; unknown names come back unchanged."""
    if backend is None:
        return name
    if backend == "vllm" and name.startswith("-O") and not name.startswith("--"):
        # vLLM's FlexibleArgumentParser rewrites -O3, -O=3 and -O 3 to --optimization-level before argparse.
        return "--optimization-level"
    from infra.flagcheck.snapshot import load_snapshot

    info = load_snapshot(backend)["options"].get(name)
    return (info or {}).get("canonical") or name


def option_key(name: str, backend: str | None = None) -> str:
    """The setting an option names: canonical, without dashes or a false form's prefix
    (`--no-enable-prefix-caching` -> `enable-prefix-caching`, `-tp` -> `tensor-parallel-size` for vLLM)."""
    bare = canonical_option(name.split("=", 1)[0], backend).lstrip("-")
    for prefix in NEGATION_PREFIXES:
        if bare.startswith(prefix):
            return bare[len(prefix):]
    return bare


def is_append_option(name: str, backend: str) -> bool:
    """An option the engine accumulates (argparse "append", e.g. vLLM's --middleware): a later one adds
    to, never replaces, an earlier one. From the committed parser snapshot."""
    from infra.flagcheck.snapshot import load_snapshot

    info = load_snapshot(backend)["options"].get(name)
    return bool(info) and info.get("action") == "_AppendAction"


def parse_options(tokens: Sequence[str], start: int = 0) -> tuple[list[str], list[Option]]:
    """(positionals before the first option, options). Each option takes the non-option tokens that
    follow it; a secret option also takes the next token whatever it looks like. `start` offsets
    `Option.index` (the tokens' place in a longer argv)."""
    positionals: list[str] = []
    options: list[Option] = []
    i, n = 0, len(tokens)
    while i < n and not is_option(tokens[i]):
        positionals.append(tokens[i])
        i += 1
    while i < n:
        tok, at = tokens[i], i
        i += 1
        if not is_option(tok):  # a value after a secret option's own value: stray
            values = [tok]
            while i < n and not is_option(tokens[i]):
                values.append(tokens[i])
                i += 1
            options.append(Option("", tuple(values), index=start + at))
            continue
        name, eq, inline = tok.partition("=")
        values = [inline] if eq else []
        if not eq and name in SECRET_OPTIONS and i < n:
            values.append(tokens[i])
            i += 1
        while i < n and not is_option(tokens[i]):
            values.append(tokens[i])
            i += 1
        options.append(Option(name, tuple(values), inline=bool(eq), index=start + at))
    return positionals, options


def split_launcher(backend: str, argv: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """(launcher words, parser input), or None when argv starts with no known launcher of `backend`.
    argv that already starts with an option is parser input as a whole."""
    if argv and argv[0].startswith("-"):
        return [], list(argv)
    for launcher in LAUNCHERS[backend]:
        n = len(launcher)
        head = [os.path.basename(argv[0]), *argv[1:n]] if argv else []
        if head == list(launcher):
            return list(argv[:n]), list(argv[n:])
    return None


@dataclass(frozen=True)
class EngineCommand:
    """launcher words + positionals + options; `argv` gives back exactly the tokens parsed."""

    launcher: tuple[str, ...] = ()
    positionals: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()

    @classmethod
    def parse(cls, argv: Sequence[str], backend: str | None = None) -> "EngineCommand":
        """With `backend`, the engine's launcher words are split off first (ValueError if argv does
        not start with one); without, every token is parser input."""
        launcher: list[str] = []
        rest = list(argv)
        if backend is not None:
            split = split_launcher(backend, argv)
            if split is None:
                raise ValueError(f"not a {backend} server command: {' '.join(argv[:3])}")
            launcher, rest = split
        positionals, options = parse_options(rest, start=len(launcher))
        return cls(tuple(launcher), tuple(positionals), tuple(options))

    @property
    def argv(self) -> list[str]:
        return [*self.launcher, *self.positionals, *(t for o in self.options for t in o.tokens)]

    @property
    def args(self) -> list[str]:
        """What the engine's parser reads (argv without the launcher words)."""
        return self.argv[len(self.launcher):]

    def without(self, keys: Iterable[str], backend: str | None = None) -> "EngineCommand":
        """This command less every option whose `option_key` is in `keys` (with its values)."""
        drop = set(keys)
        return replace(self, options=tuple(o for o in self.options if not (o.name and o.key(backend) in drop)))

    def find(self, names: Iterable[str], backend: str | None = None) -> list[Option]:
        """The options that name the same setting as any of `names` (aliases and false forms included)."""
        wanted = {option_key(n, backend) for n in names}
        return [o for o in self.options if o.name and o.key(backend) in wanted]

    def redacted(self) -> "EngineCommand":
        """Secret options' values replaced by REDACTED."""
        return replace(self, options=tuple(
            replace(o, values=tuple(REDACTED for _ in o.values)) if o.name in SECRET_OPTIONS else o
            for o in self.options))


def find_options(backend: str, args: Sequence[str], names: Iterable[str]) -> list[Option]:
    """The options of `args` (e.g. a stack's extra_args) that name any of `names`, in any spelling the
    engine accepts (`-dp 2`, `--data-parallel-size=2`, SGLang's `--dp-size` alias); `Option.index` is
    the position in `args`. For target checks such as the Kubernetes refusal of data parallelism."""
    return EngineCommand.parse(args).find(names, backend)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """argv to print or log: the values of SECRET_OPTIONS replaced by REDACTED."""
    return EngineCommand.parse(argv).redacted().argv


__all__ = ["EngineCommand", "canonical_option", "LAUNCHERS", "NEGATION_PREFIXES", "Option", "REDACTED", "SECRET_OPTIONS", "find_options",
           "is_append_option", "is_option", "option_key", "parse_options", "redact_argv", "split_launcher"]
