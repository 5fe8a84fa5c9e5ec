"""vLLM serve-parser probe. Runs inside the vllm venv (VLLM_TARGET_DEVICE=cpu): stdlib + vllm.

The parser is built the way `vllm` (vllm/entrypoints/cli/main.py) builds it: a top-level
FlexibleArgumentParser with the `serve` subcommand, so `--config` handling (including its
silent drop of `key: false`) is the real one. See _probe_common for the protocol.
"""
from __future__ import annotations

import sys
import typing

from _probe_common import describe_parser, main

ENGINE = "vllm"


def _build():
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    top = FlexibleArgumentParser(prog="vllm")
    subparsers = top.add_subparsers(required=False, dest="subparser")
    cmd = ServeSubcommand()
    serve = cmd.subparser_init(subparsers)
    serve.set_defaults(dispatch_function=cmd.cmd)
    return top, serve, cmd


def build_dump():
    from vllm.config.cache import CacheDType
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
    from vllm.reasoning import ReasoningParserManager
    from vllm.tool_parsers import ToolParserManager
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    _, serve, _ = _build()
    deprecated = getattr(serve, "_deprecated", set())

    def hidden(action, opt):
        # EnableDisableAction keeps --no-enable-x registered but out of help
        return opt not in action.option_strings

    dump = describe_parser(serve, deprecated=lambda a: a in deprecated or getattr(a, "deprecated", False),
                           hidden=hidden)
    dump["prog"] = "vllm serve"
    dump["registries"] = {
        "tool_call_parsers": sorted(ToolParserManager.list_registered()),
        "reasoning_parsers": sorted(ReasoningParserManager.list_registered()),
        "attention_backends": sorted(m.name for m in AttentionBackendEnum),
        "kv_cache_dtypes": sorted(typing.get_args(CacheDType)),
        "quantization_methods": sorted(QUANTIZATION_METHODS),
    }
    # which option's value must be in which registry (argparse checks none of these for vLLM)
    dump["registry_options"] = {
        "--tool-call-parser": "tool_call_parsers",
        "--reasoning-parser": "reasoning_parsers",
        "--attention-backend": "attention_backends",
        "--kv-cache-dtype": "kv_cache_dtypes",
        "--quantization": "quantization_methods",
        "-q": "quantization_methods",
    }
    # vLLM's --config: keys may be dashed or underscored, `key: false` is dropped
    dump["config"] = {"key_style": "dash_or_underscore", "false_dropped": True}
    return dump


def parse_case(args):
    top, _, cmd = _build()
    ns = top.parse_args(["serve", *args])
    cmd.validate(ns)  # what `vllm serve` runs right after parsing (validate_parsed_serve_args)
    ns.__dict__.pop("dispatch_function", None)
    return vars(ns)


if __name__ == "__main__":
    sys.exit(main(ENGINE, build_dump, parse_case))
