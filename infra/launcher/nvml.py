"""The one boundary between the launcher and the GPU driver.

Everything the launcher knows about the GPUs comes through `Snapshot`, read either live with
pynvml (`read_nvml`) or from a JSON file in the same format (`load_snapshot`). Tests and
`--dry-run --gpu-snapshot FILE` feed files; the image reads the driver. Nothing else in the
launcher imports pynvml.

File format (what `snapshot_to_json` writes; tests/fixtures/nvml/h200-1gpu.json is a real capture):
    {"driver": str, "cuda_driver": int, "nvml": str, "_source": str,
     "devices": [{"index", "name", "uuid", "memory_total", "memory_free", "memory_used",
                  "compute_capability": [major, minor], "pci_bus_id", "power_limit_mw",
                  "max_sm_clock", "max_mem_clock", "arch", "mig_mode": [current, pending],
                  "mig_devices": [{"index", "name", "uuid", "memory_total", "memory_free",
                                   "memory_used"}]   # only where MIG is on
                 }]}
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


class NvmlUnavailable(RuntimeError):
    """No NVIDIA driver/NVML here (or it failed); the message says which and what to do."""


@dataclass(frozen=True)
class MigDevice:
    index: int
    name: str
    uuid: str
    memory_total: int
    memory_free: int
    memory_used: int


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    uuid: str
    memory_total: int
    memory_free: int
    memory_used: int
    compute_capability: tuple[int, int] | None = None
    pci_bus_id: str = ""
    power_limit_mw: int | None = None
    max_sm_clock: int | None = None
    max_mem_clock: int | None = None
    arch: int | None = None
    mig_mode: tuple[int, int] = (0, 0)
    mig_devices: tuple[MigDevice, ...] = ()

    @property
    def mig_enabled(self) -> bool:
        return bool(self.mig_mode and self.mig_mode[0])


@dataclass(frozen=True)
class Snapshot:
    devices: tuple[Device, ...]
    driver: str = ""
    cuda_driver: int | None = None
    nvml: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


# ----------------------------------------------------------------------------- file format

def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _int(d: dict, key: str, where: str) -> int:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{where}: field {key!r} must be an integer, got {_shown(value)}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{where}: field {key!r} must be an integer, got {_shown(value)}") from None


def _opt_int(d: dict, key: str, where: str) -> int | None:
    return None if d.get(key) is None else _int(d, key, where)


def _pair(d: dict, key: str, where: str) -> tuple[int, int] | None:
    value = d.get(key)
    if value is None:
        return None
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(type(v) is int for v in value)):
        raise ValueError(f"{where}: field {key!r} must be a list of two integers such as [9, 0], got {_shown(value)}")
    return int(value[0]), int(value[1])


def _opt_str(d: dict, key: str, where: str, default: str | None = "") -> str | None:
    value = d.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}: field {key!r} must be a string, got {_shown(value)}")
    return value


def snapshot_from_dict(data: dict[str, Any], where: str = "snapshot") -> Snapshot:
    """A snapshot from its JSON form; a ValueError naming the file and the field for anything malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
        raise ValueError(f"{where}: expected an object with a 'devices' list (see infra/launcher/nvml.py)")
    devices = []
    for i, row in enumerate(data["devices"]):
        w = f"{where}: devices[{i}]"
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise ValueError(f"{w}: needs a string 'name'")
        mig_rows = row.get("mig_devices") or []
        if not isinstance(mig_rows, list) or not all(isinstance(m, dict) for m in mig_rows):
            raise ValueError(f"{w}: field 'mig_devices' must be a list of objects, got {_shown(mig_rows)}")
        migs = tuple(
            MigDevice(
                index=_int(m, "index", f"{w}.mig_devices[{j}]"),
                name=_opt_str(m, "name", f"{w}.mig_devices[{j}]"),
                uuid=_opt_str(m, "uuid", f"{w}.mig_devices[{j}]"),
                memory_total=_int(m, "memory_total", f"{w}.mig_devices[{j}]"),
                memory_free=_int(m, "memory_free", f"{w}.mig_devices[{j}]"),
                memory_used=_int(m, "memory_used", f"{w}.mig_devices[{j}]"),
            )
            for j, m in enumerate(mig_rows)
        )
        devices.append(
            Device(
                index=_int(row, "index", w),
                name=row["name"],
                uuid=_opt_str(row, "uuid", w),
                memory_total=_int(row, "memory_total", w),
                memory_free=_int(row, "memory_free", w),
                memory_used=_int(row, "memory_used", w),
                compute_capability=_pair(row, "compute_capability", w),
                pci_bus_id=_opt_str(row, "pci_bus_id", w),
                power_limit_mw=_opt_int(row, "power_limit_mw", w),
                max_sm_clock=_opt_int(row, "max_sm_clock", w),
                max_mem_clock=_opt_int(row, "max_mem_clock", w),
                arch=_opt_int(row, "arch", w),
                mig_mode=_pair(row, "mig_mode", w) or (0, 0),
                mig_devices=migs,
            )
        )
    for key in ("driver", "nvml", "_source"):
        _opt_str(data, key, where)
    if data.get("cuda_driver") is not None:
        _int(data, "cuda_driver", where)
    return Snapshot(
        devices=tuple(devices),
        driver=str(data.get("driver", "")),
        cuda_driver=data.get("cuda_driver"),
        nvml=str(data.get("nvml", "")),
        source=str(data.get("_source", "")),
    )


def load_snapshot(path: str | os.PathLike) -> Snapshot:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--gpu-snapshot {p}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--gpu-snapshot {p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return snapshot_from_dict(data, where=str(p))


def snapshot_to_json(snap: Snapshot) -> dict[str, Any]:
    def dev(d: Device) -> dict[str, Any]:
        out = {
            "index": d.index, "name": d.name, "uuid": d.uuid,
            "memory_total": d.memory_total, "memory_free": d.memory_free, "memory_used": d.memory_used,
            "compute_capability": list(d.compute_capability) if d.compute_capability else None,
            "pci_bus_id": d.pci_bus_id, "power_limit_mw": d.power_limit_mw,
            "max_sm_clock": d.max_sm_clock, "max_mem_clock": d.max_mem_clock,
            "arch": d.arch, "mig_mode": list(d.mig_mode),
        }
        if d.mig_devices:
            out["mig_devices"] = [m.__dict__.copy() for m in d.mig_devices]
        return out

    return {
        "driver": snap.driver, "cuda_driver": snap.cuda_driver, "nvml": snap.nvml,
        "devices": [dev(d) for d in snap.devices], "_source": snap.source,
    }


# ----------------------------------------------------------------------------- live driver

def _pynvml():
    try:
        import pynvml  # nvidia-ml-py; shipped in the vLLM and SGLang images
    except ImportError:
        raise NvmlUnavailable(
            "pynvml is not installed (pip package nvidia-ml-py); the engine images ship it. "
            "Without a GPU use --dry-run --gpu-snapshot FILE"
        ) from None
    return pynvml


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _opt(fn: Callable[[], Any]) -> Any:
    """Fields some GPUs/drivers do not report (power limit on some SKUs, MIG on consumer cards)."""
    try:
        return fn()
    except Exception:  # NVMLError_NotSupported and friends
        return None


def read_nvml(source: str = "pynvml (live)") -> Snapshot:
    """Read every GPU NVML can see. Raises NvmlUnavailable with a one-line reason."""
    nv = _pynvml()
    try:
        nv.nvmlInit()
    except nv.NVMLError as exc:
        raise NvmlUnavailable(
            f"NVML could not start ({exc}): no NVIDIA driver visible in this container. "
            "Run with --gpus all (Docker) or request nvidia.com/gpu (Kubernetes); "
            "without a GPU use --dry-run --gpu-snapshot FILE"
        ) from None
    try:
        devices = []
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            mig = _opt(lambda: tuple(nv.nvmlDeviceGetMigMode(h))) or (0, 0)
            migs: list[MigDevice] = []
            if mig[0]:
                for j in range(_opt(lambda: nv.nvmlDeviceGetMaxMigDeviceCount(h)) or 0):
                    mh = _opt(lambda: nv.nvmlDeviceGetMigDeviceHandleByIndex(h, j))
                    if mh is None:
                        continue
                    mm = nv.nvmlDeviceGetMemoryInfo(mh)
                    migs.append(MigDevice(j, _str(nv.nvmlDeviceGetName(mh)), _str(nv.nvmlDeviceGetUUID(mh)),
                                          int(mm.total), int(mm.free), int(mm.used)))
            cc = _opt(lambda: nv.nvmlDeviceGetCudaComputeCapability(h))
            devices.append(Device(
                index=i,
                name=_str(nv.nvmlDeviceGetName(h)),
                uuid=_str(nv.nvmlDeviceGetUUID(h)),
                memory_total=int(mem.total), memory_free=int(mem.free), memory_used=int(mem.used),
                compute_capability=(int(cc[0]), int(cc[1])) if cc else None,
                pci_bus_id=_str(_opt(lambda: nv.nvmlDeviceGetPciInfo(h).busId) or ""),
                power_limit_mw=_opt(lambda: int(nv.nvmlDeviceGetPowerManagementLimit(h))),
                max_sm_clock=_opt(lambda: int(nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM))),
                max_mem_clock=_opt(lambda: int(nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM))),
                arch=_opt(lambda: int(nv.nvmlDeviceGetArchitecture(h))),
                mig_mode=(int(mig[0]), int(mig[1])),
                mig_devices=tuple(migs),
            ))
        return Snapshot(
            devices=tuple(devices),
            driver=_str(_opt(nv.nvmlSystemGetDriverVersion) or ""),
            cuda_driver=_opt(nv.nvmlSystemGetCudaDriverVersion),
            nvml=_str(_opt(nv.nvmlSystemGetNVMLVersion) or ""),
            source=source,
        )
    finally:
        _opt(nv.nvmlShutdown)


class MemoryProbe:
    """Memory in use on the launch GPUs, polled by the progress display (a real NVML signal).

    Opened once; `used_bytes()` sums nvmlDeviceGetMemoryInfo().used over the chosen devices
    (MIG instances where MIG is on). Returns None when NVML is not there (dry runs, tests).
    """

    def __init__(self, indices: list[int], mig: list[tuple[int, int]] | None = None):
        self._nv = None
        self._handles: list[Any] = []
        try:
            nv = _pynvml()
            nv.nvmlInit()
        except Exception:
            return
        self._nv = nv
        for i in indices:
            h = _opt(lambda: nv.nvmlDeviceGetHandleByIndex(i))
            if h is not None:
                self._handles.append(h)
        for parent, j in mig or ():
            ph = _opt(lambda: nv.nvmlDeviceGetHandleByIndex(parent))
            mh = _opt(lambda: nv.nvmlDeviceGetMigDeviceHandleByIndex(ph, j)) if ph is not None else None
            if mh is not None:
                self._handles.append(mh)

    def used_bytes(self) -> int | None:
        if not self._nv or not self._handles:
            return None
        total = 0
        for h in self._handles:
            info = _opt(lambda: self._nv.nvmlDeviceGetMemoryInfo(h))
            if info is None:
                return None
            total += int(info.used)
        return total

    def close(self) -> None:
        if self._nv:
            _opt(self._nv.nvmlShutdown)
            self._nv = None
