"""Issue 11 items 4, 7, 8 and 9 where the spec and the stack file are read: secrets never echoed,
bounded inputs, one-line errors instead of tracebacks, and the smaller holes."""
from __future__ import annotations

import pytest

from infra.plan import build_plan
from infra.spec import SpecError, load_spec, shown
from infra.stackfile import MAX_ALIASES, MAX_STACK_FILE_BYTES, read_stack_config

BASE = {"backend": "sglang", "gpu": "auto", "model": "openai/gpt-oss-20b"}
KEY = "sk-live-SENTINEL-5c2e8f0a91"


def write_stack(tmp_path, text: str, name: str = "t"):
    (tmp_path / f"Pulumi.{name}.yaml").write_text(text)
    return name


# ----------------------------------------------------------------------------- item 4: secrets echoed

@pytest.mark.parametrize("extra", [[f"--api-key={KEY}"], ["--api-key", KEY], [f"--hf-token={KEY}"],
                                   [f"--api_key={KEY}"], [f"--apikey={KEY}"], [KEY]])
def test_secret_in_extra_args_is_refused_without_printing_it(extra):
    with pytest.raises(SpecError) as exc:
        build_plan(load_spec({**BASE, "extra_args": extra}, stack="s"))
    assert KEY not in str(exc.value) and "Fix:" in str(exc.value)


def test_unknown_option_error_names_the_option_not_its_value():
    with pytest.raises(SpecError) as exc:
        build_plan(load_spec({**BASE, "extra_args": [f"--admin-token={KEY}"]}, stack="s"))
    assert "--admin-token=<hidden>" in str(exc.value) and KEY not in str(exc.value)


def test_secret_looking_env_and_control_characters_in_env_hide_the_value():
    for env in ({"MY_TOKEN": KEY}, {"NOTE": f"{KEY}\n"}):
        with pytest.raises(SpecError) as exc:
            load_spec({**BASE, "env": env}, stack="s")
        assert KEY not in str(exc.value)


# ----------------------------------------------------------------------------- item 7: unbounded inputs

def test_yaml_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    lines = ['config:', '  gptoss-stacks:backend: vllm', '  gptoss-stacks:gpu: auto', '  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("  gptoss-stacks:served_model_name: *a9")
    name = write_stack(tmp_path, "\n".join(lines) + "\n")
    assert len("\n".join(lines)) < 1200  # the attack run's ~1 KB bomb
    with pytest.raises(SpecError) as exc:
        read_stack_config(name, tmp_path)
    assert f"more than {MAX_ALIASES} aliases" in str(exc.value) and len(str(exc.value)) < 500


def test_few_aliases_expanding_to_a_huge_tree_are_refused(tmp_path):
    lines = ["config:", "  x0: &x0 [" + ",".join(["1"] * 60) + "]"]
    for i in range(1, 4):
        lines.append(f"  x{i}: &x{i} [" + ",".join([f"*x{i - 1}"] * 12) + "]")
    name = write_stack(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(SpecError, match="too large"):
        read_stack_config(name, tmp_path)


def test_oversized_stack_file_is_refused(tmp_path):
    name = write_stack(tmp_path, "config:\n  gptoss-stacks:backend: vllm\n# " + "x" * MAX_STACK_FILE_BYTES + "\n")
    with pytest.raises(SpecError, match="bytes"):
        read_stack_config(name, tmp_path)


def test_error_messages_truncate_long_values():
    with pytest.raises(SpecError) as exc:
        load_spec({**BASE, "attention_backend": "x" * 5000}, stack="s")
    assert len(str(exc.value)) < 1500 and "chars)" in str(exc.value)
    assert len(shown("y" * 10_000)) < 120


def test_over_long_strings_are_refused():
    with pytest.raises(SpecError, match="characters long"):
        load_spec({**BASE, "served_model_name": "m" * 20_000}, stack="s")


# ----------------------------------------------------------------------------- item 8: messages, not tracebacks

@pytest.mark.parametrize("text, words", [
    ("just a scalar\n", ["holds a str", "config:"]),
    ("42\n", ["holds a int"]),
    ("- a\n- b\n", ["holds a list"]),
    ("config:\n  - gptoss-stacks:backend: vllm\n", ["must be a mapping", "not a list"]),
    ("config: 7\n", ["must be a mapping"]),
    ("config:\n  1: x\n", ["strings"]),
    ("config: {a: [\n", ["not valid YAML"]),
    ("config:\n  backend: vllm\n", ["has no namespace", "gptoss-stacks:backend"]),
])
def test_malformed_stack_files_give_one_line_naming_the_file_or_field(tmp_path, text, words):
    name = write_stack(tmp_path, text)
    with pytest.raises(SpecError) as exc:
        read_stack_config(name, tmp_path)
    message = str(exc.value)
    assert "\n" not in message and "Fix:" in message
    for word in words:
        assert word in message


def test_plain_key_without_namespace_never_shows_its_value(tmp_path):
    name = write_stack(tmp_path, f"config:\n  api_key: {KEY}\n")
    with pytest.raises(SpecError) as exc:
        read_stack_config(name, tmp_path)
    assert KEY not in str(exc.value)


def test_non_utf8_stack_file(tmp_path):
    (tmp_path / "Pulumi.b.yaml").write_bytes(b"config:\n  gptoss-stacks:backend: \xff\xfe\n")
    with pytest.raises(SpecError, match="UTF-8"):
        read_stack_config("b", tmp_path)


# ----------------------------------------------------------------------------- item 9: smaller holes

@pytest.mark.parametrize("extra", [["--config=/tmp/x.yaml"], ["--config", "/tmp/x.yaml"]])
@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_extra_args_config_cannot_bypass_the_launchers_config(backend, extra):
    with pytest.raises(SpecError, match="owns the engine's --config"):
        load_spec({**BASE, "backend": backend, "extra_args": extra}, stack="s")


@pytest.mark.parametrize("digest", ["sha256:" + "g" * 64, "sha256:" + "A" * 64, "sha256:" + "0" * 63 + "$",
                                    "sha256:" + "0" * 63])
def test_base_digest_must_be_hex(digest):
    with pytest.raises(SpecError, match="hex"):
        load_spec({**BASE, "image": {"base_digest": digest}}, stack="s")
    load_spec({**BASE, "image": {"base_digest": "sha256:" + "0a" * 32}}, stack="s")


@pytest.mark.parametrize("overrides, warned", [
    ({"docker": {"publish_address": "0.0.0.0"}}, True),
    ({"docker": {"publish_address": "127.0.0.1"}}, False),
    ({"target": "kubernetes", "kubernetes": {"service_type": "LoadBalancer"}, "image": {"registry": "ghcr.io/a"}}, True),
    ({"target": "kubernetes", "image": {"registry": "ghcr.io/a"}}, False),
])
def test_api_key_mode_none_on_a_public_address_warns(overrides, warned):
    plan = build_plan(load_spec({**BASE, "api_key_mode": "none", **overrides}, stack="s"))
    assert any("api_key_mode: none" in w for w in plan.warnings) == warned
    assert not plan.secrets
