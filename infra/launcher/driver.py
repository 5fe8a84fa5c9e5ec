"""Host driver vs the image's CUDA: a CUDA 13.0 image (the SGLang and vLLM release images) needs an NVIDIA
driver of branch 580 or newer. Too old a driver fails deep inside the engine ("CUDA driver version is
insufficient"), after minutes of loading; the launcher says it first, with the fix. The minimum per base
image is `min_driver` in infra/catalogue/images.yaml."""
from __future__ import annotations

from collections.abc import Mapping

from infra.catalogue import GPU, base_image
from infra.launcher.errors import LaunchError

OVERRIDE_ENV = "GPTOSS_ALLOW_OLD_DRIVER"


def check_driver(driver: str, backend: str, gpu: GPU, env: Mapping[str, str]) -> str | None:
    """None when the driver is new enough (or unknown: a warning is returned); raises LaunchError when too old."""
    base = base_image(backend, gpu)
    need = base.get("min_driver")
    if not need:
        return None
    try:
        major = int(driver.split(".", 1)[0])
    except ValueError:
        return f"NVIDIA driver version {driver[:40]!r} unreadable; this image (CUDA {base.get('cuda')}) needs {need} or newer"
    if major >= int(need):
        return None
    message = (f"NVIDIA driver {driver} is older than {need}, the oldest that runs this image's CUDA {base.get('cuda')} "
               f"({base['image']}:{base['tag']}); the engine would fail after loading. Fix: install driver {need} "
               f"or newer on the host (nvidia-smi shows the version)")
    if env.get(OVERRIDE_ENV) == "1":
        return message + f"; continuing because {OVERRIDE_ENV}=1 (CUDA forward compatibility on a data-centre GPU)"
    raise LaunchError(message + f", or set {OVERRIDE_ENV}=1 if the host uses CUDA forward compatibility")
