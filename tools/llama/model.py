"""Write a tiny gpt-oss-architecture GGUF that deterministically speaks harmony.

Usage: ``python -m tools.llama.model [--out PATH] [--template PATH]``

Random weights make llama-server answer HTTP 500 (the output does not parse as harmony),
so the weights here are set by hand. The model is a real ``gpt-oss`` graph in llama.cpp
(RMSNorm, Q/K/V with biases, RoPE, attention sinks, alternating sliding-window layers,
a softmax-weighted MoE with SwiGLU-OAI experts, output head); its weights implement:

* a token "bigram" path: the embedding of the current token selects the next token
  through the output head, walking a fixed harmony answer
  ``<|channel|>analysis<|message|>REASONING<|end|><|start|>assistant<|channel|>final<|message|>CONTENT<|return|>``;
* two attention heads in the full-attention layer that raise flags when the prompt
  contains the tool namespace (tools offered) or a tool result. At ``<|end|>`` the
  output head then chooses the tool-call header
  ``<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}<|call|>``
  when tools are offered and no tool result has been seen, else the final answer.

The query of each flag head is a constant (bias only) placed on the lowest-frequency RoPE
pair, so the score does not depend on distance; the attention sink absorbs the weight when
the marker token is absent.

The tokenizer is a byte-level BPE trained with ``tokenizers`` on a small harmony corpus, with
the harmony special tokens (CONTROL) and the multi-character protocol pieces above added as
USER_DEFINED tokens (llama.cpp matches those before BPE, longest first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from infra.endpoint.harmony import SPECIAL_TOKENS as HARMONY_SPECIAL_TOKENS

MODEL_VERSION = "3"
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = {"city": "Paris"}
REASONING_TEXT = "The user wants an answer. I will reply briefly."
CONTENT_TEXT = "Hello from the tiny gpt-oss test model."

# The harmony special tokens the leak check looks for are the ones the test model is built with.
SPECIAL_TOKENS = list(HARMONY_SPECIAL_TOKENS)

# The fixed answer, one state per token; the last element of a tuple is the next state.
START = "<|start|>assistant"
H_ANALYSIS = "<|channel|>analysis<|message|>"
R1, R2 = "The user wants an answer.", " I will reply briefly."
END = "<|end|>"
H_FINAL = "<|start|>assistant<|channel|>final<|message|>"
C1, C2, C3 = "Hello", " from the tiny", " gpt-oss test model."
RETURN = "<|return|>"
H_TOOL = f"<|start|>assistant to=functions.{TOOL_NAME}<|channel|>commentary json<|message|>"
A1 = json.dumps(TOOL_ARGUMENTS)
CALL = "<|call|>"
TOOLS_MARK = "namespace functions {"  # rendered by the template when tools are offered
RESULT_MARK = " to=assistant<|channel|>commentary<|message|>"  # rendered for a tool result

USER_DEFINED = [START, H_ANALYSIS, R1, R2, H_FINAL, C1, C2, C3, H_TOOL, A1, TOOLS_MARK, RESULT_MARK]
CHAIN = {
    START: H_ANALYSIS, H_ANALYSIS: R1, R1: R2, R2: END,
    H_FINAL: C1, C1: C2, C2: C3, C3: RETURN,
    H_TOOL: A1, A1: CALL,
}
assert REASONING_TEXT == R1 + R2 and CONTENT_TEXT == C1 + C2 + C3

N_EMBD = 64
N_HEAD = 2
HEAD_DIM = 32
N_LAYER = 2  # layer 0 sliding-window (left neutral), layer 1 full attention (flags)
N_EXPERT = 4
N_EXPERT_USED = 2
N_FF_EXP = 16
N_CTX_TRAIN = 8192
ROPE_BASE = 1.0e6

CORPUS_SEED = [
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.",
    "Knowledge cutoff: 2024-06 Current date: 2026-01-01 Reasoning: medium",
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.",
    "Calls to these tools must go to the commentary channel: 'functions'.",
    "<|start|>developer<|message|># Instructions # Tools ## functions namespace functions {",
    "// Get the current weather for a city. type get_weather = (_: { city: string, unit?: \"celsius\" | \"fahrenheit\", }) => any;",
    "} // namespace functions <|end|><|start|>user<|message|>What is the weather in Paris? Say hello. Reply with one word.",
    "<|start|>assistant<|channel|>final<|message|>Hello there, the weather is sunny and mild today.",
    "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{\"temperature\": 21, \"sky\": \"clear\"}",
    "The quick brown fox jumps over the lazy dog. 0123456789 {}[]():;,.!?\"'`~@#$%^&*-_=+<>/\\|",
    "Please answer the question, think step by step, and keep the answer short and helpful.",
]


def _cache_root() -> Path:
    root = os.environ.get("GPTOSS_STACKS_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "gptoss-stacks"


def train_tokenizer(vocab_size: int = 600):
    """Byte-level BPE trained with ``tokenizers``; returns (tokens, token_types, merges)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS_SEED * 20, trainer=trainer)
    data = json.loads(tok.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    types = [3 if t in SPECIAL_TOKENS else 1 for t in tokens]  # 3 CONTROL, 1 NORMAL
    for piece in USER_DEFINED:
        tokens.append(piece)
        types.append(4)  # USER_DEFINED: matched verbatim, rendered verbatim
    return tokens, types, merges


def build_weights(tokens: list[str]) -> dict[str, np.ndarray]:
    """Hand-set weights (numpy arrays in [out, in] order, as GGUFWriter expects)."""
    ids = {t: i for i, t in enumerate(tokens)}
    n_vocab = len(tokens)
    state_tokens = sorted(set(CHAIN) | set(CHAIN.values()) | {END}, key=lambda t: ids[t])
    dim = {t: i for i, t in enumerate(state_tokens)}
    d_other = len(state_tokens)
    d_tools, d_result = d_other + 1, d_other + 2  # flag dims written by the flag heads
    d_mark = {TOOLS_MARK: d_other + 3, RESULT_MARK: d_other + 4}
    assert d_other + 5 <= N_EMBD

    f32 = np.float32
    embd = np.zeros((n_vocab, N_EMBD), f32)
    for t, i in ids.items():
        embd[i, dim.get(t, d_mark.get(t, d_other))] = 1.0

    out = np.zeros((n_vocab, N_EMBD), f32)
    for cur, nxt in CHAIN.items():
        out[ids[nxt], dim[cur]] = 100.0
    out[ids[RETURN], d_other] = 100.0  # anything unexpected: stop
    out[ids[RETURN], dim[RETURN]] = 100.0
    out[ids[RETURN], dim[CALL]] = 100.0
    # the branch at <|end|>: final answer, or a tool call when tools are offered
    # (tools flag) and no tool result was seen yet (result flag)
    out[ids[H_FINAL], dim[END]] = 50.0
    out[ids[H_TOOL], dim[END]] = 45.0
    out[ids[H_TOOL], d_tools] = 10.0
    out[ids[H_TOOL], d_result] = -20.0

    qd, kd = N_HEAD * HEAD_DIM, N_HEAD * HEAD_DIM
    sqrt_e = float(np.sqrt(N_EMBD))  # attn_norm turns a unit one-hot into sqrt(E)
    w: dict[str, np.ndarray] = {
        "token_embd.weight": embd,
        "output_norm.weight": np.ones(N_EMBD, f32),
        "output.weight": out,
    }
    for il in range(N_LAYER):
        p = f"blk.{il}."
        wq = np.zeros((qd, N_EMBD), f32); bq = np.zeros(qd, f32)
        wk = np.zeros((kd, N_EMBD), f32); bk = np.zeros(kd, f32)
        wv = np.zeros((kd, N_EMBD), f32); bv = np.zeros(kd, f32)
        wo = np.zeros((N_EMBD, qd), f32)
        sinks = np.zeros(N_HEAD, f32)
        if il == N_LAYER - 1:
            low = HEAD_DIM // 2 - 1  # NEOX pair (low, low + HEAD_DIM/2) has the lowest frequency
            target_score, sink = 30.0, 15.0
            for h, (mark, flag) in enumerate([(TOOLS_MARK, d_tools), (RESULT_MARK, d_result)]):
                bq[h * HEAD_DIM + low] = 1.0
                wk[h * HEAD_DIM + low, d_mark[mark]] = target_score * np.sqrt(HEAD_DIM) / sqrt_e
                wv[h * HEAD_DIM, d_mark[mark]] = 1.0 / sqrt_e
                wo[flag, h * HEAD_DIM] = 1.0
                sinks[h] = sink
        w.update({
            p + "attn_norm.weight": np.ones(N_EMBD, f32),
            p + "post_attention_norm.weight": np.ones(N_EMBD, f32),
            p + "attn_q.weight": wq, p + "attn_q.bias": bq,
            p + "attn_k.weight": wk, p + "attn_k.bias": bk,
            p + "attn_v.weight": wv, p + "attn_v.bias": bv,
            p + "attn_output.weight": wo, p + "attn_output.bias": np.zeros(N_EMBD, f32),
            p + "attn_sinks.weight": sinks,
            # MoE left neutral: zero experts contribute exactly zero
            p + "ffn_gate_inp.weight": np.zeros((N_EXPERT, N_EMBD), f32),
            p + "ffn_gate_inp.bias": np.zeros(N_EXPERT, f32),
            p + "ffn_gate_exps.weight": np.zeros((N_EXPERT, N_FF_EXP, N_EMBD), f32),
            p + "ffn_gate_exps.bias": np.zeros((N_EXPERT, N_FF_EXP), f32),
            p + "ffn_up_exps.weight": np.zeros((N_EXPERT, N_FF_EXP, N_EMBD), f32),
            p + "ffn_up_exps.bias": np.zeros((N_EXPERT, N_FF_EXP), f32),
            p + "ffn_down_exps.weight": np.zeros((N_EXPERT, N_EMBD, N_FF_EXP), f32),
            p + "ffn_down_exps.bias": np.zeros((N_EXPERT, N_EMBD), f32),
        })
    return w


def write_tiny_model(path: Path, chat_template: str | None = None) -> Path:
    import gguf

    tokens, types, merges = train_tokenizer()
    weights = build_weights(tokens)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    wr = gguf.GGUFWriter(str(tmp), "gpt-oss")
    wr.add_name("gptoss-stacks tiny harmony test model")
    wr.add_context_length(N_CTX_TRAIN)
    wr.add_embedding_length(N_EMBD)
    wr.add_block_count(N_LAYER)
    wr.add_feed_forward_length(N_FF_EXP)
    wr.add_expert_feed_forward_length(N_FF_EXP)
    wr.add_head_count(N_HEAD)
    wr.add_head_count_kv(N_HEAD)
    wr.add_key_length(HEAD_DIM)
    wr.add_value_length(HEAD_DIM)
    wr.add_rope_dimension_count(HEAD_DIM)
    wr.add_rope_freq_base(ROPE_BASE)
    wr.add_layer_norm_rms_eps(1e-5)
    wr.add_sliding_window(128)
    wr.add_expert_count(N_EXPERT)
    wr.add_expert_used_count(N_EXPERT_USED)
    wr.add_file_type(gguf.LlamaFileType.ALL_F32)
    wr.add_tokenizer_model("gpt2")
    wr.add_tokenizer_pre("gpt-4o")
    wr.add_token_list(tokens)
    wr.add_token_types(types)
    wr.add_token_merges(merges)
    wr.add_bos_token_id(tokens.index("<|startoftext|>"))
    wr.add_eos_token_id(tokens.index(RETURN))
    wr.add_pad_token_id(tokens.index("<|endoftext|>"))
    wr.add_add_bos_token(False)
    if chat_template:
        wr.add_chat_template(chat_template)
    for name, arr in weights.items():
        wr.add_tensor(name, np.ascontiguousarray(arr))
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    os.replace(tmp, path)
    return path


def ensure_tiny_model(chat_template_file: Path | None = None, out: Path | None = None) -> Path:
    """Return a cached tiny model path, writing it when missing or stale."""
    template = Path(chat_template_file).read_text() if chat_template_file else None
    src = Path(__file__).read_bytes() + (template or "").encode()
    key = hashlib.sha256(src).hexdigest()[:12]
    path = out or (_cache_root() / "models" / f"tiny-gpt-oss-v{MODEL_VERSION}-{key}.gguf")
    if not path.exists():
        write_tiny_model(path, template)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="write the tiny deterministic gpt-oss GGUF")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--template", type=Path, help="chat template to embed (the gpt-oss jinja)")
    args = ap.parse_args(argv)
    print(ensure_tiny_model(args.template, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
