"""The tiny test model: a real gpt-oss GGUF with harmony special tokens, and a real server
that answers in valid harmony (parsed by llama.cpp into reasoning, content and tool calls)."""

import httpx
import pytest

from tools.llama import model as tm


def test_gguf_is_gpt_oss_with_harmony_vocab(tmp_path):
    import gguf

    path = tm.write_tiny_model(tmp_path / "t.gguf", chat_template="{{ messages }}")
    r = gguf.GGUFReader(str(path))
    field = lambda k: r.fields[k]  # noqa: E731
    arch = bytes(field("general.architecture").parts[-1]).decode()
    assert arch == "gpt-oss"
    tokens = [bytes(field("tokenizer.ggml.tokens").parts[i]).decode() for i in field("tokenizer.ggml.tokens").data]
    types = [int(field("tokenizer.ggml.token_type").parts[i][0]) for i in field("tokenizer.ggml.token_type").data]
    kinds = dict(zip(tokens, types))
    for special in tm.SPECIAL_TOKENS:
        assert kinds[special] == 3, special          # CONTROL
    for piece in tm.USER_DEFINED:
        assert kinds[piece] == 4, piece              # USER_DEFINED
    eos = int(field("tokenizer.ggml.eos_token_id").parts[-1][0])
    assert tokens[eos] == "<|return|>"
    names = {t.name for t in r.tensors}
    assert {"token_embd.weight", "output.weight", "blk.1.attn_sinks.weight", "blk.1.ffn_gate_exps.weight"} <= names


def test_model_file_is_deterministic(tmp_path):
    a = tm.write_tiny_model(tmp_path / "a.gguf", "x").read_bytes()
    b = tm.write_tiny_model(tmp_path / "b.gguf", "x").read_bytes()
    assert a == b


@pytest.mark.slow
def test_server_answers_in_parsed_harmony(open_server):
    url = open_server.url + "/v1/chat/completions"
    msg = httpx.post(url, timeout=30, json={"messages": [{"role": "user", "content": "hi"}]}).json()["choices"][0]["message"]
    assert msg["content"] == tm.CONTENT_TEXT and msg["reasoning_content"] == tm.REASONING_TEXT
    tools = [{"type": "function", "function": {"name": tm.TOOL_NAME, "parameters": {"type": "object"}}}]
    ch = httpx.post(url, timeout=30, json={"messages": [{"role": "user", "content": "weather?"}],
                                           "tools": tools}).json()["choices"][0]
    assert ch["finish_reason"] == "tool_calls"
    assert ch["message"]["tool_calls"][0]["function"]["name"] == tm.TOOL_NAME
