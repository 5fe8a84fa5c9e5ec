"""Memory fit check: will this model, context and concurrency fit on these GPUs?

need  = weights + KV cache + runtime overhead
have  = VRAM x memory fraction x TP           (or memory actually free, from the launcher)

KV cache is sized for the worst case the engine admits: `max_num_seqs` sequences, each at
`max_model_len` tokens, so nothing is preempted or refused once admitted. gpt-oss alternates
sliding-window (128 tokens) and full-attention layers, so only the full layers grow with context:

  kv_bytes = seqs x (full_layers x ctx + sliding_layers x min(ctx, window)) x 2 (K,V) x kv_heads x head_dim x dtype_bytes

Runtime overhead per GPU = a fixed part (CUDA context, NCCL, CUDA graphs; constants.RUNTIME_OVERHEAD_FIXED_BYTES)
+ activations (max_num_batched_tokens x hidden x 2 bytes x constants.ACTIVATION_BUFFERS).
"""
from __future__ import annotations

from dataclasses import dataclass

from infra import constants as C
from infra.catalogue import GPU, Model

GiB = 2**30
KV_DTYPE_BYTES = {"auto": 2, "bf16": 2, "fp8": 1}


class FitError(ValueError):
    """The stack cannot fit; the message carries the numbers and concrete fixes."""

    def __init__(self, report: "FitReport"):
        self.report = report
        super().__init__(report.message())


def kv_bytes_per_seq(model: Model, context: int, kv_dtype: str = "auto") -> int:
    per_token_layer = 2 * model.num_key_value_heads * model.head_dim * KV_DTYPE_BYTES[kv_dtype]
    tokens = model.full_attention_layers * context + model.sliding_attention_layers * min(context, model.sliding_window)
    return tokens * per_token_layer


def overhead_bytes_per_gpu(model: Model, max_num_batched_tokens: int) -> int:
    return C.RUNTIME_OVERHEAD_FIXED_BYTES + max_num_batched_tokens * model.hidden_size * 2 * C.ACTIVATION_BUFFERS


@dataclass(frozen=True)
class FitReport:
    model: Model
    gpu_name: str
    tp: int
    max_model_len: int
    max_num_seqs: int
    fraction: float
    kv_dtype: str
    budget_bytes: int  # what the engine may use, all GPUs together
    weights_bytes: int
    overhead_bytes: int
    kv_bytes: int
    max_seqs_at_len: int  # how many full-length sequences fit
    max_len_at_seqs: int  # longest context that fits max_num_seqs sequences
    basis: str  # "catalogue VRAM" or "free memory"
    tp_that_fits: int | None = None  # smallest larger TP (<= 8) at which the same settings fit

    @property
    def need_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.overhead_bytes

    @property
    def fits(self) -> bool:
        return self.need_bytes <= self.budget_bytes

    @property
    def weights_fit(self) -> bool:
        return self.weights_bytes + self.overhead_bytes < self.budget_bytes

    def suggestions(self) -> list[str]:
        out = []
        if not self.weights_fit:
            more = f"tensor_parallel {self.tp_that_fits}" if self.tp_that_fits else "more GPUs"
            out.append(f"the weights alone ({self.weights_bytes / GiB:.1f} GiB) do not fit on {self.tp} x {self.gpu_name}: "
                       f"use {more} or a larger GPU")
            return out
        if self.max_len_at_seqs >= 1024:
            out.append(f"lower max_model_len to {self.max_len_at_seqs}")
        if self.max_seqs_at_len >= 1:
            out.append(f"lower max_num_seqs to {self.max_seqs_at_len}")
        if self.tp_that_fits:
            out.append(f"use tensor_parallel {self.tp_that_fits} (gpu_count {self.tp_that_fits})")
        if self.kv_dtype != "fp8":
            out.append("use kv_cache_dtype fp8 (Ada/Hopper/Blackwell/AMD) to halve the KV cache")
        return out

    def summary(self) -> str:
        return (f"{self.model.short_name} on {self.tp} x {self.gpu_name} ({self.basis}, fraction {self.fraction:.2f}): "
                f"weights {self.weights_bytes / GiB:.1f} GiB + KV {self.kv_bytes / GiB:.1f} GiB "
                f"(max_model_len {self.max_model_len} x {self.max_num_seqs} seqs, kv {self.kv_dtype}) "
                f"+ overhead {self.overhead_bytes / GiB:.1f} GiB = {self.need_bytes / GiB:.1f} GiB "
                f"of {self.budget_bytes / GiB:.1f} GiB")

    def message(self) -> str:
        verdict = "fits" if self.fits else "does not fit"
        text = f"{self.summary()}: {verdict}"
        if not self.fits:
            text += (f". max_model_len {self.max_model_len} x {self.max_num_seqs} seqs needs "
                     f"{self.need_bytes / GiB:.1f} GiB, you have {self.budget_bytes / GiB:.1f} GiB: "
                     + " or ".join(self.suggestions()))
        return text


def check_fit(
    model: Model,
    gpu: GPU,
    *,
    tp: int,
    max_model_len: int,
    max_num_seqs: int,
    fraction: float,
    kv_dtype: str = "auto",
    max_num_batched_tokens: int = 8192,
    free_bytes_per_gpu: int | None = None,
) -> FitReport:
    """Compute the fit. `free_bytes_per_gpu` (from NVML) replaces the catalogue VRAM when given."""
    per_gpu = gpu.vram_bytes
    # Engines take total x fraction and refuse to start when less than that is free, so with NVML's
    # free memory the budget is whichever is smaller.
    per_gpu_budget = int(per_gpu * fraction)
    if free_bytes_per_gpu is not None:
        per_gpu_budget = min(per_gpu_budget, free_bytes_per_gpu)
    budget = per_gpu_budget * tp
    overhead = overhead_bytes_per_gpu(model, max_num_batched_tokens) * tp
    weights = model.weights_bytes
    kv_room = max(budget - weights - overhead, 0)
    per_seq = kv_bytes_per_seq(model, max_model_len, kv_dtype)
    max_seqs = kv_room // per_seq if per_seq else 0
    # Longest context for the requested concurrency: solve the linear KV formula for ctx (ctx > window).
    per_tok_full = 2 * model.num_key_value_heads * model.head_dim * KV_DTYPE_BYTES[kv_dtype] * model.full_attention_layers
    sliding = kv_bytes_per_seq(model, model.sliding_window, kv_dtype) - per_tok_full * model.sliding_window
    room_per_seq = kv_room // max(max_num_seqs, 1) - sliding
    max_len = max(int(room_per_seq // per_tok_full), 0) if per_tok_full else 0
    max_len = min(max_len, model.max_position_embeddings)
    max_len -= max_len % 256  # engines allocate in blocks; keep suggestions round
    tp_that_fits = None
    if budget < weights + overhead + per_seq * max_num_seqs:
        for bigger in (2, 4, 8):
            if bigger <= tp or bigger > model.num_key_value_heads:
                continue
            b_budget = per_gpu_budget * bigger
            b_over = overhead_bytes_per_gpu(model, max_num_batched_tokens) * bigger
            if weights + b_over + per_seq * max_num_seqs <= b_budget:
                tp_that_fits = bigger
                break
    return FitReport(
        model=model, gpu_name=gpu.name, tp=tp, max_model_len=max_model_len, max_num_seqs=max_num_seqs,
        fraction=fraction, kv_dtype=kv_dtype, budget_bytes=budget, weights_bytes=weights,
        overhead_bytes=overhead, kv_bytes=per_seq * max_num_seqs, max_seqs_at_len=int(max_seqs),
        max_len_at_seqs=max_len, basis="catalogue VRAM" if free_bytes_per_gpu is None else "free memory",
        tp_that_fits=tp_that_fits,
    )
