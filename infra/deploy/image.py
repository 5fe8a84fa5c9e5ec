"""The engine image: `pulumi_docker_build.Image` from `images/<backend>/Dockerfile`, as the launch
plan's `image` section describes it (base image + digest, engine version, repository, tag, push).

The Dockerfile wants an assembled context (infra/ minus host-side packages, the Harmony encodings,
the Dockerfile): `images/build.py` owns that layout and the build-arg names, and we call its
`assemble_context` / `build_args` rather than repeat them. The context is written to
`build/image-context/<backend>/` on every run (deterministic, so an unchanged tree is no rebuild).

Pushed: built where `pulumi up` runs, pushed with the registry credentials (password from the
`registry_password` config secret), inline build cache in the pushed image, and deployed by
`ref` = tag@digest. Not pushed (the `local` stack): built by the daemon that will run it and
loaded there, deployed by tag (the digest still replaces the container on a rebuild).
"""
from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pulumi
import pulumi_docker_build as docker_build

from infra import constants as C
from infra.spec import SpecError, set_config_fix

IMAGES_DIR = C.REPO_ROOT / "images"
CONTEXT_ROOT = C.REPO_ROOT / "build" / "image-context"
# Registries on this machine: pushing there needs no credentials.
LOCAL_REGISTRY_HOSTS = C.LOOPBACK_HOSTS


@dataclass(frozen=True)
class ImageSettings:
    """Everything about the image, resolved from the plan (pure data, no Pulumi)."""

    backend: str
    name: str                   # [registry/]repository:tag
    registry: str | None
    push: bool
    context: Path
    dockerfile: Path
    build_args: dict[str, str]
    cache_ref: str | None       # where the build cache is read from (pushed images only)
    platform: str               # linux/amd64: every catalogued GPU host is x86_64

    @property
    def registry_host(self) -> str | None:
        return self.registry.split("/")[0] if self.registry else None


@lru_cache(maxsize=None)
def load_build_script(path: Path, module_name: str) -> ModuleType:
    """An image's build.py (a script, not a package), imported by path, once per path."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it defines the image build context and build args")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def images_build_module(images_dir: Path = IMAGES_DIR) -> ModuleType:
    """images/build.py: the engine images' context layout and build args."""
    return load_build_script(images_dir / "build.py", "gptoss_images_build")


def assemble_context(backend: str, context_root: Path = CONTEXT_ROOT, images_dir: Path = IMAGES_DIR) -> Path:
    """Write the build context for `backend` (images/build.py's layout) and return its directory."""
    dest = context_root / backend
    if dest.exists():
        shutil.rmtree(dest)  # files removed from infra/ must leave the context too
    return Path(images_build_module(images_dir).assemble_context(dest, backend))


def image_settings(spec, plan, images_dir: Path = IMAGES_DIR, context_root: Path = CONTEXT_ROOT) -> ImageSettings:
    img = plan.image
    repository = f"{img['registry']}/{img['repository']}" if img.get("registry") else img["repository"]
    builder = images_build_module(images_dir)
    # Build args exactly as images/build.py makes them, from the plan's resolved base and digest.
    build_args = builder.build_args(
        plan.backend, img["platform"], base=img["base_image"], digest=img.get("base_digest") or "",
        allow_unpinned=bool(spec.image.allow_unpinned_base),
        download_encodings=not all((builder.ENCODINGS_DIR / name).is_file() for name in builder.ENCODINGS),
    )
    context = context_root / plan.backend
    return ImageSettings(
        backend=plan.backend,
        name=f"{repository}:{img['tag']}",
        registry=img.get("registry"),
        push=bool(img["push"]),
        context=context,
        dockerfile=context / "Dockerfile",
        build_args=dict(sorted(build_args.items())),
        # The pushed tag carries its own (inline) cache; unpushed builds reuse the daemon's cache.
        cache_ref=f"{repository}:{img['tag']}" if img["push"] else None,
        platform="linux/amd64",
    )


def validate_image(spec, plan) -> None:
    """Refusals about the image, before any resource exists (the registry password: spec.check_deploy_secrets)."""
    img = plan.image
    if not img.get("base_digest") and not spec.image.allow_unpinned_base:
        # Refused here, not by the image build: that would first pull a 20 GB base.
        raise SpecError("image.base_digest", None,
                        f"base image {img['base_image']} has no digest in infra/catalogue/images.lock.yaml, and an "
                        "unpinned base is not allowed",
                        "run `invoke lock-images` and commit infra/catalogue/images.lock.yaml (or set image.base_digest: "
                        "sha256:..., or image.allow_unpinned_base: true for a workstation)", stack=spec.stack or None)
    if img["push"] and img.get("registry"):
        host = urlsplit("//" + img["registry"]).hostname or ""
        if host not in LOCAL_REGISTRY_HOSTS and not spec.image.registry_username:
            raise SpecError("image.registry_username", None,
                            f"pushing to {img['registry']} needs registry credentials",
                            f"set image.registry_username and {set_config_fix('registry_password', spec.stack)} "
                            "(or image.push: false to build on the Docker host)",
                            stack=spec.stack or None)


def image_warnings(spec, plan) -> list[str]:
    img = plan.image
    if not img.get("base_digest"):
        return [f"base image {img['base_image']} is not pinned by digest (image.allow_unpinned_base): the build uses "
                "whatever the tag points at today; `invoke lock-images` pins it"]
    return []


def _relative(path: Path) -> str:
    # Relative to the project root (pulumi's working directory): state and diffs must not depend
    # on where the checkout lives.
    try:
        return path.relative_to(C.REPO_ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def build_image(name: str, settings: ImageSettings, *, registry_username: str | None,
                registry_password: pulumi.Output[str] | None, build_host: str | None,
                parent: pulumi.Resource, labels: dict[str, str]) -> docker_build.Image:
    opts = pulumi.ResourceOptions(
        parent=parent,
        # Pushed tags are shared by every stack on the same backend/platform: never delete them.
        retain_on_delete=True,
    )
    if build_host is not None:
        # Unpushed images must be built by the daemon that runs them (the ssh:// host included).
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            provider=docker_build.Provider(f"{name}-builder", host=build_host, opts=pulumi.ResourceOptions(parent=parent))))

    registries = None
    if settings.push and settings.registry and registry_password is not None:
        registries = [docker_build.RegistryArgs(address=settings.registry_host, username=registry_username or "",
                                                password=registry_password)]
    cache_from = cache_to = None
    if settings.cache_ref:
        # Inline cache (metadata in the pushed image itself), read back from that same tag: the
        # only registry cache the default `docker` buildx driver can export (type=registry needs
        # a docker-container builder or the containerd image store). The Dockerfile is one
        # stage, so inline's min mode loses nothing.
        cache_from = [docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=settings.cache_ref))]
        cache_to = [docker_build.CacheToArgs(inline=docker_build.CacheToInlineArgs())]

    return docker_build.Image(
        name,
        context=docker_build.BuildContextArgs(location=_relative(settings.context)),
        dockerfile=docker_build.DockerfileArgs(location=_relative(settings.dockerfile)),
        build_args=settings.build_args,
        platforms=[docker_build.Platform(settings.platform)],
        tags=[settings.name],
        labels=dict(sorted(labels.items())),
        push=settings.push,
        # Unpushed: load into the daemon's image store so the container can use it.
        load=not settings.push,
        registries=registries,
        cache_from=cache_from,
        cache_to=cache_to,
        # A 20 GB engine image must not be built by `pulumi preview`.
        build_on_preview=False,
        opts=opts,
    )
