"""The NVML boundary: snapshot files (fixtures) and the live pynvml reader."""
from __future__ import annotations

import json

import pytest
from launcher_support import FIXTURES, SNAPSHOTS, snap_dict

from infra.catalogue import get_gpu, match_gpu_name
from infra.launcher.detect import detect
from infra.launcher.nvml import (
    NvmlUnavailable, load_snapshot, read_nvml, snapshot_from_dict, snapshot_to_json,
)

EXPECTED = {
    "a100-1gpu.json": ("a100-80gb", 1), "b200-1gpu.json": ("b200-180gb", 1), "h100-1gpu.json": ("h100-80gb", 1),
    "h100-2gpu.json": ("h100-80gb", 2), "h100-mig-2x3g40gb.json": ("h100-80gb", 1),
    "h200-1gpu.json": ("h200-141gb", 1), "l40s-1gpu.json": ("l40s-48gb", 1), "rtx4090-1gpu.json": ("rtx4090-24gb", 1),
}


def test_every_required_case_has_a_fixture():
    assert set(EXPECTED) == set(SNAPSHOTS)


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_fixture_says_where_it_comes_from_and_matches_the_catalogue(name):
    data = snap_dict(name)
    assert data["_source"]
    if name == "h200-1gpu.json":
        assert data["_source"].startswith("pynvml")  # the real capture
    else:
        assert "documented specs" in data["_source"]
    snap = load_snapshot(FIXTURES / name)
    gpu = match_gpu_name(snap.devices[0].name)
    assert gpu is not None and gpu.id == EXPECTED[name][0]
    for dev in snap.devices:
        assert dev.memory_used + dev.memory_free == dev.memory_total
        assert dev.compute_capability == tuple(gpu.compute_capability)
        if not dev.mig_enabled:
            # The catalogue's VRAM is what the driver reports; the fixtures agree with it (to the MiB that
            # nvidia-smi prints: the catalogue's B200 figure is 183358.8 MiB, reported to the lead).
            assert abs(dev.memory_total - gpu.vram_bytes) < 2**20


def test_real_h200_capture_is_what_the_catalogue_records():
    snap = load_snapshot(FIXTURES / "h200-1gpu.json")
    dev = snap.devices[0]
    assert (dev.name, dev.compute_capability, dev.mig_mode) == ("NVIDIA H200", (9, 0), (0, 0))
    assert dev.memory_total == get_gpu("h200-141gb").vram_bytes == 150754820096


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_snapshot_round_trips(name):
    snap = load_snapshot(FIXTURES / name)
    again = snapshot_from_dict(json.loads(json.dumps(snapshot_to_json(snap))))
    assert again == snap


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ('{"gpus": []}', "'devices' list"),
    ('{"devices": [{"index": 0}]}', "string 'name'"),
    ('{"devices": [{"index": 0, "name": "NVIDIA H200", "memory_total": "lots", "memory_free": 1, "memory_used": 1}]}',
     "memory_total"),
])
def test_bad_snapshot_files_fail_with_the_reason(tmp_path, content, message):
    p = tmp_path / "snap.json"
    p.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_snapshot(p)


def test_missing_snapshot_file(tmp_path):
    with pytest.raises(ValueError, match="file not found"):
        load_snapshot(tmp_path / "nope.json")


def _nvml_works() -> bool:
    try:
        read_nvml()
        return True
    except NvmlUnavailable:
        return False


@pytest.mark.skipif(_nvml_works(), reason="this machine has an NVIDIA driver")
def test_no_driver_is_one_clear_error():
    with pytest.raises(NvmlUnavailable, match="--gpus all.*--dry-run --gpu-snapshot"):
        read_nvml()


@pytest.mark.skipif(not _nvml_works(), reason="needs a real NVIDIA GPU (run on the lent H200: tests/launcher/device_h200.sh)")
def test_live_nvml_reads_a_catalogue_gpu():
    snap = read_nvml()
    det = detect(snap)
    assert det.gpu.vendor == "nvidia"
    for dev in snap.devices:
        assert 0 < dev.memory_free <= dev.memory_total
        assert dev.compute_capability == tuple(det.gpu.compute_capability)
    # Same format as the fixtures: what the device prints can be fed back with --gpu-snapshot.
    assert snapshot_from_dict(snapshot_to_json(snap)) == snap


@pytest.mark.skipif(not _nvml_works(), reason="needs a real NVIDIA GPU")
def test_live_memory_probe_sees_used_memory():
    from infra.launcher.nvml import MemoryProbe

    probe = MemoryProbe([0])
    used = probe.used_bytes()
    probe.close()
    assert used is not None and used > 0
