"""GPU detection from NVML snapshots: catalogue match, count, MIG, CUDA_VISIBLE_DEVICES, refusals."""
from __future__ import annotations

import pytest
from launcher_support import snap_dict, snapshot

from infra.launcher.detect import detect
from infra.launcher.errors import LaunchError
from infra.launcher.nvml import snapshot_from_dict

GiB = 2**30


@pytest.mark.parametrize("name, gpu, count, mig", [
    ("a100-1gpu.json", "a100-80gb", 1, False),
    ("h100-1gpu.json", "h100-80gb", 1, False),
    ("h100-2gpu.json", "h100-80gb", 2, False),
    ("h200-1gpu.json", "h200-141gb", 1, False),
    ("l40s-1gpu.json", "l40s-48gb", 1, False),
    ("rtx4090-1gpu.json", "rtx4090-24gb", 1, False),
    ("b200-1gpu.json", "b200-180gb", 1, False),
    ("h100-mig-2x3g40gb.json", "h100-80gb", 1, True),
])
def test_fixture_detection(name, gpu, count, mig):
    det = detect(snapshot(name))
    assert (det.gpu.id, det.count, det.mig) == (gpu, count, mig)
    assert det.gpu.id in det.describe() and "GiB free" in det.describe()


def test_real_h200_free_memory_is_what_nvml_said():
    det = detect(snapshot("h200-1gpu.json"))
    assert det.free_bytes_per_gpu == 150109880320
    assert det.total_bytes_per_gpu == 150754820096


def test_mig_uses_the_instance_memory_and_one_instance():
    det = detect(snapshot("h100-mig-2x3g40gb.json"))
    assert det.slots[0].name == "NVIDIA H100 80GB HBM3 MIG 3g.40gb"
    assert det.total_bytes_per_gpu < 40 * GiB  # the slice, not the 80 GB card
    assert any("MIG instances visible" in n for n in det.notes)


def test_mig_instance_chosen_by_cuda_visible_devices():
    det = detect(snapshot("h100-mig-2x3g40gb.json"), "MIG-00000000-0000-0000-0000-000000000001")
    assert det.slots[0].uuid.endswith("0001") and not det.notes


def test_mig_on_without_instances_is_refused():
    data = snap_dict("h100-mig-2x3g40gb.json")
    data["devices"][0]["mig_devices"] = []
    with pytest.raises(LaunchError, match="MIG mode on but no MIG instance.*nvidia-smi mig"):
        detect(snapshot_from_dict(data))


@pytest.mark.parametrize("visible, count", [("0", 1), ("1", 1), ("0,1", 2), ("GPU-00000000-0000-0000-0000-000000000001", 1)])
def test_cuda_visible_devices_narrows_the_gpus(visible, count):
    det = detect(snapshot("h100-2gpu.json"), visible)
    assert det.count == count


@pytest.mark.parametrize("visible", ["", "-1", "7"])
def test_no_visible_gpu_is_one_clear_error(visible):
    with pytest.raises(LaunchError, match="no usable NVIDIA GPU.*--gpus all"):
        detect(snapshot("h100-2gpu.json"), visible)


def test_mixed_gpu_models_are_refused():
    a, h = snap_dict("a100-1gpu.json"), snap_dict("h100-1gpu.json")
    h["devices"][0]["index"] = 1
    mixed = snapshot_from_dict({**a, "devices": a["devices"] + h["devices"]})
    with pytest.raises(LaunchError, match="mixed GPU models.*A100.*H100.*CUDA_VISIBLE_DEVICES"):
        detect(mixed)
    assert detect(mixed, "1").gpu.id == "h100-80gb"


def test_unknown_gpu_becomes_a_generic_entry_of_its_architecture():
    data = snap_dict("l40s-1gpu.json")
    data["devices"][0]["name"] = "NVIDIA RTX 6000 Ada Generation"
    gpu = detect(snapshot_from_dict(data)).gpu
    assert gpu.generic and gpu.arch == "ada" and gpu.name == "NVIDIA RTX 6000 Ada Generation"
    data["devices"][0]["compute_capability"] = [7, 5]
    with pytest.raises(LaunchError, match="older than Ampere.*l40s-48gb"):
        detect(snapshot_from_dict(data))


def test_no_devices():
    with pytest.raises(LaunchError, match="no usable NVIDIA GPU"):
        detect(snapshot_from_dict({"devices": []}))


def test_uneven_free_memory_uses_the_smallest():
    data = snap_dict("h100-2gpu.json")
    data["devices"][1]["memory_free"] = 40 * GiB
    data["devices"][1]["memory_used"] = data["devices"][1]["memory_total"] - 40 * GiB
    det = detect(snapshot_from_dict(data))
    assert det.free_bytes_per_gpu == 40 * GiB
    assert any("the fit uses the smallest" in n for n in det.notes)
