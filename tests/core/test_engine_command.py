"""The one parser of engine options (infra.engine_command): what is an option, what is its value."""
import pytest
from hypothesis import given, settings, strategies as st

from infra.engine_command import (EngineCommand, Option, find_options, is_append_option, option_key,
                                  parse_options, redact_argv)


def test_value_forms_and_single_dash_options():
    pos, opts = parse_options(["--max-num-seqs=8", "--port", "8000", "-tp", "2", "-dp=4", "--enable-metrics"])
    assert pos == []
    assert opts == [Option("--max-num-seqs", ("8",), inline=True, index=0), Option("--port", ("8000",), index=1),
                    Option("-tp", ("2",), index=3), Option("-dp", ("4",), inline=True, index=5),
                    Option("--enable-metrics", (), index=6)]
    assert [t for o in opts for t in o.tokens] == ["--max-num-seqs=8", "--port", "8000", "-tp", "2", "-dp=4",
                                                   "--enable-metrics"]


@pytest.mark.parametrize("value", ["-1", "-0.5", "-1e3", "0"])
def test_negative_numbers_are_values(value):
    _, opts = parse_options(["--chunked-prefill-size", value, "--port", "1"])
    assert opts[0] == Option("--chunked-prefill-size", (value,)) and opts[1].name == "--port"


def test_false_forms_and_aliases_name_one_setting():
    assert option_key("--no-enable-prefix-caching") == option_key("--enable-prefix-caching") == "enable-prefix-caching"
    assert option_key("--disable-radix-cache") == "radix-cache"
    assert Option("--no-async-scheduling").negated and not Option("--async-scheduling").negated
    # aliases resolve through the engine's parser snapshot
    assert option_key("-tp", "vllm") == option_key("--tensor-parallel-size", "vllm") == "tensor-parallel-size"
    assert option_key("--tensor-parallel-size", "sglang") == "tp-size"
    assert option_key("--max-num-seqs=8", "vllm") == "max-num-seqs"


def test_append_options_come_from_the_parser_snapshot():
    assert is_append_option("--middleware", "vllm")
    assert not is_append_option("--max-num-seqs", "vllm") and not is_append_option("--middleware", "sglang")
    _, opts = parse_options(["--middleware", "a.B", "--middleware", "c.D"])
    assert [o.values for o in opts] == [("a.B",), ("c.D",)]


def test_engine_command_splits_launcher_positionals_and_options():
    argv = ["vllm", "serve", "openai/gpt-oss-120b", "--config", "/etc/gptoss/vllm.yaml", "--no-async-scheduling"]
    cmd = EngineCommand.parse(argv, "vllm")
    assert cmd.launcher == ("vllm", "serve") and cmd.positionals == ("openai/gpt-oss-120b",)
    assert [o.name for o in cmd.options] == ["--config", "--no-async-scheduling"]
    assert cmd.argv == argv and cmd.args == argv[2:]
    assert cmd.without({"async-scheduling"}, "vllm").argv == argv[:-1]
    sg = EngineCommand.parse(["/usr/bin/python3", "-m", "sglang.launch_server", "--tp-size", "1"], "sglang")
    assert sg.launcher == ("/usr/bin/python3", "-m", "sglang.launch_server") and sg.args == ["--tp-size", "1"]
    with pytest.raises(ValueError, match="not a vllm server command"):
        EngineCommand.parse(["python3", "-m", "sglang.launch_server"], "vllm")


def test_find_options_for_target_checks():
    dp = ("--data-parallel-size",)
    assert [(o.name, o.index) for o in find_options("vllm", ["--max-log-len", "9", "-dp", "2"], dp)] == [("-dp", 2)]
    assert [o.index for o in find_options("vllm", ["--data-parallel-size=2"], dp)] == [0]
    assert [o.name for o in find_options("sglang", ["--dp-size", "2"], dp)] == ["--dp-size"]  # SGLang's alias
    assert find_options("vllm", ["--max-log-len", "2"], dp) == []
    assert find_options("sglang", ["--enable-metrics"], ("--enable-metrics",))[0].index == 0


def test_redaction_hides_every_value_of_a_secret_option():
    assert redact_argv(["vllm", "serve", "m", "--api-key", "k1", "k2", "--port", "1"]) == [
        "vllm", "serve", "m", "--api-key", "<redacted>", "<redacted>", "--port", "1"]  # vLLM: nargs "+"
    assert redact_argv(["x", "--api-key", "-looks-like-an-option", "--hf-token=hf_x"]) == [
        "x", "--api-key", "<redacted>", "--hf-token=<redacted>"]
    assert redact_argv(["x", "--api-key"]) == ["x", "--api-key"]


tokens = st.lists(st.one_of(st.sampled_from(["--a", "-b", "--c=1", "-1", "v", "--api-key", "=", "-", "--"]),
                            st.text(max_size=6)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(tokens)
def test_parsing_gives_back_exactly_the_tokens(argv):
    assert EngineCommand.parse(argv).argv == argv
    assert len(redact_argv(argv)) == len(argv)
