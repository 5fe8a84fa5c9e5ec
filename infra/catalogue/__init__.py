"""Typed access to the GPU, model and preset catalogue (the YAML files beside this module).

The YAML is the single source of truth: a GPU's VRAM, a preset's flags and a model's layer count
are read from there and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from infra.constants import CATALOGUE_DIR


@dataclass(frozen=True)
class GPU:
    id: str
    name: str
    vendor: str  # nvidia | amd
    arch: str  # ampere | ada | hopper | blackwell | cdna3 | cdna4
    vram_bytes: int
    nvml_patterns: tuple[str, ...]
    k8s_product: str
    runpod_id: str | None
    max_per_node: int
    source: str
    compute_capability: tuple[int, int] | None = None
    gfx: str | None = None
    supported_models: tuple[str, ...] | None = None  # None: every model the fit check allows
    generic: bool = False  # synthesized by generic_gpu() for a GPU gpus.yaml does not list
    torch_visible_bytes: int | None = None  # measured; None: vram_bytes less the driver's reservation

    @property
    def torch_bytes(self) -> int:
        """Memory torch (and so the engine) sees as the card's total."""
        if self.torch_visible_bytes is not None:
            return self.torch_visible_bytes
        return self.vram_bytes - int(engine_memory()["driver_reserved_gib"] * 2**30)

    @property
    def weights_kernel(self) -> str:
        """Which MXFP4 MoE kernel path the engines take on this GPU (sets the loaded-weights figure)."""
        if self.vendor == "amd":
            return "rocm-mxfp4"
        return {"hopper": "triton-mxfp4", "blackwell": "flashinfer-mxfp4"}.get(self.arch, "marlin-mxfp4")

    def supports(self, model_id: str) -> bool:
        return self.supported_models is None or model_id in self.supported_models

    @property
    def vram_gib(self) -> float:
        return self.vram_bytes / 2**30

    @property
    def k8s_resource(self) -> str:
        return "nvidia.com/gpu" if self.vendor == "nvidia" else "amd.com/gpu"

    @property
    def k8s_product_label(self) -> str:
        return "nvidia.com/gpu.product" if self.vendor == "nvidia" else "amd.com/gpu.product-name"


@dataclass(frozen=True)
class Model:
    id: str
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    hidden_size: int
    sliding_window: int
    layer_pattern: tuple[str, ...]
    max_position_embeddings: int
    num_local_experts: int
    experts_per_token: int
    vocab_size: int
    total_params_b: float
    active_params_b: float
    weights_bytes: int
    weights_source: str
    config_source: str
    eagle3_draft: str | None = None
    loaded_weights: tuple[Mapping[str, Any], ...] = ()
    auto_tensor_parallel: int | str = 1  # what `tensor_parallel: auto` means: a size, or ALL_GPUS

    @property
    def tp_uses_all_gpus(self) -> bool:
        return self.auto_tensor_parallel == ALL_GPUS

    def auto_tp(self, gpu_count: int) -> int:
        """`tensor_parallel: auto` on gpu_count GPUs (the image READMEs: 120b spans them all, 20b uses one)."""
        return gpu_count if self.tp_uses_all_gpus else int(self.auto_tensor_parallel)

    def loaded_weights_bytes(self, backend: str, kernel: str) -> tuple[int, str]:
        """Weights as `backend` holds them on `kernel`'s path, and where the figure comes from."""
        for row in self.loaded_weights:
            if (row["backend"], row["kernel"]) == (backend, kernel):
                return int(row["gib"] * 2**30), row.get("measured") or f"estimate: {row['estimate']}"
        return self.weights_bytes, f"checkpoint size ({self.weights_source})"

    @property
    def layer_types(self) -> tuple[str, ...]:
        pat = self.layer_pattern
        return tuple(pat[i % len(pat)] for i in range(self.num_hidden_layers))

    @property
    def full_attention_layers(self) -> int:
        return sum(1 for t in self.layer_types if t == "full_attention")

    @property
    def sliding_attention_layers(self) -> int:
        return sum(1 for t in self.layer_types if t == "sliding_attention")

    @property
    def short_name(self) -> str:
        return self.id.split("/", 1)[1]


@dataclass(frozen=True)
class Preset:
    id: str
    match: Mapping[str, Any]
    source: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, str] = field(default_factory=dict)
    notes: str = ""

    def matches(self, facts: Mapping[str, Any]) -> bool:
        return all(facts.get(k) == v for k, v in self.match.items())


def _load(name: str) -> Any:
    with open(CATALOGUE_DIR / name, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@lru_cache(maxsize=None)
def gpus() -> dict[str, GPU]:
    out = {}
    for gid, row in _load("gpus.yaml").items():
        row = dict(row)
        cc = row.pop("compute_capability", None)
        out[gid] = GPU(
            id=gid,
            compute_capability=tuple(cc) if cc else None,
            nvml_patterns=tuple(row.pop("nvml_patterns", ())),
            supported_models=tuple(row.pop("supported_models")) if "supported_models" in row else None,
            **row,
        )
    return out


@dataclass(frozen=True)
class Draft:
    """A speculative-decoding draft model: what it adds to each GPU."""

    id: str
    full_attention_layers: int
    num_key_value_heads: int
    head_dim: int
    weights_gib: float
    source: str

    @property
    def weights_bytes(self) -> int:
        return int(self.weights_gib * 2**30)


ALL_GPUS = "all_gpus"  # models.yaml auto_tensor_parallel: the model spans every GPU of the host


@lru_cache(maxsize=None)
def models() -> dict[str, Model]:
    out = {
        mid: Model(id=mid, **{**row, "layer_pattern": tuple(row["layer_pattern"]),
                              "loaded_weights": tuple(row.get("loaded_weights", ()))})
        for mid, row in _load("models.yaml").items() if mid != "drafts"
    }
    for m in out.values():
        tp = m.auto_tensor_parallel
        if tp != ALL_GPUS and not (type(tp) is int and tp >= 1):
            raise ValueError(f"infra/catalogue/models.yaml: {m.id}: auto_tensor_parallel {tp!r} is not {ALL_GPUS} or a size >= 1")
    return out


def model_ids() -> tuple[str, ...]:
    """Every model a stack may name: the rows of models.yaml, the one list."""
    return tuple(models())


@lru_cache(maxsize=None)
def drafts() -> dict[str, Draft]:
    return {did: Draft(id=did, **row) for did, row in _load("models.yaml").get("drafts", {}).items()}


@lru_cache(maxsize=None)
def engine_memory() -> dict[str, Any]:
    """The engines' memory accounting calibration (engines.yaml)."""
    return _load("engines.yaml")


@lru_cache(maxsize=None)
def _presets_doc() -> dict[str, Any]:
    return _load("presets.yaml")


def defaults(backend: str) -> Preset:
    row = _presets_doc()["defaults"][backend]
    return Preset(id=f"{backend}-defaults", match={"backend": backend}, **row)


@lru_cache(maxsize=None)
def presets() -> tuple[Preset, ...]:
    return tuple(Preset(**row) for row in _presets_doc()["presets"])


def matching_presets(facts: Mapping[str, Any]) -> list[Preset]:
    """Presets whose every `match` key equals the given fact, in file (= precedence) order."""
    return [p for p in presets() if p.matches(facts)]


def get_gpu(gpu_id: str) -> GPU:
    try:
        return gpus()[gpu_id] if gpu_id in gpus() else _GENERIC[gpu_id]
    except KeyError:
        raise KeyError(f"unknown GPU {gpu_id!r}; known: {', '.join(gpus())}") from None


def gpu_ids() -> tuple[str, ...]:
    """Every GPU id a stack may name: the catalogue's rows (and generic GPUs made in this process)."""
    return (*gpus(), *_GENERIC)


# ----------------------------------------------------------------------------- GPUs not in gpus.yaml
# Architecture by CUDA compute capability (major, minor). gpt-oss needs bf16 and the MXFP4 kernels
# (Ampere or newer). sm_120 (GeForce RTX 50xx, RTX PRO Blackwell) is not the B200's sm_100: none of the
# B200 preset's FlashInfer MXFP4 kernels apply, so it gets an arch of its own (and no arch preset).
_ARCH_BY_CC = {(8, 0): "ampere", (8, 6): "ampere", (8, 7): "ampere", (8, 9): "ada", (9, 0): "hopper",
               (10, 0): "blackwell", (10, 3): "blackwell", (12, 0): "blackwell-rtx", (12, 1): "blackwell-rtx"}
_GENERIC: dict[str, GPU] = {}


class UnsupportedGPU(ValueError):
    """A GPU gpt-oss cannot be planned on (too old, or an architecture nothing here knows)."""


def generic_gpu(device_name: str, compute_capability: tuple[int, int], vram_bytes: int) -> GPU:
    """A catalogue entry for an NVIDIA GPU that gpus.yaml does not list (A10G, L4, RTX 3090/5090, A6000,
    H100 NVL, GH200, ...), from what NVML reports: its architecture comes from the compute capability,
    so the plan applies that architecture's preset rows (the generic preset) and the fit check uses
    the real memory. Registered for this process, so get_gpu() and the spec accept its id."""
    cc = tuple(int(x) for x in compute_capability)
    arch = _ARCH_BY_CC.get(cc)  # type: ignore[arg-type]
    if arch is None:
        if cc < (8, 0):
            raise UnsupportedGPU(f"{device_name} (compute capability {cc[0]}.{cc[1]}) is older than Ampere: "
                                 "gpt-oss needs compute capability 8.0 or newer (bf16 and the MXFP4 kernels)")
        raise UnsupportedGPU(f"{device_name} (compute capability {cc[0]}.{cc[1]}) has an architecture this "
                             "catalogue does not know: add it to infra/catalogue/gpus.yaml with its source")
    gib = max(1, round(vram_bytes / 2**30))
    gid = f"generic-sm{cc[0]}{cc[1]}-{gib}gb"
    gpu = GPU(id=gid, name=device_name.strip(), vendor="nvidia", arch=arch, vram_bytes=int(vram_bytes),
              nvml_patterns=(device_name.strip(),), k8s_product="", runpod_id=None, max_per_node=8,
              source=f"not in gpus.yaml: synthesized from NVML ({device_name.strip()}, compute capability "
                     f"{cc[0]}.{cc[1]}, {vram_bytes / 2**30:.1f} GiB)",
              compute_capability=cc, generic=True)  # type: ignore[arg-type]
    _GENERIC[gid] = gpu
    return gpu


def generic_warning(gpu: GPU, backend: str, model: str) -> str:
    """What the plan says about a generic GPU (one sentence, with the way to a tuned preset). Rows keyed to
    a catalogue GPU id or to another model never apply to it, so they are not named."""
    presets_for_arch = [p.id for p in presets() if p.match.get("arch") == gpu.arch and p.match.get("backend") == backend
                        and "gpu" not in p.match and p.match.get("model", model) == model]
    preset = f"the {gpu.arch} preset ({', '.join(presets_for_arch)})" if presets_for_arch else "the engine defaults only"
    return (f"GPU {gpu.name!r} is not in the catalogue: planned as {gpu.id} ({gpu.arch}, {gpu.vram_gib:.1f} GiB "
            f"from NVML) with {preset}; add a row to infra/catalogue/gpus.yaml (see the README, Adding a GPU) "
            "for a checked entry")


def get_model(model_id: str) -> Model:
    try:
        return models()[model_id]
    except KeyError:
        raise KeyError(f"unknown model {model_id!r}; known: {', '.join(models())}") from None


def match_gpu_name(device_name: str) -> GPU | None:
    """Catalogue GPU for an NVML device name such as 'NVIDIA H100 80GB HBM3'.

    Exact (case-insensitive) pattern matches win; otherwise the longest pattern that prefixes the
    name, so 'NVIDIA H100 80GB HBM3' does not fall to a shorter, more generic pattern.
    """
    wanted = device_name.strip().lower()
    best: tuple[int, GPU] | None = None
    for gpu in gpus().values():
        for pat in gpu.nvml_patterns:
            p = pat.lower()
            if wanted == p:
                return gpu
            if wanted.startswith(p + " ") and (best is None or len(p) > best[0]):
                best = (len(p), gpu)
    return best[1] if best else None


def expected_tok_s(gpu_id: str, model_id: str, backend: str) -> dict[str, Any] | None:
    """What the image READMEs and the vLLM gpt-oss recipe expect for decode speed on this GPU, or None where they say nothing."""
    for row in _presets_doc().get("expected_tok_s", []):
        if (row["gpu"], row["model"], row["backend"]) == (gpu_id, model_id, backend):
            return {k: row[k] for k in ("single_stream", "batched", "source")}
    return None


def platform_for(gpu: GPU | None) -> str:
    """Which base-image family a GPU needs (images.yaml keys)."""
    if gpu is None:
        return "cuda"
    if gpu.vendor == "amd":
        return "rocm"
    return "blackwell" if gpu.arch == "blackwell" else "cuda"


@lru_cache(maxsize=None)
def _images_doc() -> dict[str, Any]:
    return _load("images.yaml")


@lru_cache(maxsize=None)
def _lock_doc(path: str) -> dict[str, Any]:
    p = Path(path)
    return (yaml.safe_load(p.read_text(encoding="utf-8")) or {}) if p.is_file() else {}


def locked_digest(image: str, tag: str) -> str | None:
    """The digest `invoke lock-images` recorded for image:tag (images.lock.yaml), or None."""
    from infra import constants

    entry = _lock_doc(str(constants.IMAGE_LOCK_FILE)).get(f"{image}:{tag}") or {}
    return entry.get("digest") if isinstance(entry, dict) else None


def platforms() -> tuple[str, ...]:
    """The base-image families images.yaml lists (cuda, blackwell, rocm)."""
    from infra.constants import BACKENDS

    return tuple(sorted({p for backend in BACKENDS for p in _images_doc()[backend]}))


def platform_image(backend: str, platform: str) -> dict[str, Any]:
    """{'image', 'tag', 'digest', 'cuda', 'min_driver', 'source', 'platform'} of backend's base image for a
    platform. The tag and driver facts come from images.yaml, the digest from the lock file."""
    row = _images_doc()[backend][platform]
    return {**row, "digest": locked_digest(row["image"], row["tag"]), "platform": platform}


def base_image(backend: str, gpu: GPU | None) -> dict[str, Any]:
    """platform_image() of the platform gpu needs."""
    return platform_image(backend, platform_for(gpu))


def router_pin(name: str) -> dict[str, Any]:
    """{'image', 'tag', 'digest', 'source'} of a router artefact (images.yaml `router:`: smg, smg-chart),
    the digest from the lock file (None until `invoke lock-images` resolved it)."""
    row = _images_doc()["router"][name]
    return {**row, "digest": locked_digest(row["image"], row["tag"])}
