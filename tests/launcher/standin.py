"""A stand-in base image for the Docker tests (Docker Hub is not reachable here).

It plays the part of vllm/vllm-openai or lmsysorg/sglang for everything the image layer relies on:
a python3 with pydantic, PyYAML, jinja2 and pynvml, /etc/passwd, /tmp. It is the interpreter running
these tests, copied with its stdlib, those four packages (and their dependencies) and every shared
library they link, into a tarball that `docker import` turns into an image. No engine is in it: the
tests run the launcher with --dry-run.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

PACKAGES = ("pydantic", "pydantic_core", "annotated_types", "typing_extensions", "typing_inspection",
            "yaml", "_yaml", "jinja2", "markupsafe", "pynvml")
STDLIB_SKIP = {"test", "site-packages", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
               "__pycache__", "config-3.11-x86_64-linux-gnu", "pydoc_data"}


def _package_paths() -> list[Path]:
    out = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            out += [Path(p) for p in spec.submodule_search_locations]
        elif spec.origin:
            out.append(Path(spec.origin))
    return out


def _base_site_packages(exe: Path) -> Path:
    """The site-packages the bare interpreter searches: in the image it runs without this run's virtualenv,
    so packages found in a venv must land where the base interpreter looks, not at the venv's path."""
    r = subprocess.run([str(exe), "-I", "-c", "import site; print(site.getsitepackages()[0])"],
                       capture_output=True, text=True, check=True)
    return Path(r.stdout.strip())


def _libs(elf_files: list[Path]) -> set[Path]:
    """Shared libraries (and the loader) the given ELF files need, per ldd."""
    found: set[Path] = set()
    for f in elf_files:
        r = subprocess.run(["ldd", str(f)], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            parts = line.split()
            for p in parts:
                if p.startswith("/") and os.path.exists(p):
                    found.add(Path(p))
    return found


def _files() -> list[tuple[Path, Path]]:
    """(host path, path in image) pairs."""
    exe = Path(os.path.realpath(sys.executable))
    prefix = Path(sys.base_prefix)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    pairs: list[tuple[Path, Path]] = [(exe, exe)]
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = [d for d in dirs if d not in STDLIB_SKIP]
        for fn in files:
            p = Path(root) / fn
            pairs.append((p, p))
    site = _base_site_packages(exe)
    for pkg in _package_paths():
        if pkg.is_dir():
            for root, dirs, files in os.walk(pkg):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                for fn in files:
                    p = Path(root) / fn
                    pairs.append((p, site / p.relative_to(pkg.parent)))
        else:
            pairs.append((pkg, site / pkg.name))
    elves = [h for h, _ in pairs if h.suffix == ".so" or h == exe]
    libdir = prefix / "lib"
    for lib in _libs(elves):
        real = Path(os.path.realpath(lib))
        pairs.append((real, lib))
    for so in libdir.glob("libpython3*.so*"):
        pairs.append((Path(os.path.realpath(so)), so))
    return pairs


def build_rootfs_tar(out: Path) -> str:
    """Write the rootfs tarball; returns a content hash (to reuse an already imported image)."""
    pairs = sorted({inside: host for host, inside in _files()}.items())
    pairs = [(host, inside) for inside, host in pairs]
    exe = Path(os.path.realpath(sys.executable))
    digest = hashlib.sha256()
    with tarfile.open(out, "w") as tar:
        seen_dirs: set[str] = set()

        def add_dir(path: str, mode: int = 0o755):
            if path in seen_dirs:
                return
            seen_dirs.add(path)
            ti = tarfile.TarInfo(path.lstrip("/"))
            ti.type, ti.mode = tarfile.DIRTYPE, mode
            tar.addfile(ti)

        for d in ("/bin", "/usr", "/usr/bin", "/usr/local", "/usr/local/bin", "/etc", "/home", "/root",
                  "/opt", "/run", "/var", "/dev", "/proc", "/sys"):
            add_dir(d)
        add_dir("/tmp", 0o1777)
        for host, inside in pairs:
            for parent in reversed(inside.parents):
                if str(parent) != "/":
                    add_dir(str(parent))  # 0755 all the way, so the unprivileged user can run python
            ti = tar.gettarinfo(str(host), arcname=str(inside).lstrip("/"))
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            ti.mode |= 0o444
            with open(host, "rb") as fh:
                tar.addfile(ti, fh)
            digest.update(str(inside).encode())
            digest.update(str(ti.size).encode())
        for link, target in (("/usr/bin/python3", str(exe)), ("/usr/local/bin/python3", str(exe))):
            ti = tarfile.TarInfo(link.lstrip("/"))
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            tar.addfile(ti)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
                           ("etc/group", "root:x:0:\nnogroup:x:65534:\n")):
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))
            digest.update(data)
    return digest.hexdigest()[:16]
