"""`invoke lock-images`: resolve each base image tag of infra/catalogue/images.yaml to the digest its
registry serves now, and write infra/catalogue/images.lock.yaml (committed; builds and deploys read
the digests from there through `infra.catalogue.base_image`).

Only the registry's HTTP API (the OCI distribution spec) is used, no Docker daemon:

    HEAD /v2/<repository>/manifests/<tag>   Accept: OCI index, Docker manifest list, then single manifests
      -> 200 with `Docker-Content-Digest` (the digest of the multi-platform index when there is one,
         which is what `FROM name@digest` needs to keep picking the right platform)
      -> 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`: fetch an anonymous token
         from the realm (Docker Hub: auth.docker.io; GHCR: ghcr.io/token) and ask again with it. The realm
         is followed only on the registry's own origin or its entry in TOKEN_HOSTS, never redirected.

A registry that does not send the header gets a GET, and the digest is the sha256 of the bytes served,
pinned only when they are a v2 manifest or index (and match the registry's `Docker-Content-Digest`).
The whole run has one deadline (asyncio cancels whatever is in flight when it passes), each response
body is size-capped, and a failed image keeps its previous lock entry (the file is replaced atomically).
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import yaml

from infra import constants as C

DOCKER_HUB = "registry-1.docker.io"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DEFAULT_DEADLINE_S = 60.0
MAX_BODY = 4 * 2**20  # manifests and token answers are a few KB; anything near this is not one
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_LOOPBACK = C.LOOPBACK_HOSTS
# Token services on another host than their registry, from each registry's documentation. Docker Hub:
# registry-1.docker.io sends realm https://auth.docker.io/token (Docker's "Registry authentication"
# reference, docs.docker.com/reference/api/registry/auth). GHCR's realm is its own host (ghcr.io/token)
# and needs no entry. A realm anywhere else could be an internal service the registry wants us to call.
TOKEN_HOSTS = {DOCKER_HUB: ("auth.docker.io",)}
_DEFAULT_PORT = {"http": 80, "https": 443}
LOCK_HEADER = """\
# Base image digests, written by `invoke lock-images` from each registry's answer (do not edit by hand).
# Key: the image:tag of infra/catalogue/images.yaml. Builds pin FROM image:tag@digest; a stack whose
# base has no digest here is refused before anything is created (unless image.allow_unpinned_base).
"""


class LockError(RuntimeError):
    """One image could not be resolved: the message names the image, the registry and why."""


@dataclass(frozen=True)
class ImageRef:
    registry: str      # host[:port] the API is at
    repository: str    # library/ubuntu, lmsysorg/sglang, org/name
    tag: str

    @classmethod
    def parse(cls, ref: str) -> "ImageRef":
        """`[registry/]repository:tag` as Docker reads it: the first part is a registry only when it
        has a dot or a port or is localhost; Docker Hub's one-part names live under library/."""
        if not ref or any(ch.isspace() for ch in ref) or "@" in ref:
            raise LockError(f"image {ref!r}: expected [registry/]repository:tag (no digest, no spaces)")
        name, _, tag = ref.rpartition(":")
        if not name or "/" in tag:
            raise LockError(f"image {ref!r}: no tag (write {ref}:<tag>)")
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, rest
        else:
            registry, repository = DOCKER_HUB, name
        if registry in _HUB_ALIASES:
            registry = DOCKER_HUB
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        if not re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*", repository) or not re.fullmatch(r"[\w][\w.-]{0,127}", tag):
            raise LockError(f"image {ref!r}: not a valid repository/tag")
        return cls(registry, repository, tag)

    @property
    def base_url(self) -> str:
        host = urlsplit("//" + self.registry).hostname or ""
        # Like the Docker daemon: plain HTTP only for a registry on this machine's loopback.
        return f"{'http' if host in _LOOPBACK else 'https'}://{self.registry}"


def parse_challenge(header: str) -> dict[str, str]:
    """`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."`."""
    scheme, _, params = header.strip().partition(" ")
    out = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', params)}
    out["scheme"] = scheme.lower()
    return out


async def _read(response, limit: int = MAX_BODY) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise LockError(f"{response.request.url}: answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _origin(url: str) -> tuple[str, str, int | None]:
    u = urlsplit(url)
    return (u.scheme, (u.hostname or "").lower(), u.port or _DEFAULT_PORT.get(u.scheme))


def check_realm(ref: ImageRef, realm: str) -> str:
    """The realm, if it is on the registry's own origin (plain http only when the registry itself is a loopback
    one) or an https token service TOKEN_HOSTS lists for this registry; else LockError, before any request."""
    try:
        got, own = urlsplit(realm), urlsplit(ref.base_url)
        port = got.port or _DEFAULT_PORT.get(got.scheme)
    except ValueError:
        got = own = port = None
    if got is not None and got.scheme in _DEFAULT_PORT and not got.username and not got.password:
        if (got.scheme, got.hostname, port) == (own.scheme, own.hostname, own.port or _DEFAULT_PORT[own.scheme]):
            return realm
        if got.scheme == "https" and port == 443 and got.hostname in TOKEN_HOSTS.get(ref.registry, ()):
            return realm
    raise LockError(f"{ref.registry}/{ref.repository}: the registry's token realm {realm[:120]!r} is neither on "
                    f"{ref.registry} itself nor its known token service; nothing was sent there. Lock from the "
                    "registry's official host, or add its documented token host to TOKEN_HOSTS in infra/imagelock.py")


async def _token(client, ref: ImageRef, challenge: dict[str, str]) -> str:
    realm = challenge.get("realm")
    if challenge["scheme"] != "bearer" or not realm:
        raise LockError(f"{ref.registry}/{ref.repository}: the registry asks for {challenge['scheme'] or 'unknown'} "
                        "credentials; only public images (anonymous token) can be locked")
    realm = check_realm(ref, realm)
    params = {"scope": challenge.get("scope") or f"repository:{ref.repository}:pull"}
    if challenge.get("service"):
        params["service"] = challenge["service"]
    async with client.stream("GET", realm, params=params, follow_redirects=False) as r:  # a redirect could go anywhere
        body = await _read(r, 256 * 1024)
    if r.status_code != 200:
        raise LockError(f"{ref.registry}/{ref.repository}: anonymous token refused (HTTP {r.status_code}); "
                        "is the image public and the name right?")
    import json

    try:
        data = json.loads(body)
        token = data.get("token") or data.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise LockError(f"{ref.registry}: the token answer has no token")
    return token


def _manifest_digest(ref: ImageRef, body: bytes, headers) -> dict[str, str]:
    """{'digest', 'media_type'} of a GET answer that is a v2 manifest or index; anything else (a login page,
    a schema 1 manifest, bytes the registry's own digest header disagrees with) is refused, never pinned."""
    import json

    where = f"{ref.registry}/{ref.repository}:{ref.tag}"
    media = headers.get("content-type", "").split(";")[0].strip()
    if media not in MANIFEST_TYPES:
        raise LockError(f"{where}: the registry answered {media[:80] or 'no Content-Type'!r}, not a manifest "
                        "(OCI or Docker v2); check the image name and that the registry serves the OCI API")
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise LockError(f"{where}: the {media} answer is not JSON; check the image name and the registry")
    if type(doc.get("schemaVersion")) is not int or doc["schemaVersion"] != 2:
        raise LockError(f"{where}: schemaVersion {str(doc.get('schemaVersion'))[:20]!r}, not 2; only v2 manifests "
                        "and indexes can be pinned (push the image with a current Docker or OCI client)")
    if doc.get("mediaType", media) != media:
        raise LockError(f"{where}: the manifest's mediaType {str(doc['mediaType'])[:80]!r} is not its Content-Type "
                        f"{media!r}; the registry answered inconsistently, try again or report it")
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    claimed = headers.get("docker-content-digest", "").strip()
    if claimed and claimed != digest:
        raise LockError(f"{where}: Docker-Content-Digest {claimed[:80]!r} is not the sha256 of the manifest served "
                        f"({digest}); the answer was altered or truncated, try again")
    return {"digest": digest, "media_type": media}


async def resolve(client, ref: ImageRef) -> dict[str, str]:
    """{'digest', 'media_type'} of ref's manifest (index first) as its registry serves it now."""
    url = f"{ref.base_url}/v2/{ref.repository}/manifests/{ref.tag}"
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    for attempt in range(2):
        r = await client.head(url, headers=headers)
        if r.status_code == 401 and attempt == 0:
            headers["Authorization"] = "Bearer " + await _token(client, ref, parse_challenge(r.headers.get("www-authenticate", "")))
            continue
        break
    if r.status_code == 404:
        raise LockError(f"{ref.registry}/{ref.repository}:{ref.tag}: no such tag (HTTP 404)")
    if r.status_code == 405 or (r.status_code == 200 and not r.headers.get("docker-content-digest")):
        # No HEAD, or no digest header: the digest is the sha256 of the manifest bytes.
        async with client.stream("GET", url, headers=headers) as g:
            body = await _read(g)
        if g.status_code != 200:
            raise LockError(f"{ref.registry}/{ref.repository}:{ref.tag}: HTTP {g.status_code}")
        return _manifest_digest(ref, body, g.headers)
    if r.status_code != 200:
        raise LockError(f"{ref.registry}/{ref.repository}:{ref.tag}: HTTP {r.status_code}")
    digest = r.headers["docker-content-digest"].strip()
    if not _DIGEST.fullmatch(digest):
        raise LockError(f"{ref.registry}/{ref.repository}:{ref.tag}: the registry sent digest {digest[:80]!r}, "
                        "not sha256:<64 hex>")
    media = r.headers.get("content-type", "").split(";")[0].strip()
    if media and media not in MANIFEST_TYPES:
        raise LockError(f"{ref.registry}/{ref.repository}:{ref.tag}: unexpected manifest type {media[:80]!r}")
    return {"digest": digest, "media_type": media}


async def resolve_all(refs: Iterable[str], *, deadline_s: float = DEFAULT_DEADLINE_S, transport=None,
                      on_result: Callable[[str, dict[str, str] | None, str | None], None] | None = None
                      ) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Resolve every ref concurrently under one overall deadline. Returns (resolved, errors)."""
    import httpx

    refs = list(dict.fromkeys(refs))
    resolved: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    per_request = httpx.Timeout(min(20.0, deadline_s), connect=min(10.0, deadline_s))
    origins = set()
    for ref in refs:
        try:
            parsed = ImageRef.parse(ref)
            origins.add(_origin(parsed.base_url))
            origins.update(("https", host, 443) for host in TOKEN_HOSTS.get(parsed.registry, ()))  # check_realm's
        except LockError:
            pass  # reported by one() below

    async def same_registries(request) -> None:
        # A manifest request may be redirected (max 5) but only to a registry being locked: never to another
        # host on the network, a cloud metadata address or a service on this machine.
        if _origin(str(request.url)) not in origins:
            raise LockError(f"a registry redirected to {str(request.url)[:120]!r}, which is not one of the "
                            "registries being locked; nothing was sent there. Lock from the registry's own host")

    async with httpx.AsyncClient(timeout=per_request, follow_redirects=True, max_redirects=5,
                                 transport=transport, trust_env=False,
                                 event_hooks={"request": [same_registries]}) as client:
        async def one(ref: str) -> None:
            try:
                resolved[ref] = await resolve(client, ImageRef.parse(ref))
            except LockError as exc:
                errors[ref] = str(exc)
            except httpx.HTTPError as exc:
                where = ImageRef.parse(ref).registry
                errors[ref] = f"{ref} ({where}): {type(exc).__name__}: {str(exc)[:200] or 'no answer'}"
            if on_result:
                on_result(ref, resolved.get(ref), errors.get(ref))

        tasks = [asyncio.ensure_future(one(r)) for r in refs]
        done, pending = await asyncio.wait(tasks, timeout=deadline_s)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for ref in refs:
            if ref not in resolved and ref not in errors:
                errors[ref] = f"{ref}: no answer within the {deadline_s:.0f} s deadline"
    return resolved, errors


# ----------------------------------------------------------------------------- the lock file

def catalogue_refs(images_doc: dict[str, Any]) -> list[str]:
    """Every distinct image:tag in images.yaml, in file order."""
    return list(dict.fromkeys(f"{row['image']}:{row['tag']}" for per_backend in images_doc.values()
                              for row in per_backend.values()))


def read_lock(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc, dict):
        raise LockError(f"{path}: expected a mapping of image:tag to entries")
    return doc


def write_lock(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Replace the lock file atomically (a crash leaves the old one, never half a file), mode 0644."""
    text = LOCK_HEADER + yaml.safe_dump(dict(sorted(entries.items())), sort_keys=True, default_flow_style=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".images.lock.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), 0o644)  # a committed file everyone reads, not mkstemp's 0600
            os.fsync(fh.fileno())  # the bytes are on disk before the rename makes them the lock
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # and the rename itself survives a crash
    finally:
        os.close(dir_fd)


def lock_images(images_file: Path | None = None, lock_file: Path | None = None, *,
                deadline_s: float = DEFAULT_DEADLINE_S, transport=None, on_result=None,
                now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.timezone.utc)
                ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Resolve images.yaml's tags and write the lock. Returns (lock entries written, errors)."""
    images_file = images_file or C.CATALOGUE_DIR / "images.yaml"
    lock_file = lock_file or C.IMAGE_LOCK_FILE
    images_doc = yaml.safe_load(images_file.read_text(encoding="utf-8")) or {}
    refs = catalogue_refs(images_doc)
    # A private loop: asyncio.run() would unset the thread's current loop, which Pulumi's runtime needs.
    loop = asyncio.new_event_loop()
    try:
        resolved, errors = loop.run_until_complete(
            resolve_all(refs, deadline_s=deadline_s, transport=transport, on_result=on_result))
    finally:
        loop.close()
    old = read_lock(lock_file)
    stamp = now().replace(microsecond=0).isoformat()
    entries: dict[str, dict[str, Any]] = {}
    for ref in refs:  # refs no longer in images.yaml drop out of the lock
        if ref in resolved:
            entries[ref] = {**resolved[ref], "resolved_at": stamp, "registry": ImageRef.parse(ref).registry}
        else:
            entries[ref] = old.get(ref) or {"digest": None}
    if entries != old:  # nothing learnt: leave the file (and its comments) as it is
        write_lock(lock_file, entries)
    return entries, errors
