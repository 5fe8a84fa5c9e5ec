"""Typed access to the GPU, model and preset catalogue (the YAML files beside this module).

The YAML is the single source of truth: a GPU's VRAM, a preset's flags and a model's layer count
are read from there and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
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


@lru_cache(maxsize=None)
def models() -> dict[str, Model]:
    return {
        mid: Model(id=mid, **{**row, "layer_pattern": tuple(row["layer_pattern"])})
        for mid, row in _load("models.yaml").items()
    }


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
        return gpus()[gpu_id]
    except KeyError:
        raise KeyError(f"unknown GPU {gpu_id!r}; known: {', '.join(gpus())}") from None


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
    """What the seeds expect for decode speed on this GPU, or None where they say nothing."""
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


def base_image(backend: str, gpu: GPU | None) -> dict[str, Any]:
    """{'image', 'tag', 'digest', 'source', 'platform'} of the base image for backend on gpu."""
    platform = platform_for(gpu)
    return {**_images_doc()[backend][platform], "platform": platform}
