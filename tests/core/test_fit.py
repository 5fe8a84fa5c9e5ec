"""The fit check against the facts the seeds and the vLLM recipe state."""
import pytest

from infra.catalogue import get_gpu, get_model
from infra.fit import GiB, check_fit, kv_bytes_per_seq

BIG, SMALL = get_model("openai/gpt-oss-120b"), get_model("openai/gpt-oss-20b")


def fit(model, gpu, ctx, seqs, fraction=0.90, tp=1, batched=8192, kv="auto"):
    return check_fit(model, get_gpu(gpu), tp=tp, max_model_len=ctx, max_num_seqs=seqs,
                     fraction=fraction, max_num_batched_tokens=batched, kv_dtype=kv)


def test_kv_counts_only_full_layers_past_the_window():
    # 120b: 18 full + 18 sliding layers, 8 KV heads x 64 dims x (K,V) x bf16 = 2 KiB per token-layer
    assert kv_bytes_per_seq(BIG, 128) == 36 * 128 * 2048
    assert kv_bytes_per_seq(BIG, 131072) == (18 * 131072 + 18 * 128) * 2048
    assert kv_bytes_per_seq(BIG, 131072, "fp8") * 2 == kv_bytes_per_seq(BIG, 131072)


@pytest.mark.parametrize("gpu", ["h100-80gb", "a100-80gb"])
def test_120b_fits_one_80gb_card(gpu):
    assert fit(BIG, gpu, 32768, 4).fits


def test_full_128k_times_many_seqs_does_not_fit_h100_tp1():
    r = fit(BIG, "h100-80gb", 131072, 64, fraction=0.95, batched=1024)
    assert not r.fits
    msg = r.message()
    assert "max_model_len 131072 x 64 seqs needs" in msg and "you have" in msg
    assert f"lower max_num_seqs to {r.max_seqs_at_len}" in msg
    # the suggested fixes really fit
    assert fit(BIG, "h100-80gb", 131072, r.max_seqs_at_len, fraction=0.95, batched=1024).fits
    assert fit(BIG, "h100-80gb", r.max_len_at_seqs, 64, fraction=0.95, batched=1024).fits
    assert 1 <= r.max_seqs_at_len <= 3
    # 288 GiB of KV needs 8 H100s (2 and 4 are too few), and that is what is suggested
    assert r.tp_that_fits == 8 and "use tensor_parallel 8" in msg
    assert fit(BIG, "h100-80gb", 131072, 64, fraction=0.95, batched=1024, tp=8).fits
    assert not fit(BIG, "h100-80gb", 131072, 64, fraction=0.95, batched=1024, tp=4).fits


def test_tp_suggestion_only_when_it_fits():
    r = fit(BIG, "h100-80gb", 131072, 8, fraction=0.9)
    assert not r.fits and r.tp_that_fits == 2 and "use tensor_parallel 2" in r.message()
    assert fit(BIG, "h100-80gb", 131072, 8, fraction=0.9, tp=2).fits
    r = fit(BIG, "l40s-48gb", 4096, 1)
    assert r.tp_that_fits == 2 and "use tensor_parallel 2" in r.message()


@pytest.mark.parametrize("gpu", ["l40s-48gb", "rtx4090-24gb"])
def test_120b_on_48_and_24_gb_is_impossible(gpu):
    r = fit(BIG, gpu, 4096, 1)
    assert not r.fits and not r.weights_fit
    assert "weights alone" in r.message()


def test_20b_on_24gb_needs_16_to_32k_context():
    # The seeds' RTX 4090 guidance: 16-32K context. For 8-16 concurrent sequences the longest context
    # that fits lands there; full 128k at that concurrency does not fit.
    assert fit(SMALL, "rtx4090-24gb", 32768, 8).fits
    for seqs in (8, 16):
        r = fit(SMALL, "rtx4090-24gb", 131072, seqs)
        assert not r.fits
        assert 16384 <= r.max_len_at_seqs <= 40960, (seqs, r.max_len_at_seqs)
    assert fit(SMALL, "rtx4090-24gb", 16384, 16).fits


def test_20b_fits_l40s_at_128k():
    assert fit(SMALL, "l40s-48gb", 131072, 4).fits


def test_free_memory_basis_is_used_when_given():
    full = fit(BIG, "h200-141gb", 131072, 8)
    partial = check_fit(BIG, get_gpu("h200-141gb"), tp=1, max_model_len=131072, max_num_seqs=8, fraction=0.9,
                        free_bytes_per_gpu=70 * GiB)
    assert full.fits and not partial.fits and partial.basis == "free memory"
