#!/usr/bin/env python3
"""Build the gptoss-toolserver image (the python tool server, infra/toolserver).

    python images/toolserver/build.py [--tag NAME] [--base-image NAME:TAG --base-digest sha256:...]
                                      [--allow-unpinned-base] [--python-version 3.12] [--dry-run]

- The base and its digest come from infra/catalogue/images.yaml (`toolserver: python`) and images.lock.yaml;
  without a digest the build is refused unless --allow-unpinned-base (the Dockerfile refuses too).
- The Python dependencies are images/toolserver/requirements.txt (mcp and its whole closure, pinned), installed
  here as wheels for the base's Python (--python-version) into the context's site/: the image build itself
  needs no network, pip or compiler.
- The context: infra/ minus Pulumi/task code (as for the engine images), site/, the Dockerfile. No secrets.
"""
from __future__ import annotations

import argparse
import importlib.util
import platform as _platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# images/build.py (the engine images' context layout and docker command), by path: this file is `build` too.
_spec = importlib.util.spec_from_file_location("gptoss_engine_image_build", HERE.parent / "build.py")
engine_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_build)  # puts the repo root on sys.path

from infra import builtin_tools as BT  # noqa: E402
from infra import constants as C  # noqa: E402

REQUIREMENTS = HERE / "requirements.txt"
base = BT.toolserver_base  # the catalogue row + its locked digest


def default_tag() -> str:
    return f"{C.TOOLSERVER_IMAGE}:{BT.image_tag()}"


def python_version() -> str:
    """The base's CPython (the wheels' ABI): the leading X.Y of its tag (3.12-slim-bookworm -> 3.12)."""
    import re

    found = re.match(r"(\d+\.\d+)", base()["tag"])
    if not found:
        raise ValueError(f"toolserver base tag {base()['tag']!r} does not start with its Python version (X.Y)")
    return found.group(1)


def install_site(dest: Path, python_version: str, machine: str | None = None, pip: list[str] | None = None) -> Path:
    """The pinned requirements as wheels for CPython python_version on Linux/machine, into dest (--target)."""
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[
        (machine or _platform.machine()).lower()]
    cmd = [*(pip or [sys.executable, "-m", "pip"]), "install", "--quiet", "--disable-pip-version-check",
           "--no-deps", "--only-binary=:all:", "--target", str(dest), "--python-version", python_version,
           "--implementation", "cp", "--platform", f"manylinux2014_{arch}", "--platform", f"manylinux_2_28_{arch}",
           "--platform", f"manylinux_2_17_{arch}", "-r", str(REQUIREMENTS)]
    subprocess.run(cmd, check=True)
    return dest


def assemble_context(dest: Path, python_version: str, site: Path | None = None, install: bool = True) -> Path:
    """The context: infra/ (as for the engine images), the Dockerfile, site/ = `site` copied, else the requirements
    installed (install), else left empty (a context for hashing or a preview, not for a build)."""
    engine_build.assemble_context(dest, "toolserver", encodings_dir=dest / "no-encodings")
    if site is None and not install:
        (dest / "site").mkdir()
    elif site is None:
        install_site(dest / "site", python_version)
    else:
        import shutil

        shutil.copytree(site, dest / "site")
    return dest


def build_args(*, base_image: str | None = None, digest: str | None = None, allow_unpinned: bool = False,
               vcs_ref: str | None = None) -> dict[str, str]:
    cat = base()
    args = {"BASE_IMAGE": base_image or f"{cat['image']}:{cat['tag']}",
            "BASE_DIGEST": digest if digest is not None else (cat.get("digest") or "") if base_image is None else ""}
    if allow_unpinned:
        args["ALLOW_UNPINNED_BASE"] = "1"
    if vcs_ref:
        args["VCS_REF"] = vcs_ref
    return args


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tag", default=None, help="image name:tag (default gptoss-toolserver:<version>-<content hash>)")
    ap.add_argument("--base-image", help="override the catalogue base (name:tag)")
    ap.add_argument("--base-digest", help="sha256:... for --base-image")
    ap.add_argument("--allow-unpinned-base", action="store_true", help="build from a tag without a digest")
    ap.add_argument("--python-version", default=None, help="the base image's CPython (the wheels' ABI; default: its tag's)")
    ap.add_argument("--docker", default="docker")
    ap.add_argument("--dry-run", action="store_true", help="print the docker command and exit")
    a = ap.parse_args(argv)
    a.tag, a.python_version = a.tag or default_tag(), a.python_version or python_version()
    args = build_args(base_image=a.base_image, digest=a.base_digest, allow_unpinned=a.allow_unpinned_base,
                      vcs_ref=engine_build._git_ref())
    if not args["BASE_DIGEST"] and not a.allow_unpinned_base:
        print(f"error: {args['BASE_IMAGE']} has no digest in infra/catalogue/images.lock.yaml; run `invoke lock-images`, "
              "pass --base-digest sha256:... or --allow-unpinned-base", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gptoss-toolserver-") as tmp:
        ctx = Path(tmp) / "ctx"
        if a.dry_run:
            ctx.mkdir()
        else:
            assemble_context(ctx, a.python_version)
        cmd = engine_build.docker_build_cmd(ctx, a.tag, args, a.docker)
        print(" ".join(cmd))
        return 0 if a.dry_run else subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
