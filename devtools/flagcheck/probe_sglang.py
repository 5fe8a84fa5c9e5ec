"""SGLang serve-parser probe. Runs inside the sglang venv: stdlib + sglang (+ its light deps).

SGLang's modules import triton at import time; there is no triton for a CPU-only venv. SGLang
ships a stand-in (sglang/_platform_stubs.py) that it installs only on Apple Silicon, so we load
that file without importing the sglang package and install it while the platform checks see
darwin/arm64/MPS. Parsing is SGLang's own `prepare_server_args` (what `python -m
sglang.launch_server` and `sglang serve` call), which merges `--config` YAML and parses.
"""
from __future__ import annotations

import importlib.util
import platform
import sys

from _probe_common import describe_parser, main

ENGINE = "sglang"


def _install_triton_stand_in():
    if importlib.util.find_spec("triton") is not None:
        return
    spec = importlib.util.find_spec("sglang")  # finds the package without executing it
    path = spec.submodule_search_locations[0] + "/_platform_stubs.py"
    stub_spec = importlib.util.spec_from_file_location("_gptoss_sglang_stubs", path)
    stubs = importlib.util.module_from_spec(stub_spec)
    sys.modules[stub_spec.name] = stubs  # its dataclasses look their module up here
    stub_spec.loader.exec_module(stubs)
    import torch

    saved = sys.platform, platform.machine, torch.backends.mps.is_available
    sys.platform, platform.machine = "darwin", (lambda: "arm64")
    torch.backends.mps.is_available = lambda: True
    try:
        stubs.install_platform_stubs()
    finally:
        sys.platform, platform.machine, torch.backends.mps.is_available = saved
    assert "triton" in sys.modules, "SGLang's triton stand-in did not install"


def _parser():
    import argparse

    from sglang.srt.server_args import ServerArgs

    # same construction as sglang.srt.server_args.prepare_server_args
    parser = argparse.ArgumentParser(prog="sglang serve")
    ServerArgs.add_cli_args(parser)
    return parser


def build_dump():
    from sglang.srt.arg_groups.choices import ATTENTION_BACKEND_CHOICES, QUANTIZATION_CHOICES
    from sglang.srt.function_call.parser_names import TOOL_CALL_PARSER_NAMES
    from sglang.srt.parser.reasoning_parser_names import REASONING_PARSER_NAMES

    parser = _parser()
    dump = describe_parser(parser, deprecated=lambda a: type(a).__name__.startswith("Deprecated"))
    kv = parser._option_string_actions["--kv-cache-dtype"]
    dump["prog"] = "python3 -m sglang.launch_server"
    dump["registries"] = {
        "tool_call_parsers": sorted(TOOL_CALL_PARSER_NAMES),
        "reasoning_parsers": sorted(REASONING_PARSER_NAMES),
        "attention_backends": sorted(ATTENTION_BACKEND_CHOICES),
        "kv_cache_dtypes": sorted(kv.choices),  # SGLang keeps this list only as the choices
        "quantization_methods": sorted(QUANTIZATION_CHOICES),
    }
    dump["registry_options"] = {
        "--tool-call-parser": "tool_call_parsers",
        "--reasoning-parser": "reasoning_parsers",
        "--attention-backend": "attention_backends",
        "--decode-attention-backend": "attention_backends",
        "--prefill-attention-backend": "attention_backends",
        "--kv-cache-dtype": "kv_cache_dtypes",
        "--quantization": "quantization_methods",
    }
    # SGLang's --config turns each key into `--<key>` verbatim: dashes required
    dump["config"] = {"key_style": "dash", "false_dropped": True}
    return dump


def parse_case(args):
    from sglang.srt.server_args import prepare_server_args

    server_args = prepare_server_args(list(args))
    return {k: getattr(server_args, k) for k in ("model_path", "tp_size", "port", "host",
                                                  "tool_call_parser", "reasoning_parser",
                                                  "attention_backend", "kv_cache_dtype",
                                                  "mem_fraction_static", "context_length")
            if hasattr(server_args, k)}


if __name__ == "__main__":
    _install_triton_stand_in()
    sys.exit(main(ENGINE, build_dump, parse_case))
