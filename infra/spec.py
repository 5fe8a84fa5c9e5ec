"""The typed stack spec: one object per stack, read from Pulumi config (namespace `gptoss-stacks:`).

Validation lives in the model: each section checks itself and `StackSpec._check` every rule that spans
fields, as model validators, so no StackSpec exists unchecked however it was built (load_spec, the
constructor, model_validate, model_copy(update=...)); a bad stack fails early, with the field, the value and
the fix named in one SpecError (spec_error, the one translation of pydantic's errors).

Fields left unset (None) are filled by the plan from the catalogue default and GPU preset
(see infra/plan.py for the precedence). `to_config()` / `load_spec()` are symmetric.
"""
from __future__ import annotations

import difflib
import ipaddress
import re
import typing
import unicodedata
from typing import Any, Iterator, Literal, Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from infra import constants as C
from infra.catalogue import get_gpu, get_model, gpu_ids, model_ids
from infra.engine_command import SECRET_OPTIONS, parse_options
from infra.settings import spec_type as setting

# A GPU id is a row of infra/catalogue/gpus.yaml (or "auto"): the catalogue is the one list, so a new
# row is a valid `gpu:` value without touching this file.
GpuId = str
# A model id is a row of infra/catalogue/models.yaml, the one list (its values in the Stack key reference).
ModelId = Literal[model_ids()]  # type: ignore[valid-type]


# ---------------------------------------------------------------- input hygiene
# Every string of a stack reaches a shell script, a command line, a YAML file or a terminal, so each is
# checked here, where the spec is built (every section's validator: no StackSpec exists unchecked), before
# anything is rendered or created.

SHOWN_MAX = 80  # characters of a value an error message shows
MAX_STRING = 16384  # longest string a stack field may hold (a few SSH public keys fit)
# sha256 digests as Docker and OCI write them (lower-case hex).
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Docker's container and volume names (moby daemon/names: restricted name chars).
DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,127}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # what Pulumi allows in a stack name
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
K8S_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")  # RFC 1123 label (namespaces)
# Kubernetes label keys ([prefix/]name) and values, as the API server checks them.
_LABEL_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
K8S_LABEL_KEY = re.compile(rf"(?:[a-z0-9](?:[-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}")
K8S_LABEL_VALUE = re.compile(rf"(?:{_LABEL_NAME})?")
# A served model name: it reaches the engine's API, client env files and PromQL label matchers.
SERVED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
# distribution/reference grammar: domain[:port], lower-case path components, tag.
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]{{1,5}})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
REGISTRY = re.compile(rf"{_DOMAIN}(?:/{_COMPONENT})*")
REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG = re.compile(_TAG)
IMAGE_REF = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST.pattern})?")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_-]{0,127}")  # an index, GPU-<uuid> or MIG-<uuid>
_USERINFO = re.compile(r"(^|://)([^/@:\s]*):[^/@\s]*@")


def mask_credentials(text: str) -> str:
    """`ssh://root:pw@host` -> `ssh://root:***@host`, `user:token@ghcr.io` -> `user:***@ghcr.io`."""
    return _USERINFO.sub(r"\1\2:***@", text)


def shown(value: Any, limit: int = SHOWN_MAX) -> str:
    """A value as an error message shows it: repr (control characters escaped), credentials in URLs
    masked, cut to `limit` characters so a huge value cannot flood a terminal or a log."""
    text = mask_credentials(repr(value))
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def shown_arg(arg: str) -> str:
    """An extra_args item as an error shows it: an option's name, never its value (it may be a secret)."""
    if not arg.startswith("-"):
        return "<value hidden>"
    return arg.split("=", 1)[0] + ("=<hidden>" if "=" in arg else "")


def control_character(text: str) -> str | None:
    """The first control or line-separator character of `text` (None if there is none)."""
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return ch
    return None


def iter_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(field path, string) for every string in a config value, dict keys included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from iter_strings(k, f"{path}.<key>")
            yield from iter_strings(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple, set, frozenset)):
        for i, v in enumerate(value):
            yield from iter_strings(v, f"{path}[{i}]")


def url_credentials(field: str, url: str, fix: str, stack: str | None = None) -> None:
    """Refuse a password or token written into a URL (it would land in provider inputs, env and outputs)."""
    userinfo = re.match(r"^(?:[a-z][a-z0-9+.-]*://)?([^/@]*)@", url)
    if userinfo and (":" in userinfo.group(1) or not url.split("://", 1)[0].startswith("ssh")):
        bare = url[:userinfo.start(1)] + "<credentials>" + url[userinfo.end(1):]
        raise SpecError(field, bare, "carries credentials in the address (they would be stored and shown in plain text)", fix,
                        stack=stack)


def set_config_fix(key: str, stack: str | None, secret: bool = True) -> str:
    """How to set one config value, as the README documents it: `invoke config`, which reads the value
    from a hidden prompt or stdin (never the command line) with the project's backend and passphrase."""
    return (f"run `invoke config --stack {stack or 'NAME'} {key}{' --secret' if secret else ''}` "
            "(the value from a prompt or stdin)")


class SpecError(ValueError):
    """A stack setting that cannot work: names the field, the value and the fix."""

    def __init__(self, field: str, value: Any, problem: str, fix: str, stack: str | None = None):
        self.field, self.value, self.problem, self.fix, self.stack = field, value, problem, fix, stack
        where = f"stack {shown(stack)}: " if stack else ""
        super().__init__(
            f"{where}{C.CONFIG_NAMESPACE}:{field} = {shown(value)}: {problem}. Fix: {fix}"
        )


def _check_strings(values: Mapping[str, Any], stack: str | None, hidden: tuple[str, ...] = ()) -> None:
    """No string (dict keys included) over MAX_STRING or with a control character; values under `hidden`
    (they may be secrets) are never shown."""
    for path, text in iter_strings(values, ""):
        field = path[1:]
        if len(text) > MAX_STRING:
            raise SpecError(field, "<long value>", f"is {len(text)} characters long (at most {MAX_STRING})",
                            "shorten it; a stack holds names and settings, not files", stack=stack)
        ch = control_character(text)
        if ch is not None and not (field == "ssh_public_key" and ch == "\n"):
            raise SpecError(field, "<hidden>" if field.startswith(hidden) else text,
                            f"contains the control character {ch!r} (a line break would end a command or a comment line)",
                            "remove it; write one value per list item", stack=stack)


def _stack_of(data: Any) -> str | None:
    value = data.get("stack") if isinstance(data, Mapping) else getattr(data, "stack", None)
    return value if isinstance(value, str) and value else None


class _Checked(BaseModel):
    """A part of a stack that cannot exist unchecked: however it is built, its `_check` runs (a model validator;
    model_copy(update=...) validates too), and model_validate turns every failure into one SpecError
    (spec_error). The stack's name reaches the sections' messages through the validation context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any):  # type: ignore[override]
        kwargs.setdefault("context", {"stack": _stack_of(obj)})
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise spec_error(exc, cls, _stack_of(obj)) from None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False):  # type: ignore[override]
        """pydantic's model_copy(update=...) skips validation; this one checks the copy like a new one."""
        if not update:
            return super().model_copy(deep=deep)
        return type(self).model_validate({**dict(self), **update})

    @model_validator(mode="after")
    def _validated(self, info: ValidationInfo):
        self._check((info.context or {}).get("stack"))
        return self

    def _check(self, stack: str | None) -> None:
        """The rules beyond field types; a SpecError names the field relative to this part (spec_error
        prefixes where the part sits)."""


class _Section(_Checked):
    def _check(self, stack: str | None) -> None:
        _check_strings(self.model_dump(), stack)


class DockerTarget(_Section):
    # unix:///var/run/docker.sock for the local daemon, ssh://user@host for a remote GPU host.
    host: str = "unix:///var/run/docker.sock"
    # Address the API port is published on. 127.0.0.1 keeps it loopback-only (no key needed).
    publish_address: str = "127.0.0.1"
    publish_port: int | None = None  # host port; default = spec.port
    cache_volume: str = C.DOCKER_CACHE_VOLUME
    shm_size_mb: int = Field(C.DOCKER_SHM_SIZE_MB, ge=64)
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    container_name: str | None = None
    device_ids: list[str] | None = None  # pin GPUs by index/UUID; default: gpu_count GPUs

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v.startswith(("unix://", "ssh://", "tcp://")):
            raise ValueError("must start with unix://, ssh:// or tcp://")
        return v

    def _check(self, stack: str | None) -> None:
        super()._check(stack)
        err = lambda f, v, p, fix: SpecError(f, v, p, fix, stack=stack)  # noqa: E731
        _check_docker_host(self.host, stack)
        if not _is_ip(self.publish_address):
            raise err("publish_address", self.publish_address, "Docker publishes ports on an IP address only",
                      "use 127.0.0.1 (this host only) or 0.0.0.0 (every interface)")
        if not DOCKER_NAME.fullmatch(self.cache_volume):
            path = self.cache_volume.startswith(("/", ".", "~"))
            raise err("cache_volume", self.cache_volume,
                      "is a host path, not a Docker volume name" if path else "is not a Docker volume name",
                      "use a volume name such as gptoss-cache (letters, digits, '_', '.', '-'); the deploy creates it")
        if self.container_name is not None and not DOCKER_NAME.fullmatch(self.container_name):
            raise err("container_name", self.container_name, "is not a Docker container name",
                      "use letters, digits, '_', '.' and '-', starting with a letter or digit")
        for i, dev in enumerate(self.device_ids or ()):
            if not DEVICE_ID.fullmatch(dev):
                raise err(f"device_ids[{i}]", dev, "is not a GPU index or UUID",
                          "use indices (0, 1) or UUIDs from `nvidia-smi -L`, one per list item")


class Autoscaling(_Section):
    enabled: bool = False
    mode: Literal["keda", "hpa"] = "keda"
    # 0 (scale to zero) only with a router that holds requests while no pod is up (checked by the target).
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(4, ge=1)
    # Requests waiting in the engine queue, averaged over the replicas, that triggers a scale-up.
    queue_depth_target: int = Field(8, ge=1)
    prometheus_address: str = "http://prometheus-server.monitoring.svc:80"
    # Guard rails against pods that are still loading (minutes for 120b) triggering more scale-ups.
    scale_up_pods: int = Field(C.K8S_SCALE_UP_PODS, ge=1)
    scale_up_period_seconds: int = Field(C.K8S_SCALE_UP_PERIOD_SECONDS, ge=15, le=1800)
    scale_up_stabilization_seconds: int = Field(C.K8S_SCALE_UP_STABILIZATION_SECONDS, ge=0, le=3600)
    scale_down_stabilization_seconds: int = Field(C.K8S_SCALE_DOWN_STABILIZATION_SECONDS, ge=0, le=3600)
    # A Prometheus Operator ServiceMonitor that scrapes the engine pods' /metrics.
    service_monitor: bool = False
    service_monitor_interval: str = Field("30s", pattern=r"^[0-9]+(ms|s|m|h)$")

    def _check(self, stack: str | None) -> None:
        super()._check(stack)
        url_credentials("prometheus_address", self.prometheus_address,
                        "use an address without user:password@ (give Prometheus auth to KEDA, not the stack)", stack)


class Drain(_Section):
    """Scale-down and rollouts without lost requests: preStop pause, then the engine's graceful stop."""

    prestop_seconds: int = Field(C.K8S_PRESTOP_SECONDS, ge=0, le=600)
    shutdown_timeout_seconds: int = Field(C.K8S_SHUTDOWN_TIMEOUT_SECONDS, ge=1, le=3600)

    @property
    def termination_grace_seconds(self) -> int:
        return self.prestop_seconds + self.shutdown_timeout_seconds + C.K8S_TERMINATION_MARGIN_SECONDS


class NetworkPolicy(_Section):
    """Who may talk to the stack's pods besides its own router (the NetworkPolicy objects)."""

    # The metrics scraper let into the engine and router pods: its namespace and its pods' labels.
    metrics_namespace: str = C.K8S_METRICS_NAMESPACE
    metrics_pod_labels: dict[str, str] = Field(default_factory=lambda: dict(C.K8S_METRICS_POD_LABELS))
    # Where the router reaches the Kubernetes API (TCP 443/6443; it finds the engine pods through it): narrow
    # it to the addresses of `kubectl get endpoints kubernetes -n default`.
    api_server_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"])

    def _check(self, stack: str | None) -> None:
        super()._check(stack)
        err = lambda f, v, p, fix: SpecError(f, v, p, fix, stack=stack)  # noqa: E731
        if not K8S_LABEL.fullmatch(self.metrics_namespace):
            raise err("metrics_namespace", self.metrics_namespace, "is not a Kubernetes namespace name",
                      "use the namespace your Prometheus runs in, e.g. monitoring")
        for key, value in self.metrics_pod_labels.items():
            if not K8S_LABEL_KEY.fullmatch(key) or not K8S_LABEL_VALUE.fullmatch(value):
                raise err(f"metrics_pod_labels.{key}", value, "is not a Kubernetes label key and value",
                          "use the labels of your Prometheus pods (`kubectl get pods --show-labels -n <namespace>`)")
        for i, cidr in enumerate(self.api_server_cidrs):
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                raise err(f"api_server_cidrs[{i}]", cidr, "is not an address range (CIDR)",
                          "use e.g. 10.0.0.1/32 (`kubectl get endpoints kubernetes -n default`), or 0.0.0.0/0") from None


class KubernetesTarget(_Section):
    namespace: str = "gptoss"
    replicas: int = Field(1, ge=0)
    # The router in front of the engine pods: smg (SGLang's model gateway, cache-aware) or llm-d
    # (Gateway API Inference Extension). Unset: smg when there can be more than one pod, else none.
    router: Literal["smg", "llm-d", "none"] | None = None
    router_policy: Literal["cache_aware", "power_of_two", "prefix_hash", "round_robin", "random"] = "cache_aware"
    # Weights and compile caches: `shared` is one claim filled once by a download Job (ReadWriteMany,
    # so it needs a storage class that offers it, when there can be more than one pod); `node-local`
    # is a directory on each GPU node (each node downloads once).
    cache: Literal["shared", "node-local"] = "shared"
    storage_class: str | None = None
    cache_size_gi: int = Field(200, ge=10)
    existing_claim: str | None = None
    # cache: node-local's directory on each node: below /var/lib/gptoss, /mnt or /data (constants.K8S_NODE_CACHE_PREFIXES).
    node_cache_path: str = Field(C.K8S_NODE_CACHE_PATH, pattern=r"^/[A-Za-z0-9._/-]*$")
    # The Hugging Face commit every pod loads; default infra.constants.MODEL_REVISIONS.
    model_revision: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    drain: Drain = Field(default_factory=Drain)
    service_type: Literal["ClusterIP", "LoadBalancer", "NodePort"] = "ClusterIP"
    # With router: none, a LoadBalancer/NodePort service exposes the engine pods themselves (some of their routes
    # answer without the key); refused unless this says it is meant.
    allow_public_engine: bool = False
    network_policy: NetworkPolicy = Field(default_factory=NetworkPolicy)
    tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
    node_selector: dict[str, str] = Field(default_factory=dict)  # added to the GPU product label
    shm_size_gi: int = Field(16, ge=1)
    # Extra group ids of the engine pods (which run as uid 10001, not root): on AMD nodes the gids of `video` and
    # `render` there (`getent group video render`), which own /dev/kfd and /dev/dri.
    supplemental_groups: list[int] = Field(default_factory=list)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)

    def _check(self, stack: str | None) -> None:
        super()._check(stack)
        if not K8S_LABEL.fullmatch(self.namespace):
            raise SpecError("namespace", self.namespace, "is not a Kubernetes namespace name",
                            "use lower-case letters, digits and '-' (at most 63), e.g. gptoss", stack=stack)
        _check_node_cache_path(self.node_cache_path, stack)
        for i, gid in enumerate(self.supplemental_groups):
            if not 0 < gid < 2**31:
                raise SpecError(f"supplemental_groups[{i}]", gid, "is not a group id (1 to 2147483647)",
                                "use the numeric gids of `getent group video render` on the GPU nodes", stack=stack)

    @property
    def max_pods(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling.enabled else self.replicas

    @property
    def resolved_router(self) -> str:
        if self.router is not None:
            return self.router
        return "smg" if self.max_pods > 1 else "none"

    def revision_for(self, weights: str) -> str | None:
        return self.model_revision or C.MODEL_REVISIONS.get(weights)

    def engine_args(self, backend: str, weights: str) -> list[str]:
        """Engine options this target needs (a plan layer below extra_args): the pinned revision,
        and vLLM's graceful stop (SGLang drains on SIGTERM by default and has no such option)."""
        args: list[str] = []
        revision = self.revision_for(weights)
        if revision:
            args += ["--revision", revision]
        if backend == "vllm":
            args += ["--shutdown-timeout", str(self.drain.shutdown_timeout_seconds)]
        return args


class RunpodTarget(_Section):
    cloud_type: Literal["SECURE", "COMMUNITY"] = "SECURE"
    volume_gb: int = Field(100, ge=20)  # the RunPod READMEs: 100 GB (120b weights ~63 GB + compile caches)
    container_disk_gb: int = Field(50, ge=10)
    network_volume_id: str | None = None  # reuse HF + compile caches across pods
    data_center_id: str | None = None
    ssh: bool = True  # expose 22/tcp for the RunPod READMEs' SSH tunnel
    # Id of a container-registry credential made in the RunPod console (Settings > Container Registry
    # Auth). RunPod's API cannot create one and a Pod cannot carry one, so a private image goes through
    # a private Template that references it.
    container_registry_auth_id: str | None = None


class ImageSpec(_Section):
    registry: str | None = None  # e.g. ghcr.io/acme or localhost:5000; None: local image only
    repository: str | None = None  # default gptoss-<backend>
    tag: str | None = None  # default <engine_version>-<platform>
    push: bool | None = None  # default: True when a registry is set
    registry_username: str | None = None  # password is the `registry_password` secret
    base_image: str | None = None  # default from infra/catalogue/images.yaml
    base_digest: str | None = None  # sha256:...; default from the catalogue
    engine_version: str | None = None  # default infra.constants.ENGINE_VERSIONS[backend]
    allow_unpinned_base: bool = False

    @field_validator("base_digest")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is not None and not _DIGEST.fullmatch(v):
            raise ValueError("must be sha256: followed by 64 lower-case hex digits")
        return v

    def _check(self, stack: str | None) -> None:
        super()._check(stack)
        if self.registry is not None:
            url_credentials("registry", self.registry,
                            "set image.registry to the bare address (e.g. ghcr.io/org), image.registry_username to the user, and "
                            + set_config_fix("registry_password", stack), stack)
            if not REGISTRY.fullmatch(self.registry):
                raise SpecError("registry", self.registry, "is not a registry address",
                                "use host[:port][/lower-case-path], e.g. ghcr.io/acme or localhost:5000", stack=stack)
        for name, pattern, fix in (
                ("repository", REPOSITORY, "use lower-case letters, digits, '.', '_', '-' and '/', e.g. gptoss-vllm"),
                ("tag", TAG, "use letters, digits, '_', '.' and '-' (at most 128), e.g. 0.33.0-cuda"),
                ("base_image", IMAGE_REF, "use a reference such as vllm/vllm-openai:v0.33.0 (the digest goes in image.base_digest)"),
                ("engine_version", VERSION, "use a version such as 0.33.0"),
                ("registry_username", re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}"), "use the registry user name (the password is the registry_password secret)")):
            value = getattr(self, name)
            if value is not None and not pattern.fullmatch(value):
                raise SpecError(name, value, f"is not a valid image {name.replace('_', ' ')}", fix, stack=stack)


class PythonTool(_Section):
    """The gpt-oss `python` built-in tool: an MCP tool server (sandboxed) the engine calls (`--tool-server`)."""

    enabled: bool = False  # the engine offers `python` to Responses requests with tools [{"type": "code_interpreter"}]
    timeout_s: int = Field(C.TOOL_PYTHON_TIMEOUT_S, ge=1, le=600)  # wall-clock limit of one call (seconds)
    memory_mb: int = Field(C.TOOL_PYTHON_MEMORY_MB, ge=64, le=16384)  # address space of each process a call runs (RLIMIT_AS, MiB)
    max_output_kb: int = Field(C.TOOL_PYTHON_MAX_OUTPUT_KB, ge=1, le=1024)  # output one call returns to the model, cut beyond (KiB)
    max_concurrency: int = Field(C.TOOL_PYTHON_MAX_CONCURRENCY, ge=1, le=256)  # calls run at once; more wait (the tool server's queue), then get a tool error
    # The sandbox runtime of the tool server: docker, its --runtime (runsc for gVisor, kata-runtime); kubernetes, its pods' runtimeClassName.
    runtime: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
    # host:port of a python MCP tool server you run yourself; unset: the stack runs its own beside the engine.
    address: str | None = None

    def _check(self, stack: str | None) -> None:
        super()._check(stack)
        if self.address is None:
            return
        host, _, port = self.address.rpartition(":")
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not (port.isdigit() and 0 < int(port) < 65536 and (HOSTNAME.fullmatch(bare) or _is_ip(bare))):
            raise SpecError("address", self.address, "is not host:port",
                            "write e.g. 10.0.0.5:8765 or tools.internal:8765 (no scheme, no path)", stack=stack)
        limits = sorted(self.model_fields_set - {"enabled", "address"})
        if limits:
            raise SpecError(limits[0], getattr(self, limits[0]),
                            "limits apply to the tool server the stack runs, and address points at one you run",
                            "remove the limit (set it on your own tool server) or remove address", stack=stack)


class BrowserTool(_Section):
    """The gpt-oss `browser` built-in tool: not built yet (refused when enabled)."""

    enabled: bool = False  # refused: no browser tool server is built yet (README, Built-in tools)

    def _check(self, stack: str | None) -> None:
        super()._check(stack)
        if self.enabled:
            raise SpecError("enabled", True,
                            "no browser tool server is built yet (the engines' demo browser runs in the engine process with a search key)",
                            "set builtin_tools.browser.enabled: false (README, Built-in tools)", stack=stack)


class BuiltinTools(_Section):
    """gpt-oss's built-in tools, served by tool servers beside the engine (README, Built-in tools)."""

    python: PythonTool = Field(default_factory=PythonTool)  # the python tool (a sandboxed notebook)
    browser: BrowserTool = Field(default_factory=BrowserTool)  # the browser tool (not built yet)


class StackSpec(_Checked):
    """Everything one stack says. Unset tunables stay None and are resolved by infra.plan. Checked whenever
    one is built (sections first, then `_check`): a StackSpec that exists is one that can work."""

    def __init__(self, /, **data: Any) -> None:
        # pydantic's own __init__ with a validation context, as pydantic's docs do it ("Using validation context
        # with BaseModel initialization"); only here: a custom __init__ on a section would make pydantic call it
        # for the nested section too, without the context (so a section built alone raises ValidationError).
        try:
            self.__pydantic_validator__.validate_python(data, self_instance=self, context={"stack": _stack_of(data)})
        except ValidationError as exc:
            raise spec_error(exc, StackSpec, _stack_of(data)) from None

    stack: str = Field("", description="stack name (not a config key)")
    backend: Literal["vllm", "sglang"]
    model: ModelId = "openai/gpt-oss-120b"
    gpu: GpuId
    gpu_count: int = Field(1, ge=1, le=64)
    tensor_parallel: int | Literal["auto"] = "auto"

    # Engine settings: type, bounds and meaning are rows of the settings table (infra/settings.py).
    max_model_len: setting("max_model_len") = None
    gpu_memory_fraction: setting("gpu_memory_fraction") = None
    max_num_seqs: setting("max_num_seqs") = None
    max_num_batched_tokens: setting("max_num_batched_tokens") = None
    enable_prefix_caching: setting("enable_prefix_caching") = None
    enable_chunked_prefill: setting("enable_chunked_prefill") = None
    async_scheduling: setting("async_scheduling") = None
    speculative: Literal["none", "eagle3"] = "none"
    kv_cache_dtype: setting("kv_cache_dtype") = None
    attention_backend: setting("attention_backend") = None
    fit_check: Literal["strict", "warn"] = "strict"
    # Workload profile: which preset rows of infra/catalogue/presets.yaml apply (constants.PROFILES).
    profile: Literal[C.PROFILES] = C.DEFAULT_PROFILE

    host: str = C.DEFAULT_HOST
    port: setting("port") = C.DEFAULT_PORT
    served_model_name: str | None = None  # default: the model id
    api_key_mode: Literal["auto", "none", "config", "generate"] = "auto"
    ssh_public_key: str | None = None  # PUBLIC_KEY/SSH_PUBLIC_KEY for the image READMEs' SSH access

    target: Literal["docker", "kubernetes", "runpod"] = "docker"
    docker: DockerTarget | None = None
    kubernetes: KubernetesTarget | None = None
    runpod: RunpodTarget | None = None
    image: ImageSpec = Field(default_factory=ImageSpec)

    env: dict[str, str] = Field(default_factory=dict)  # extra container env (no secrets)
    extra_args: list[str] = Field(default_factory=list)  # last word on the engine command line
    builtin_tools: BuiltinTools | None = None  # gpt-oss built-in tools (python); unset: none

    # Which secret config keys the stack sets. Values never enter the spec.
    secrets_set: frozenset[str] = frozenset()

    # ---------------------------------------------------------------- derived
    @field_validator("gpu")
    @classmethod
    def _gpu(cls, v: str) -> str:
        if v != "auto" and v not in gpu_ids():
            raise ValueError("is not a GPU of infra/catalogue/gpus.yaml")
        return v

    @property
    def model_info(self):
        return get_model(self.model)

    @property
    def gpu_info(self):
        return None if self.gpu == "auto" else get_gpu(self.gpu)

    @property
    def target_settings(self) -> _Section:
        section = getattr(self, self.target)
        if section is not None:
            return section
        return {"docker": DockerTarget, "kubernetes": KubernetesTarget, "runpod": RunpodTarget}[self.target]()

    def target_engine_args(self, weights: str) -> list[str]:
        """Engine options the deployment target adds (infra.plan applies them below extra_args)."""
        return self.target_settings.engine_args(self.backend, weights) if self.target == "kubernetes" else []

    @property
    def tp_uses_all_gpus(self) -> bool:
        """tensor_parallel: auto on a model the catalogue spans over every GPU (120b, as the image READMEs run it)."""
        return self.tensor_parallel == "auto" and self.model_info.tp_uses_all_gpus

    @property
    def resolved_tp(self) -> int:
        """TP: explicit, else the catalogue's auto_tensor_parallel (120b: all GPUs, 20b: 1)."""
        if self.tensor_parallel != "auto":
            return int(self.tensor_parallel)
        return self.model_info.auto_tp(self.gpu_count)

    @property
    def loopback_only(self) -> bool:
        return self.target == "docker" and self.target_settings.publish_address in C.LOOPBACK_HOSTS

    @property
    def wants_api_key(self) -> bool:
        if self.api_key_mode == "auto":
            return "api_key" in self.secrets_set or not self.loopback_only
        return self.api_key_mode != "none"

    # ---------------------------------------------------------------- checks

    def _check_inputs(self) -> None:
        """Strings that reach a shell, a command line or a file (the sections checked their own): no control
        characters, and names and addresses in the form the tool that reads them accepts."""
        stack = self.stack or None
        err = lambda f, v, p, fix: SpecError(f, v, p, fix, stack=stack)  # noqa: E731
        if self.stack and not STACK_NAME.fullmatch(self.stack):
            raise err("stack", self.stack, "is not a stack name", "use letters, digits, '.', '_' and '-' (Pulumi's stack names)")
        _check_strings(self.model_dump(exclude={"stack", "secrets_set", "docker", "kubernetes", "runpod", "image"}), stack,
                       hidden=("extra_args", "env", "ssh_public_key"))

        if self.host.startswith("-") or not (HOSTNAME.fullmatch(self.host) or _is_ip(self.host)):
            raise err("host", self.host, "is not an IP address or host name for the engine to bind",
                      f"use {C.DEFAULT_HOST} (every interface in the container) or 127.0.0.1")
        if self.served_model_name is not None and not SERVED_NAME.fullmatch(self.served_model_name):
            raise err("served_model_name", self.served_model_name,
                      "is not a model name (letters, digits and . _ : / @ + -, starting with a letter or digit, at most 128)",
                      "use a name such as gpt-oss-120b, or leave it unset for the model id")
        for name in self.env:
            if not ENV_NAME.fullmatch(name):
                raise err(f"env.{name}", "...", "is not an environment variable name",
                          "use letters, digits and '_', not starting with a digit")

    def exposure_warnings(self) -> list[str]:
        """api_key_mode: none where the port is reachable beyond this host: allowed, said out loud."""
        if self.api_key_mode != "none":
            return []
        where = None
        if self.target == "docker" and not self.loopback_only:
            where = f"docker.publish_address {self.target_settings.publish_address}"
        elif self.target == "kubernetes" and self.target_settings.service_type != "ClusterIP":
            where = f"a {self.target_settings.service_type} service"
        elif self.target == "runpod":
            where = "the pod's public ports"
        if where is None:
            return []
        return [f"api_key_mode: none with the API on {where}: anyone who can reach it can use the model; "
                "use api_key_mode: auto (or publish on 127.0.0.1)"]
    def _check(self, stack: str | None) -> None:
        """Every rule that spans fields. Raises SpecError naming field, value and fix."""
        err = lambda f, v, p, fix: SpecError(f, v, p, fix, stack=self.stack or None)  # noqa: E731
        self._check_inputs()
        model = self.model_info
        gpu = self.gpu_info

        if self.gpu_memory_fraction is not None and not (
            C.MIN_MEMORY_FRACTION < self.gpu_memory_fraction <= C.MAX_MEMORY_FRACTION
        ):
            raise err("gpu_memory_fraction", self.gpu_memory_fraction,
                      f"must be > {C.MIN_MEMORY_FRACTION} and <= {C.MAX_MEMORY_FRACTION} (the engine needs headroom for the CUDA context)",
                      "use a value such as 0.90 (0.95 for long context on 80 GB cards)")

        tp = self.tensor_parallel
        if tp != "auto":
            if tp < 1 or model.num_attention_heads % tp:
                raise err("tensor_parallel", tp, f"must divide the model's {model.num_attention_heads} attention heads",
                          "use 1, 2, 4 or 8")
            if tp > self.gpu_count:
                raise err("tensor_parallel", tp, f"exceeds gpu_count ({self.gpu_count})",
                          f"set gpu_count: {tp} or tensor_parallel: {self.gpu_count}")
        if self.resolved_tp > model.num_key_value_heads:
            raise err("tensor_parallel", self.resolved_tp,
                      f"is above the model's {model.num_key_value_heads} KV heads (KV heads would be replicated, wasting memory)",
                      f"use at most {model.num_key_value_heads}, or run several replicas instead")

        if self.max_model_len is not None and self.max_model_len > model.max_position_embeddings:
            raise err("max_model_len", self.max_model_len,
                      f"is above {self.model}'s maximum context ({model.max_position_embeddings})",
                      f"use at most {model.max_position_embeddings}")

        if self.speculative == "eagle3" and not model.eagle3_draft:
            raise err("speculative", self.speculative, f"no EAGLE3 draft model is catalogued for {self.model}",
                      "use speculative: none, or model openai/gpt-oss-120b")

        if (self.enable_chunked_prefill is False and self.max_num_batched_tokens is not None
                and self.max_model_len is not None and self.max_num_batched_tokens < self.max_model_len):
            raise err("max_num_batched_tokens", self.max_num_batched_tokens,
                      f"is below max_model_len ({self.max_model_len}) with chunked prefill off, so long prompts can never be scheduled",
                      f"enable chunked prefill or set max_num_batched_tokens >= {self.max_model_len}")

        if gpu is not None:
            if not gpu.supports(self.model):
                raise err("model", self.model, f"does not fit on {gpu.name} ({gpu.vram_gib:.0f} GiB); the gpt-oss-vllm RunPod README and the gpt-oss-sglang image README list it for gpt-oss-20b only",
                          "use model openai/gpt-oss-20b (MODEL=openai/gpt-oss-20b on a container), or a GPU with 80 GB or more")
            if self.gpu_count > gpu.max_per_node and self.target != "kubernetes":
                raise err("gpu_count", self.gpu_count, f"is more than one {gpu.name} host has ({gpu.max_per_node})",
                          f"use at most {gpu.max_per_node}, or the kubernetes target with replicas")
            if self.kv_cache_dtype == "fp8" and gpu.vendor == "nvidia" and gpu.compute_capability < (8, 9):
                raise err("kv_cache_dtype", "fp8", f"{gpu.name} (compute capability {gpu.compute_capability[0]}.{gpu.compute_capability[1]}) has no FP8 support",
                          "use kv_cache_dtype: auto on Ampere")
            if (self.backend == "vllm" and self.attention_backend == "FLASH_ATTN"
                    and (gpu.vendor != "nvidia" or gpu.compute_capability[0] != 9)):
                raise err("attention_backend", "FLASH_ATTN",
                          f"gpt-oss needs attention sinks, which vLLM's FLASH_ATTN supports only on Hopper (FlashAttention 3); {gpu.name} is {gpu.arch}",
                          "use TRITON_ATTN (or leave attention_backend unset for the GPU preset)")
            if self.backend == "sglang" and self.attention_backend == "fa3" and gpu.arch != "hopper":
                raise err("attention_backend", "fa3", f"FlashAttention 3 runs only on Hopper; {gpu.name} is {gpu.arch}",
                          "use triton (or leave attention_backend unset)")

        if self.attention_backend not in (None, "auto"):
            from infra.flagcheck.snapshot import load_snapshot

            known = load_snapshot(self.backend)["registries"]["attention_backends"]
            if self.attention_backend not in known:
                raise err("attention_backend", self.attention_backend,
                          f"is not a {self.backend} {C.ENGINE_VERSIONS[self.backend]} attention backend",
                          did_you_mean(self.attention_backend, list(known)) + " (or leave it unset for the GPU preset)")

        if self.api_key_mode == "config" and "api_key" not in self.secrets_set:
            raise err("api_key_mode", "config", "no api_key secret is set",
                      set_config_fix("api_key", self.stack) + " or use api_key_mode: generate")

        if self.target == "kubernetes":
            _refuse_ssh_on_kubernetes(self)
        _check_builtin_tools(self)

        for section in ("docker", "kubernetes", "runpod"):
            if section != self.target and getattr(self, section) is not None:
                raise err(section, "{...}", f"is set but target is {self.target!r}, so it would be ignored",
                          f"remove the {section} section or set target: {section}")

        img = self.image
        if img.push and not img.registry:
            raise err("image.push", True, "push needs a registry", "set image.registry (e.g. localhost:5000) or image.push: false")
        if self.target in ("kubernetes", "runpod") and not img.registry:
            raise err("image.registry", None, f"the {self.target} target pulls the image from a registry",
                      "set image.registry to a registry the cluster/pod can pull from (e.g. ghcr.io/<org>)")

        for name in self.env:
            if C.looks_secret(name):
                raise err(f"env.{name}", "<hidden>", "looks like a secret in plain config",
                          f"use a secret config key ({', '.join(C.SECRET_KEYS)}) instead")
        positionals, options = parse_options(self.extra_args)  # the one option parser (infra.engine_command)
        for opt in options:
            if opt.name in SECRET_OPTIONS:
                raise err(f"extra_args[{opt.index}]", shown_arg(opt.tokens[0]),
                          "secrets on the command line show up in `ps` and in Pulumi state",
                          "set the api_key / hf_token secret config key instead")
            if opt.name == "--config":
                raise err(f"extra_args[{opt.index}]", shown_arg(opt.tokens[0]),
                          "the launcher owns the engine's --config file (the rendered settings; SGLang's API key)",
                          "give the options themselves as extra_args items or stack fields")
        if positionals:
            raise err("extra_args[0]", shown_arg(self.extra_args[0]), "must start with an option (e.g. --max-log-len)",
                      "write each option and its value as separate list items")

    def check_deploy_secrets(self) -> None:
        """Secrets a deployment needs (not rendering): call before creating any resource."""
        img = self.image
        pushing = img.push if img.push is not None else bool(img.registry)
        if pushing and img.registry_username and "registry_password" not in self.secrets_set:
            raise SpecError("registry_password", None,
                            f"pushing to {img.registry} as {img.registry_username} needs the registry password",
                            set_config_fix("registry_password", self.stack),
                            stack=self.stack or None)

    # ---------------------------------------------------------------- YAML/config symmetry
    def to_config(self) -> dict[str, Any]:
        """Plain config mapping (bare keys, no secrets); load_spec(to_config()) == self."""
        data = self.model_dump(mode="json", exclude={"stack", "secrets_set"}, exclude_defaults=True)
        # Literal defaults that shape the stack are always written, so stack files are explicit.
        for key in ("backend", "model", "gpu", "target"):
            data[key] = getattr(self, key)
        return data


def _check_node_cache_path(path: str, stack: str | None) -> None:
    """A node directory this project may own: below an allowed prefix, no '.', '..' or empty segments."""
    field = "node_cache_path"
    fix = (f"use a directory below {', '.join(C.K8S_NODE_CACHE_PREFIXES)} written plainly "
           f"(e.g. {C.K8S_NODE_CACHE_PATH}), or cache: shared")
    parts = path.split("/")[1:]
    if "" in parts or "." in parts or ".." in parts:
        raise SpecError(field, path, "has an empty, '.' or '..' segment (the kubelet would mount another directory than the one checked)",
                        fix, stack=stack)
    if not any(path.startswith(prefix + "/") for prefix in C.K8S_NODE_CACHE_PREFIXES):
        raise SpecError(field, path, "is not below an allowed prefix (the engine user would own a host directory such as /etc)",
                        fix, stack=stack)


def _check_builtin_tools(spec: "StackSpec") -> None:
    """The rules of builtin_tools that span fields: no tool server past it (extra_args), none beside RunPod's one container."""
    stack = spec.stack or None
    for i, arg in enumerate(spec.extra_args):
        if arg.split("=", 1)[0] == "--tool-server":
            raise SpecError(f"extra_args[{i}]", shown_arg(arg),
                            "the engine's tool server comes from builtin_tools (the engines' `demo` one runs model-written "
                            "code in the engine's process or through a Docker socket)",
                            "remove it and set builtin_tools.python.enabled: true, or builtin_tools.python.address: host:port "
                            "(README, Built-in tools)", stack=stack)
    py = spec.builtin_tools.python if spec.builtin_tools else None
    if py is not None and py.enabled and spec.target == "runpod" and py.address is None:
        raise SpecError("builtin_tools.python.enabled", True,
                        "RunPod runs one container per pod, so the sandboxed tool server cannot run beside the engine",
                        "use the docker or kubernetes target, or set builtin_tools.python.address to a tool server you run "
                        "(README, Built-in tools)", stack=stack)


def _refuse_ssh_on_kubernetes(spec: "StackSpec") -> None:
    """SSH into an engine pod would need root (sshd) and a port every pod in the cluster can reach."""
    found = [("ssh_password", "<hidden>")] if "ssh_password" in spec.secrets_set else []
    if spec.ssh_public_key:
        found.append(("ssh_public_key", "<key>"))
    found += [(f"env.{name}", "<hidden>") for name in C.SSH_ENV_VARS if name in spec.env]
    if found:
        field, shown_value = found[0]
        raise SpecError(field, shown_value, "SSH into the pods is refused on kubernetes (sshd needs root in the pod)",
                        f"remove it and use `kubectl exec -it -n {spec.target_settings.namespace} deploy/<deployment> -- bash` "
                        "(the deployment is the stack's `deployment` output)", stack=spec.stack or None)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_docker_host(host: str, stack: str | None) -> None:
    """unix:///path, ssh://[user@]host[:port] (key auth: ssh-agent or ~/.ssh/config) or tcp://host:port."""
    field = "host"
    url_credentials(field, host, "remove the password: Docker's ssh:// transport logs in with your SSH key "
                    "(ssh-agent or ~/.ssh/config), so write ssh://user@host", stack)
    if host.startswith("unix://"):
        if not re.fullmatch(r"/[A-Za-z0-9._/-]+", host[len("unix://"):]):
            raise SpecError(field, host, "is not a socket path", "use unix:///var/run/docker.sock", stack=stack)
        return
    parts = urlsplit(host)
    try:
        port = parts.port
    except ValueError:
        port = -1
    name = parts.hostname or ""
    ok_host = (HOSTNAME.fullmatch(name) or _is_ip(name)) and not name.startswith("-")
    ok_user = parts.username is None or re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}", parts.username)
    if not ok_host or not ok_user or port == -1 or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SpecError(field, host, "is not a Docker daemon address",
                        "use ssh://user@gpu-host[:port] or tcp://host:2376 (a host name or IP, no options or paths)",
                        stack=stack)
    if parts.scheme == "tcp" and port is None:
        raise SpecError(field, host, "tcp:// needs a port", "use tcp://host:2376", stack=stack)


_FIELDS = [f for f in StackSpec.model_fields if f not in ("stack", "secrets_set")]  # the config keys


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(choices))}"


def _keys_at(model: type[BaseModel], path: list[str]) -> list[str]:
    """The keys a stack may write at `path` below `model` (a section's fields; at the top, with the secrets)."""
    for name in path:
        field = model.model_fields[name]
        model = next(a for a in (field.annotation, *typing.get_args(field.annotation))
                     if isinstance(a, type) and issubclass(a, BaseModel))
    if model is StackSpec:
        return _FIELDS + list(C.SECRET_KEYS)
    return list(model.model_fields)
def _is_secure(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"}


# A fix for each pydantic error type a stack file meets ("see the allowed values above" had nothing above).
_VALIDATION_FIXES = {
    "int_parsing": "write a whole number without a unit, e.g. 32768 (not 32k)",
    "int_from_float": "write a whole number, e.g. 32768",
    "int_type": "write a whole number, e.g. 32768",
    "float_parsing": "write a number, e.g. 0.9",
    "float_type": "write a number, e.g. 0.9",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": "write it as text (quote it in YAML if it looks like a number)",
    "list_type": "write a YAML list, one `- item` per line",
    "dict_type": "write a YAML mapping of `key: value` lines",
    "model_type": "write the section as a YAML mapping of `key: value` lines under it",
}


def spec_error(exc: ValidationError, model: type[BaseModel], stack: str | None) -> SpecError:
    """The one translation of pydantic's errors into a SpecError naming the field, the value and the fix. An
    unknown key is named first (a misspelt key is the likely cause of the rest), then a wrong type, then a
    rule of the validators (their SpecError, its field placed under the section it came from)."""
    def rank(e: Mapping[str, Any]) -> int:
        return 0 if e["type"] == "extra_forbidden" else 2 if isinstance(e.get("ctx", {}).get("error"), SpecError) else 1

    first = min(exc.errors(), key=rank)  # the first error of the best rank
    path = [str(p) for p in first["loc"]]
    loc = ".".join(path)
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, SpecError):
        return SpecError(".".join([*path, cause.field]), cause.value, cause.problem, cause.fix, stack=cause.stack or stack)
    if first["type"] == "extra_forbidden":
        return SpecError(loc, "...", "unknown key", did_you_mean(path[-1], _keys_at(model, path[:-1])), stack=stack)
    value = first.get("input")
    fix = _VALIDATION_FIXES.get(first["type"], "see the key's type and values in the README's Stack key reference")
    if first["type"] in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        fix = f"use a value {first['msg'].removeprefix('Input should be ')}"
    if loc == "gpu" and model is StackSpec:
        close = difflib.get_close_matches(str(value), gpu_ids(), n=1, cutoff=0.6)
        fix = (f"did you mean {close[0]!r}? " if close else "") + f"use one of {', '.join(gpu_ids())} or auto " \
            "(gpu: auto also plans a GPU the catalogue lacks; see the README, Adding a GPU)"
    elif first["type"] == "literal_error":
        fix = f"use one of {first['ctx']['expected']}"
    elif first["type"] == "missing":
        fix = f"add `{C.CONFIG_NAMESPACE}:{loc}` to the stack file"
    return SpecError(loc, value, first["msg"].removeprefix("Value error, ").lower(), fix, stack=stack)


def load_spec(config: Mapping[str, Any], stack: str = "", *, secrets_are_resolved: bool = False) -> StackSpec:
    """Build a StackSpec from a config mapping with bare keys ("backend", not "gptoss-stacks:backend").

    Secret keys must be Pulumi `secure:` values in stack files; with `secrets_are_resolved=True`
    (inside a running Pulumi program, where the engine has decrypted them) any value counts as set.
    Their values never enter the spec: only which keys are set.
    """
    secrets_set = set()
    plain: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("stack", "secrets_set"):  # fields the reader sets, not config keys
            raise SpecError(key, "...", "unknown key", did_you_mean(key, _FIELDS + list(C.SECRET_KEYS)), stack=stack or None)
        if key in C.SECRET_KEYS:
            if value in (None, ""):
                continue
            if not secrets_are_resolved and not _is_secure(value):
                raise SpecError(key, "<plaintext hidden>", "a secret is stored in plain text in the stack file",
                                f"delete the plain value from the stack file, then {set_config_fix(key, stack)}", stack=stack or None)
            secrets_set.add(key)
        elif _is_secure(value) and key in _FIELDS:
            raise SpecError(key, "<secure>", "is not a secret setting, but is stored as one",
                            f"store it in plain text; secrets are {', '.join(C.SECRET_KEYS)}", stack=stack or None)
        else:
            plain[key] = value
    return StackSpec(stack=stack, secrets_set=frozenset(secrets_set), **plain)
