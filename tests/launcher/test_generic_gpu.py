"""`gpu: auto` on a GPU that infra/catalogue/gpus.yaml does not list: planned from NVML's compute capability and
memory with that architecture's preset and a warning, or refused with the reason when gpt-oss cannot run there.

The devices are the real H200 capture (tests/fixtures/nvml/h200-1gpu.json) with name, compute capability and
memory replaced by each card's published figures (nvidia-smi "FB Memory Usage Total", MiB).
"""
from __future__ import annotations

import copy

import pytest
import yaml
from launcher_support import clean_env, snap_dict

from infra.catalogue import generic_gpu, get_gpu, gpus
from infra.launcher.errors import LaunchError
from infra.launcher.main import prepare
from infra.launcher.nvml import snapshot_from_dict
from infra.spec import load_spec

MiB = 2**20
CARDS = {  # NVML name: (compute capability, memory MiB, arch the plan must use)
    "NVIDIA A10G": ((8, 6), 23028, "ampere"),
    "NVIDIA L4": ((8, 9), 23034, "ada"),
    "NVIDIA GeForce RTX 3090": ((8, 6), 24576, "ampere"),
    "NVIDIA RTX A6000": ((8, 6), 49140, "ampere"),
    "NVIDIA GeForce RTX 5090": ((12, 0), 32607, "blackwell-rtx"),
    "NVIDIA H100 NVL": ((9, 0), 95830, "hopper"),
    "NVIDIA GH200 480GB": ((9, 0), 97871, "hopper"),
}


def card(name: str, cc: tuple[int, int], mib: int, count: int = 1):
    data = snap_dict("h200-1gpu.json")
    dev = data["devices"][0]
    dev.update(name=name, compute_capability=list(cc), memory_total=mib * MiB,
               memory_free=mib * MiB - 600 * MiB, memory_used=600 * MiB, arch=cc[0])
    data["devices"] = [dict(copy.deepcopy(dev), index=i, uuid=f"GPU-{i:08d}") for i in range(count)]
    return snapshot_from_dict(data, where=f"{name} (from the H200 capture)")


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
@pytest.mark.parametrize("name", sorted(CARDS))
def test_uncatalogued_gpu_is_planned_from_its_compute_capability_and_memory(name, backend):
    cc, mib, arch = CARDS[name]
    # 64k context: SGLang's measured accounting leaves a 24 GB card under one 131,072-token sequence of 20b
    # (the fit check's refusal is tested in tests/core); this test is about how the card is identified.
    lc = prepare(clean_env(MODEL="openai/gpt-oss-20b", MAX_MODEL_LEN="65536"), backend, card(name, cc, mib), dry_run=True)
    gpu = lc.detection.gpu
    assert gpu.generic and gpu.arch == arch and gpu.vram_bytes == mib * MiB and gpu.compute_capability == cc
    assert lc.plan.gpu == gpu.id and get_gpu(gpu.id) is gpu
    warning = next(w for w in lc.warnings if "is not in the catalogue" in w)
    assert name in warning and "gpus.yaml" in warning
    # Profile rows (interactive/throughput) apply to every GPU; the arch rows are what the card decides.
    presets = [p for p in lc.plan.provenance.values()
               if p.startswith("preset ") and not p.startswith((f"preset {backend}-interactive", f"preset {backend}-throughput"))]
    if arch in ("ampere", "ada") or (backend == "vllm" and arch == "hopper"):
        assert f"{backend}-{arch}" in warning and any(f"preset {backend}-{arch} " in p for p in presets)
    else:  # no arch row for this backend and model (sm_120 everywhere, SGLang on Hopper): the plan says so
        assert "engine defaults only" in warning and not presets
    # The architecture's own rules follow: FlashAttention 3 (FLASH_ATTN) only on Hopper.
    if backend == "vllm":
        expected = {"ampere": "TRITON_ATTN", "ada": "TRITON_ATTN", "hopper": "FLASH_ATTN"}.get(arch)
        assert lc.plan.settings["attention_backend"] == (expected or "auto")


def test_120b_on_an_uncatalogued_card_is_judged_by_its_real_memory():
    # 95830 MiB (H100 NVL) holds gpt-oss-120b at TP1; a 24 GB card does not, and says so with numbers.
    lc = prepare(clean_env(), "vllm", card("NVIDIA H100 NVL", (9, 0), 95830), dry_run=True)
    assert lc.plan.model == "openai/gpt-oss-120b" and lc.plan.fit
    with pytest.raises(LaunchError, match="GiB"):
        prepare(clean_env(), "vllm", card("NVIDIA GeForce RTX 3090", (8, 6), 24576), dry_run=True)


def test_two_uncatalogued_gpus_give_tp_2_for_120b():
    lc = prepare(clean_env(), "vllm", card("NVIDIA RTX A6000", (8, 6), 49140, count=2), dry_run=True)
    assert lc.plan.tensor_parallel == 2 and lc.plan.gpu_count == 2


@pytest.mark.parametrize("name, cc, words", [
    ("Tesla T4", (7, 5), "older than Ampere"),
    ("Tesla V100-SXM2-32GB", (7, 0), "older than Ampere"),
    ("NVIDIA Future X", (11, 0), "architecture this catalogue does not know"),
])
def test_gpus_gpt_oss_cannot_run_on_are_refused_with_the_reason(name, cc, words):
    with pytest.raises(LaunchError, match=words) as info:
        prepare(clean_env(MODEL="openai/gpt-oss-20b"), "vllm", card(name, cc, 16384), dry_run=True)
    assert "h100-80gb" in str(info.value)  # names what is catalogued


def test_a_declared_gpu_still_must_match_the_host():
    stack = load_spec({"backend": "vllm", "gpu": "h100-80gb"}, stack="x").model_dump_json(exclude={"secrets_set"})
    with pytest.raises(LaunchError, match="declares NVIDIA H100 80GB but this host has NVIDIA H100 NVL"):
        prepare(clean_env(GPTOSS_STACK_SPEC=stack), "vllm", card("NVIDIA H100 NVL", (9, 0), 95830), dry_run=True)


def test_gpu_ids_come_from_the_catalogue_so_a_new_row_is_a_valid_stack_gpu(tmp_path, monkeypatch):
    """A row added to gpus.yaml is accepted by the spec at once (no second list in infra/spec.py)."""
    import infra.catalogue as cat

    doc = yaml.safe_load((cat.CATALOGUE_DIR / "gpus.yaml").read_text())
    doc["a10g-24gb"] = {**doc["a100-80gb"], "name": "NVIDIA A10G", "arch": "ampere", "compute_capability": [8, 6],
                        "vram_bytes": 23028 * MiB, "nvml_patterns": ["NVIDIA A10G"], "k8s_product": "NVIDIA-A10G",
                        "runpod_id": None, "source": "test row"}
    (tmp_path / "gpus.yaml").write_text(yaml.safe_dump(doc))
    real_load = cat._load
    monkeypatch.setattr(cat, "_load", lambda name: yaml.safe_load((tmp_path / name).read_text()) if name == "gpus.yaml" else real_load(name))
    cat.gpus.cache_clear()
    try:
        spec = load_spec({"backend": "vllm", "model": "openai/gpt-oss-20b", "gpu": "a10g-24gb"}, stack="a10g")
        assert spec.gpu_info.name == "NVIDIA A10G"
        with pytest.raises(ValueError, match="did you mean 'a10g-24gb'"):
            load_spec({"backend": "vllm", "gpu": "a10g-24g"}, stack="a10g")
    finally:
        monkeypatch.undo()
        cat.gpus.cache_clear()
    assert "a10g-24gb" not in gpus()


def test_generic_ids_describe_the_card():
    assert generic_gpu("NVIDIA L4", (8, 9), 23034 * MiB).id == "generic-sm89-22gb"
