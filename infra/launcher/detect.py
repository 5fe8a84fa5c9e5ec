"""GPU detection: an NVML snapshot -> the catalogue GPU, how many, and the memory really free.

Rules (the gpt-oss-vllm RunPod README and the gpt-oss-sglang image README auto-detection; NVIDIA MIG user guide):
- CUDA_VISIBLE_DEVICES (indices, GPU-/MIG- UUIDs) narrows what NVML lists, as it does for the engine.
- A GPU with MIG on contributes its MIG instances, not itself; a CUDA process can use only one MIG
  instance, so MIG means one GPU (TP 1) sized by that instance's memory.
- All GPUs must be the same model (the engines shard evenly); mixed hosts are refused.
- The name must match the catalogue (infra/catalogue/gpus.yaml nvml_patterns); no second table here.
"""
from __future__ import annotations

from dataclasses import dataclass

from infra.catalogue import GPU, UnsupportedGPU, generic_gpu, gpus, match_gpu_name
from infra.launcher.errors import LaunchError
from infra.launcher.nvml import Snapshot

GiB = 2**30


@dataclass(frozen=True)
class Slot:
    """One GPU the engine will see: a whole device or one MIG instance."""

    device_index: int
    mig_index: int | None
    name: str  # NVML name (MIG instances: '<GPU> MIG 3g.40gb')
    parent_name: str
    uuid: str
    memory_total: int
    memory_free: int
    memory_used: int
    compute_capability: tuple[int, int] | None


@dataclass(frozen=True)
class Detection:
    gpu: GPU
    slots: tuple[Slot, ...]
    mig: bool
    driver: str
    source: str
    notes: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.slots)

    @property
    def free_bytes_per_gpu(self) -> int:
        return min(s.memory_free for s in self.slots)

    @property
    def total_bytes_per_gpu(self) -> int:
        return min(s.memory_total for s in self.slots)

    def describe(self) -> str:
        s = self.slots[0]
        cc = f"{s.compute_capability[0]}.{s.compute_capability[1]}" if s.compute_capability else "?"
        kind = f"{s.name} (MIG instance of {s.parent_name})" if self.mig else s.name
        return (f"{self.count} x {kind} -> catalogue {self.gpu.id} ({self.gpu.arch}, cc {cc}); "
                f"{s.memory_total / GiB:.1f} GiB total, {self.free_bytes_per_gpu / GiB:.1f} GiB free per GPU"
                + (f"; driver {self.driver}" if self.driver else ""))


def _visible_filter(visible: str | None):
    if visible is None:
        return None
    items = [v.strip() for v in visible.split(",") if v.strip()]
    if not items or items in (["-1"], ["none"], ["NoDevFiles"]):
        return []
    return items


def detect(snapshot: Snapshot, cuda_visible_devices: str | None = None) -> Detection:
    wanted = _visible_filter(cuda_visible_devices)
    slots: list[Slot] = []
    notes: list[str] = []
    for dev in snapshot.devices:
        if dev.mig_enabled:
            if not dev.mig_devices:
                raise LaunchError(
                    f"GPU {dev.index} ({dev.name}) has MIG mode on but no MIG instance exists: create one "
                    "(nvidia-smi mig -cgi 3g.40gb -C) or turn MIG off (nvidia-smi -i N -mig 0)")
            for m in dev.mig_devices:
                if wanted is not None and not {m.uuid, str(dev.index), dev.uuid} & set(wanted):
                    continue
                slots.append(Slot(dev.index, m.index, m.name, dev.name, m.uuid, m.memory_total,
                                  m.memory_free, m.memory_used, dev.compute_capability))
        else:
            if wanted is not None and str(dev.index) not in wanted and dev.uuid not in wanted:
                continue
            slots.append(Slot(dev.index, None, dev.name, dev.name, dev.uuid, dev.memory_total,
                              dev.memory_free, dev.memory_used, dev.compute_capability))
    if not slots:
        where = f" (CUDA_VISIBLE_DEVICES={cuda_visible_devices!r})" if wanted is not None else ""
        raise LaunchError(
            f"no usable NVIDIA GPU found{where}: run the container with --gpus all (Docker) or a "
            "nvidia.com/gpu limit (Kubernetes); to preview without a GPU use --dry-run --gpu-snapshot FILE")

    mig = any(s.mig_index is not None for s in slots)
    if mig:
        if len(slots) > 1:
            notes.append(f"{len(slots)} MIG instances visible; a CUDA process can use only one, so the engine "
                         f"gets {slots[0].uuid} (set CUDA_VISIBLE_DEVICES to choose)")
        slots = slots[:1]

    kinds = sorted({s.parent_name for s in slots})
    if len(kinds) > 1:
        raise LaunchError(
            f"mixed GPU models on this host ({', '.join(kinds)}): the engines split the model evenly, so "
            "expose one model only, e.g. CUDA_VISIBLE_DEVICES=<indices of one kind>")
    gpu = match_gpu_name(kinds[0])
    if gpu is None:
        # Not in gpus.yaml: plan it from what NVML says (compute capability -> arch preset, real memory);
        # the plan warns that it is generic. With MIG the memory is the slice's (what the engine gets).
        try:
            if slots[0].compute_capability is None:
                raise UnsupportedGPU(f"{kinds[0]} reports no compute capability through NVML")
            gpu = generic_gpu(kinds[0], slots[0].compute_capability, min(s.memory_total for s in slots))
        except UnsupportedGPU as exc:
            raise LaunchError(f"{exc}. Catalogued GPUs: {', '.join(sorted(gpus()))}") from None
    # Engines shard weights evenly; a busy card limits every shard, so the smallest free memory counts.
    free = [s.memory_free for s in slots]
    if max(free) - min(free) > 2 * GiB:
        notes.append(f"free memory differs across GPUs ({min(free) / GiB:.1f}..{max(free) / GiB:.1f} GiB); "
                     "the fit uses the smallest")
    return Detection(gpu=gpu, slots=tuple(slots), mig=mig, driver=snapshot.driver,
                     source=snapshot.source, notes=tuple(notes))
