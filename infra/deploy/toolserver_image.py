"""The python tool server's image (issue 22), built and pinned like the engine image (infra/deploy/image.py).

`images/toolserver/build.py` owns the context layout (infra/ minus host-side packages, site/, the Dockerfile) and
the build args; we call it, as image.py calls images/build.py. The context is written to
`build/image-context/toolserver/`; the tag is `<project version>-<hash of what the image runs>`
(infra.builtin_tools.image_tag), never `latest`. Same registry, push, credentials and build host as the engine
image; deployed by `ref` (tag@digest) when pushed, by tag when loaded into the Docker host's daemon.

site/ (the pinned requirements as wheels, `pip install --target` from PyPI) is cached under
`build/toolserver-site/<hash of requirements.txt, Python, arch>/` and installed only when the image is really
built: not by `pulumi preview` (build_on_preview=False builds nothing), and not when the program is told not to
fetch (GptOssDeploymentArgs.fetch_build_inputs: the tests' harness, which has no PyPI).
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

import pulumi

from infra import builtin_tools as BT
from infra import constants as C
from infra.deploy.image import CONTEXT_ROOT, IMAGES_DIR, ImageSettings, load_build_script
from infra.spec import SpecError

NAME = "toolserver"  # its directory under images/ and under the context root
SITE_CACHE = C.REPO_ROOT / "build" / "toolserver-site"
MACHINE = "x86_64"   # = ImageSettings.platform linux/amd64: every catalogued GPU host is x86_64


def toolserver_build_module(images_dir: Path = IMAGES_DIR) -> ModuleType:
    """images/toolserver/build.py: the tool server's context layout and build args."""
    return load_build_script(images_dir / NAME / "build.py", "gptoss_toolserver_image_build")


def validate_toolserver_image(spec, plan=None) -> None:
    """A stack that runs the tool server refuses its unpinned base as validate_image refuses the engine's."""
    if not BT.runs_tool_server(spec) or spec.image.allow_unpinned_base:
        return
    base = BT.toolserver_base()
    if not base["digest"]:
        raise SpecError("builtin_tools.python.enabled", True,
                        f"the python tool server's base image {base['image']}:{base['tag']} has no digest in "
                        "infra/catalogue/images.lock.yaml, and an unpinned base is not allowed",
                        "run `invoke lock-images` and commit infra/catalogue/images.lock.yaml (or set "
                        "image.allow_unpinned_base: true for a workstation, or builtin_tools.python.address to a tool "
                        "server of your own)", stack=spec.stack or None)


def toolserver_warnings(spec) -> list[str]:
    base = BT.toolserver_base()
    if BT.runs_tool_server(spec) and not base["digest"]:
        return [f"the python tool server's base image {base['image']}:{base['tag']} is not pinned by digest "
                "(image.allow_unpinned_base): `invoke lock-images` pins it"]
    return []


def toolserver_settings(spec, plan, images_dir: Path = IMAGES_DIR, context_root: Path = CONTEXT_ROOT) -> ImageSettings:
    """The engine image's registry and push (the plan's `image` section), the tool server's name, tag and args."""
    img = plan.image
    base = BT.toolserver_base()
    repository = f"{img['registry']}/{C.TOOLSERVER_IMAGE}" if img.get("registry") else C.TOOLSERVER_IMAGE
    tag = BT.image_tag(base)
    build_args = toolserver_build_module(images_dir).build_args(
        base_image=f"{base['image']}:{base['tag']}", digest=base["digest"] or "",
        allow_unpinned=bool(spec.image.allow_unpinned_base))
    context = context_root / NAME
    return ImageSettings(
        backend=NAME, name=f"{repository}:{tag}", registry=img.get("registry"), push=bool(img["push"]),
        context=context, dockerfile=context / "Dockerfile", build_args=dict(sorted(build_args.items())),
        cache_ref=f"{repository}:{tag}" if img["push"] else None, platform="linux/amd64")


def site_cache_dir(images_dir: Path = IMAGES_DIR, cache_root: Path = SITE_CACHE) -> Path:
    """Where site/ for the pinned requirements is kept: keyed by requirements.txt's bytes, the Python and the arch."""
    builder = toolserver_build_module(images_dir)
    key = hashlib.sha256(builder.REQUIREMENTS.read_bytes() + f"\0{builder.python_version()}\0{MACHINE}".encode())
    return cache_root / key.hexdigest()[:16]


def fill_site_cache(images_dir: Path = IMAGES_DIR, cache_root: Path = SITE_CACHE) -> Path:
    """Install the requirements into the cache once (into a temp dir renamed into place: never half a site)."""
    dest = site_cache_dir(images_dir, cache_root)
    if dest.is_dir():
        return dest
    builder = toolserver_build_module(images_dir)
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_root, prefix=".site-"))
    try:
        builder.install_site(tmp / "site", builder.python_version(), machine=MACHINE)
        try:
            (tmp / "site").rename(dest)
        except OSError:
            if not dest.is_dir():  # else another `pulumi up` filled it meanwhile: same requirements, same site
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def assemble_toolserver_context(context_root: Path = CONTEXT_ROOT, images_dir: Path = IMAGES_DIR, *,
                                install: bool, cache_root: Path = SITE_CACHE) -> Path:
    """Write the context (images/toolserver/build.py's layout); site/ from the cache, filled first when `install`."""
    dest = context_root / NAME
    if dest.exists():
        shutil.rmtree(dest)  # files removed from infra/ must leave the context too
    site = fill_site_cache(images_dir, cache_root) if install else site_cache_dir(images_dir, cache_root)
    builder = toolserver_build_module(images_dir)
    return Path(builder.assemble_context(dest, builder.python_version(), site=site if site.is_dir() else None,
                                         install=False))
