"""Run inside a vLLM venv (not collected by pytest): vLLM's own KV accounting for the cases on stdin.

For each case it builds the real layer specs (FullAttentionSpec, SlidingWindowSpec), groups them with
vLLM's hybrid grouping and asks vLLM's get_kv_cache_capacity for the logged "GPU KV cache size" and
"Maximum concurrency" at a given block count. VllmConfig itself needs a model on disk, so the config is a
namespace carrying the fields these functions read; the properties on it (max_concurrent_batches,
max_in_flight_tokens, num_prefill_lookahead_tokens) are vLLM's own code, called on that namespace.
"""
import json
import sys
from types import SimpleNamespace as NS

import torch
from vllm.config import VllmConfig
from vllm.config.speculative import SpeculativeConfig
from vllm.v1.core.kv_cache_utils import get_kv_cache_capacity
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, SlidingWindowSpec

try:  # 0.33 moved the grouping out of kv_cache_utils
    from vllm.v1.core.kv_cache_planning import _get_kv_cache_groups_uniform_page_size as grouping
except ImportError:
    from vllm.v1.core.kv_cache_utils import _get_kv_cache_groups_uniform_page_size as grouping


def speculative(c):
    if not c["method"]:
        return None
    s = NS(method=c["method"], num_speculative_tokens=c["num_spec"],
           draft_model_config=NS(hf_config=NS(num_nextn_predict_layers=c["mtp_layers"])))
    s.use_eagle = lambda: SpeculativeConfig.use_eagle(s)
    s.use_multi_module_mtp = lambda: SpeculativeConfig.use_multi_module_mtp(s)
    return s


def one(c):
    cfg = NS(parallel_config=NS(pipeline_parallel_size=1, decode_context_parallel_size=1,
                                prefill_context_parallel_size=1),
             scheduler_config=NS(async_scheduling=c["async"], max_num_batched_tokens=c["batched"]),
             model_config=NS(max_model_len=c["max_model_len"]), use_v2_model_runner=c["v2"],
             speculative_config=speculative(c), diffusion_config=None)
    cfg.max_concurrent_batches = VllmConfig.max_concurrent_batches.fget(cfg)
    cfg.max_in_flight_tokens = VllmConfig.max_in_flight_tokens.fget(cfg)
    cfg.num_speculative_tokens = VllmConfig.num_speculative_tokens.fget(cfg)
    # the one line of get_kv_cache_configs / get_global_kv_cache_groups that tags the window specs
    extra = max(0, VllmConfig.num_prefill_lookahead_tokens.fget(cfg) - 1)
    common = dict(block_size=c["block"], num_kv_heads=c["kv_heads"], head_size=c["head_dim"], dtype=torch.bfloat16)
    specs = {f"full.{n}": FullAttentionSpec(**common) for n in range(c["full"])}
    specs |= {f"sw.{n}": SlidingWindowSpec(**common, sliding_window=c["window"], extra_retained_tokens=extra)
              for n in range(c["sliding"])}
    groups = grouping(specs)
    tokens, concurrency = get_kv_cache_capacity(
        cfg, KVCacheConfig(num_blocks=c["num_blocks"], kv_cache_tensors=[], kv_cache_groups=groups))
    return {"batches": cfg.max_concurrent_batches, "extra": extra,
            "group": max(len(g.layer_names) for g in groups),
            "full_groups": sum(type(g.kv_cache_spec) is FullAttentionSpec for g in groups),
            "sw_groups": sum(type(g.kv_cache_spec) is SlidingWindowSpec for g in groups),
            "tokens": tokens, "concurrency": concurrency}


print(json.dumps([one(c) for c in json.load(sys.stdin)]))
