"""Host driver vs the image's CUDA (images.yaml min_driver), on the real H200 capture with its driver replaced."""
from __future__ import annotations

import pytest
from launcher_support import clean_env, snap_dict

from infra.catalogue import base_image, get_gpu
from infra.launcher.errors import LaunchError
from infra.launcher.main import prepare
from infra.launcher.nvml import snapshot_from_dict


def with_driver(version: str):
    data = snap_dict("h200-1gpu.json")
    data["driver"] = version
    return snapshot_from_dict(data)


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_both_release_images_are_cuda_13_and_need_driver_580(backend):
    base = base_image(backend, get_gpu("h200-141gb"))
    assert (base["cuda"], base["min_driver"]) == ("13.0", 580)


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_old_driver_is_refused_with_the_fix(backend):
    with pytest.raises(LaunchError, match=r"driver 550\.127\.05 is older than 580.*CUDA 13\.0.*install driver 580") as info:
        prepare(clean_env(), backend, with_driver("550.127.05"), dry_run=True)
    assert str(info.value).count("\n") == 0


def test_new_enough_driver_passes_and_forward_compat_can_override():
    assert prepare(clean_env(), "vllm", with_driver("580.159.04"), dry_run=True).plan
    lc = prepare(clean_env(GPTOSS_ALLOW_OLD_DRIVER="1"), "vllm", with_driver("535.216.01"), dry_run=True)
    assert any("forward compatibility" in w for w in lc.warnings)
