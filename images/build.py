#!/usr/bin/env python3
"""Build the gptoss-vllm / gptoss-sglang images.

    python images/build.py --backend vllm [--platform cuda|blackwell|rocm] [--tag NAME] [--dry-run]

- The base image and digest come from infra/catalogue/images.yaml (one source of truth) unless given.
  Without a digest the build is refused unless --allow-unpinned-base (the Dockerfile refuses too).
- The build context is assembled in a temp dir with only what the image needs: the launcher and the
  core it imports (infra/ minus Pulumi/task code), the Harmony encodings and the Dockerfile. No .git,
  no stack files, no secrets: nothing secret is ever a build arg either.
- Offline builds: run images/fetch_encodings.py once (or put the two .tiktoken files in
  images/encodings/); otherwise pass --download-encodings so the build fetches them (checksum-verified).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra import constants as C  # noqa: E402
from infra.catalogue import platform_image, platforms  # noqa: E402
from infra.launcher.encodings import ENCODINGS  # noqa: E402

IMAGES = ROOT / "images"
ENCODINGS_DIR = IMAGES / "encodings"
# Packages the image does not need (they import pulumi or are host-side tooling).
# flagcheck stays: its committed parser snapshots are the allow-list the plan checks extra_args against.
EXCLUDE = {"deploy", "tasks", "endpoint", "__pycache__"}
PLATFORMS = platforms()  # images.yaml's base-image families
base_for = platform_image  # (backend, platform) -> the catalogue's base image row


def assemble_context(dest: Path, backend: str, encodings_dir: Path = ENCODINGS_DIR) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "infra", dest / "infra",
                    ignore=lambda d, names: [n for n in names if n in EXCLUDE or n.endswith(".pyc")])
    (dest / "encodings").mkdir(exist_ok=True)
    for name in ENCODINGS:
        src = encodings_dir / name
        if src.is_file():
            shutil.copy2(src, dest / "encodings" / name)
    shutil.copy2(IMAGES / backend / "Dockerfile", dest / "Dockerfile")
    return dest


def build_args(backend: str, platform: str, *, base: str | None = None, digest: str | None = None,
               allow_unpinned: bool = False, with_ssh: bool = True, download_encodings: bool = False,
               runtime_user: str = "root", vcs_ref: str | None = None) -> dict[str, str]:
    cat = base_for(backend, platform)
    args = {
        "BASE_IMAGE": base or f"{cat['image']}:{cat['tag']}",
        "BASE_DIGEST": digest if digest is not None else (cat.get("digest") or "") if base is None else "",
        "PLATFORM": platform,
        "ENGINE_VERSION": C.ENGINE_VERSIONS[backend],
        "WITH_SSH": "1" if with_ssh else "0",
        "TIKTOKEN_DOWNLOAD": "1" if download_encodings else "0",
        "RUNTIME_USER": runtime_user,
    }
    if allow_unpinned:
        args["ALLOW_UNPINNED_BASE"] = "1"
    if vcs_ref:
        args["VCS_REF"] = vcs_ref
    return args


def docker_build_cmd(context: Path, tag: str, args: dict[str, str], docker: str = "docker") -> list[str]:
    cmd = [docker, "build", "-t", tag]
    for k, v in args.items():
        cmd += ["--build-arg", f"{k}={v}"]
    return cmd + [str(context)]


def _git_ref() -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        return r.stdout.strip() or None
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=C.BACKENDS, required=True)
    ap.add_argument("--platform", choices=PLATFORMS, default="cuda")
    ap.add_argument("--tag", help="image name:tag (default gptoss-<backend>:<version>-<platform>)")
    ap.add_argument("--base-image", help="override the catalogue base (name:tag)")
    ap.add_argument("--base-digest", help="sha256:... for --base-image")
    ap.add_argument("--allow-unpinned-base", action="store_true", help="build from a tag without a digest")
    ap.add_argument("--no-ssh", action="store_true", help="no openssh-server; the image runs as uid 10001 (no root)")
    ap.add_argument("--download-encodings", action="store_true", help="let the build fetch the .tiktoken files")
    ap.add_argument("--docker", default="docker")
    ap.add_argument("--dry-run", action="store_true", help="print the docker command and exit")
    a = ap.parse_args(argv)
    args = build_args(a.backend, a.platform, base=a.base_image, digest=a.base_digest,
                      allow_unpinned=a.allow_unpinned_base, with_ssh=not a.no_ssh,
                      download_encodings=a.download_encodings,
                      runtime_user="gptoss" if a.no_ssh else "root", vcs_ref=_git_ref())
    if not args["BASE_DIGEST"] and not a.allow_unpinned_base:
        print(f"error: {args['BASE_IMAGE']} has no digest in infra/catalogue/images.yaml; pass --base-digest sha256:... "
              "or --allow-unpinned-base", file=sys.stderr)
        return 2
    missing = [n for n in ENCODINGS if not (ENCODINGS_DIR / n).is_file()]
    if missing and not a.download_encodings:
        print(f"error: {', '.join(missing)} not in {ENCODINGS_DIR}: run python images/fetch_encodings.py "
              "or pass --download-encodings", file=sys.stderr)
        return 2
    tag = a.tag or f"gptoss-{a.backend}:{C.ENGINE_VERSIONS[a.backend]}-{a.platform}"
    with tempfile.TemporaryDirectory(prefix="gptoss-build-") as tmp:
        ctx = assemble_context(Path(tmp) / "ctx", a.backend)
        cmd = docker_build_cmd(ctx, tag, args, a.docker)
        print(" ".join(cmd))
        if a.dry_run:
            return 0
        return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
