"""The registry client of `invoke lock-images` at its HTTP boundary: a local stand-in that speaks Docker Hub's
anonymous token flow (401 + `WWW-Authenticate: Bearer realm,service,scope`, token endpoint, Bearer retry), a
registry without the digest header, bad answers, and one that never answers (the overall deadline).
The real registry (Debian's docker-registry with an image pushed by the test) is in tests/launcher/test_images.py.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from infra.imagelock import DOCKER_HUB, ImageRef, LockError, MANIFEST_TYPES, lock_images, parse_challenge

INDEX = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPES[0], "manifests": []}).encode()
INDEX_DIGEST = "sha256:" + hashlib.sha256(INDEX).hexdigest()
TOKEN = "anon-token-for-test"


class FakeHub(BaseHTTPRequestHandler):
    """Docker Hub's shape: every manifest request needs a Bearer token from /token."""

    seen: list = []
    send_digest = True

    def log_message(self, *a):
        pass

    def _manifest(self, body: bool):
        FakeHub.seen.append((self.command, self.path, dict(self.headers)))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            port = self.server.server_address[1]
            self.send_header("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{port}/token",'
                             f'service="registry.docker.io",scope="repository:acme/engine:pull"')
            self.end_headers()
            return
        if not self.path.endswith("/manifests/v1") :
            self.send_response(404)
            self.end_headers()
            return
        accept = self.headers.get("Accept", "")
        if MANIFEST_TYPES[0] not in accept:  # a registry serves a single manifest to clients that cannot take an index
            self.send_response(406)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", MANIFEST_TYPES[0])
        if FakeHub.send_digest:
            self.send_header("Docker-Content-Digest", INDEX_DIGEST)
        self.send_header("Content-Length", str(len(INDEX)))
        self.end_headers()
        if body:
            self.wfile.write(INDEX)

    def do_HEAD(self):
        self._manifest(body=False)

    def do_GET(self):
        if self.path.startswith("/token"):
            FakeHub.seen.append(("GET", self.path, dict(self.headers)))
            ok = "service=registry.docker.io" in self.path and "scope=repository%3Aacme%2Fengine%3Apull" in self.path
            data = json.dumps({"token": TOKEN}).encode() if ok else b"{}"
            self.send_response(200 if ok else 400)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._manifest(body=True)


def serve(handler):
    """Run handler on a loopback port in a thread; yields its host:port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hub():
    FakeHub.seen, FakeHub.send_digest = [], True
    yield from serve(FakeHub)


def images_file(tmp_path, *refs):
    rows = {f"p{i}": dict(zip(("image", "tag"), ref.rsplit(":", 1)), source="test") for i, ref in enumerate(refs)}
    path = tmp_path / "images.yaml"
    path.write_text(yaml.safe_dump({"vllm": rows}))
    return path


def test_docker_hub_anonymous_token_flow_and_index_digest(hub, tmp_path):
    lock = tmp_path / "lock.yaml"
    entries, errors = lock_images(images_file(tmp_path, f"{hub}/acme/engine:v1"), lock, deadline_s=10)
    assert errors == {}
    entry = entries[f"{hub}/acme/engine:v1"]
    assert entry["digest"] == INDEX_DIGEST and entry["media_type"] == MANIFEST_TYPES[0]
    first, token, retry = FakeHub.seen[:3]
    assert first[0] == "HEAD" and "Authorization" not in first[2]
    assert token[1].startswith("/token?") and retry[2]["Authorization"] == f"Bearer {TOKEN}"
    for mt in MANIFEST_TYPES:  # OCI index and Docker manifest list asked for, then single manifests
        assert mt in retry[2]["Accept"]
    assert yaml.safe_load(lock.read_text())[f"{hub}/acme/engine:v1"]["digest"] == INDEX_DIGEST
    assert lock.read_text().startswith("# Base image digests, written by `invoke lock-images`")


def test_without_the_digest_header_the_digest_is_the_sha256_of_the_manifest(hub, tmp_path):
    FakeHub.send_digest = False
    entries, errors = lock_images(images_file(tmp_path, f"{hub}/acme/engine:v1"), tmp_path / "lock.yaml", deadline_s=10)
    assert errors == {} and entries[f"{hub}/acme/engine:v1"]["digest"] == INDEX_DIGEST
    assert [c[0] for c in FakeHub.seen][-1] == "GET"


def test_a_failed_image_keeps_its_previous_entry_and_is_reported(hub, tmp_path):
    lock = tmp_path / "lock.yaml"
    old = "sha256:" + "1" * 64
    lock.write_text(yaml.safe_dump({f"{hub}/acme/engine:gone": {"digest": old}}))
    entries, errors = lock_images(images_file(tmp_path, f"{hub}/acme/engine:v1", f"{hub}/acme/engine:gone"), lock,
                                  deadline_s=10)
    assert list(errors) == [f"{hub}/acme/engine:gone"] and "no such tag" in errors[f"{hub}/acme/engine:gone"]
    written = yaml.safe_load(lock.read_text())
    assert written[f"{hub}/acme/engine:gone"] == {"digest": old} and written[f"{hub}/acme/engine:v1"]["digest"] == INDEX_DIGEST


def test_a_registry_that_never_answers_is_cut_by_the_overall_deadline(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts the connection, never sends a byte
    try:
        start = time.monotonic()
        ref = f"127.0.0.1:{silent.getsockname()[1]}/acme/engine:v1"
        entries, errors = lock_images(images_file(tmp_path, ref), tmp_path / "lock.yaml", deadline_s=1.5)
        assert time.monotonic() - start < 5
        assert "deadline" in errors[ref] and entries[ref] == {"digest": None}
    finally:
        silent.close()


@pytest.mark.parametrize("ref, registry, repository, tag", [
    ("vllm/vllm-openai:v0.33.0", DOCKER_HUB, "vllm/vllm-openai", "v0.33.0"),
    ("ubuntu:24.04", DOCKER_HUB, "library/ubuntu", "24.04"),
    ("docker.io/lmsysorg/sglang:v0.5.23-cu130", DOCKER_HUB, "lmsysorg/sglang", "v0.5.23-cu130"),
    ("ghcr.io/acme/gptoss-vllm:1", "ghcr.io", "acme/gptoss-vllm", "1"),
    ("127.0.0.1:5000/base:pinned", "127.0.0.1:5000", "base", "pinned"),
    ("localhost/x/y:z", "localhost", "x/y", "z"),
])
def test_reference_parsing_follows_docker(ref, registry, repository, tag):
    r = ImageRef.parse(ref)
    assert (r.registry, r.repository, r.tag) == (registry, repository, tag)
    assert r.base_url.startswith("http://" if registry.startswith(("127.", "localhost")) else "https://")


@pytest.mark.parametrize("ref", ["vllm/vllm-openai", "a b:1", "x@sha256:" + "0" * 64, "UPPER/case:1", ""])
def test_bad_references_are_one_line_errors(ref):
    with pytest.raises(LockError):
        ImageRef.parse(ref)


def test_challenge_parsing():
    c = parse_challenge('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"')
    assert c == {"scheme": "bearer", "realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "repository:a/b:pull"}


# ----------------------------------------------------------------------------- a hostile registry (issue 24, finding 3)

class Recorder:
    """A second listener that only counts connections: proof that nothing was sent to where a realm pointed."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.hits, self._stop = 0, False
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self):
        self._stop = True
        self.thread.join(timeout=5)
        self.sock.close()


class Hostile(BaseHTTPRequestHandler):
    """A registry under the attacker's control; each test sets what it answers."""

    realm = None           # 401 + this realm on requests without the token
    head_status = 200      # 405: no HEAD, so the client falls back to GET
    content_type = MANIFEST_TYPES[0]
    body = INDEX
    digest_header = None   # Docker-Content-Digest on GET
    redirect_token_to = None

    def log_message(self, *a):
        pass

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorised(self):
        if Hostile.realm and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, headers=[("WWW-Authenticate", f'Bearer realm="{Hostile.realm}",service="x"')])
            return False
        return True

    def do_HEAD(self):
        if self._authorised():
            self._send(Hostile.head_status, headers=[("Content-Type", Hostile.content_type)])

    def do_GET(self):
        if self.path.startswith("/token"):
            if Hostile.redirect_token_to:
                return self._send(302, headers=[("Location", Hostile.redirect_token_to)])
            return self._send(200, json.dumps({"token": TOKEN}).encode())
        if self._authorised():
            headers = [("Content-Type", Hostile.content_type)]
            if Hostile.digest_header:
                headers.append(("Docker-Content-Digest", Hostile.digest_header))
            self._send(200, Hostile.body, headers)


@pytest.fixture
def hostile():
    for k in ("realm", "digest_header", "redirect_token_to"):
        setattr(Hostile, k, None)
    Hostile.head_status, Hostile.content_type, Hostile.body = 200, MANIFEST_TYPES[0], INDEX
    yield from serve(Hostile)


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


def lock_one(tmp_path, ref):
    return lock_images(images_file(tmp_path, ref), tmp_path / "lock.yaml", deadline_s=10)


@pytest.mark.parametrize("realm", ["http://127.0.0.1:{port}/v1/auth/token/lookup-self",  # another loopback service
                                   "https://127.0.0.1:{port}/token",
                                   "http://localhost:{port}/token"])
def test_a_token_realm_on_another_host_or_port_is_refused_and_never_contacted(hostile, recorder, tmp_path, realm):
    Hostile.realm = realm.format(port=recorder.port)
    ref = f"{hostile}/acme/engine:v1"
    entries, errors = lock_one(tmp_path, ref)
    assert recorder.hits == 0, "a request went to the realm the registry pointed at"
    assert entries[ref] == {"digest": None}
    assert "token realm" in errors[ref] and hostile in errors[ref] and "\n" not in errors[ref]


def test_a_realm_on_the_registry_that_redirects_elsewhere_is_not_followed(hostile, recorder, tmp_path):
    Hostile.realm = f"http://{hostile}/token"
    Hostile.redirect_token_to = f"http://127.0.0.1:{recorder.port}/v1/auth"
    ref = f"{hostile}/acme/engine:v1"
    entries, errors = lock_one(tmp_path, ref)
    assert recorder.hits == 0 and entries[ref] == {"digest": None} and "HTTP 302" in errors[ref]


def test_the_allow_list_is_per_registry(hostile, tmp_path):
    Hostile.realm = "https://auth.docker.io/token"  # Docker Hub's token service, but this registry is not Docker Hub
    ref = f"{hostile}/acme/engine:v1"
    _, errors = lock_one(tmp_path, ref)
    assert "token realm" in errors[ref]


def test_docker_hubs_token_service_is_allowed_for_docker_hub_only():
    from infra.imagelock import check_realm

    hub = ImageRef.parse("vllm/vllm-openai:v0.33.0")
    assert check_realm(hub, "https://auth.docker.io/token") == "https://auth.docker.io/token"
    for bad in ("http://auth.docker.io/token", "https://auth.docker.io:8443/token", "https://evil.example/token",
                "https://registry-1.docker.io.evil.example/token", "ftp://auth.docker.io/token"):
        with pytest.raises(LockError, match="token realm"):
            check_realm(hub, bad)
    ghcr = ImageRef.parse("ghcr.io/acme/x:1")
    assert check_realm(ghcr, "https://ghcr.io/token")
    with pytest.raises(LockError, match="token realm"):
        check_realm(ghcr, "https://auth.docker.io/token")


@pytest.mark.parametrize("content_type, body, words", [
    ("text/html", b"<html><body>Sign in to continue</body></html>", "not a manifest"),
    (MANIFEST_TYPES[0], b"<html><body>Sign in to continue</body></html>", "not JSON"),
    (MANIFEST_TYPES[3], json.dumps({"schemaVersion": 1, "name": "acme/engine"}).encode(), "schemaVersion"),
    (MANIFEST_TYPES[3], json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPES[0]}).encode(), "mediaType"),
])
def test_the_get_fallback_pins_only_a_v2_manifest(hostile, tmp_path, content_type, body, words):
    Hostile.head_status, Hostile.content_type, Hostile.body = 405, content_type, body
    ref = f"{hostile}/acme/engine:v1"
    entries, errors = lock_one(tmp_path, ref)
    assert entries[ref] == {"digest": None} and words in errors[ref] and hostile in errors[ref]
    assert "\n" not in errors[ref]


def test_the_get_fallback_checks_the_digest_header_against_the_body(hostile, tmp_path):
    Hostile.head_status, Hostile.digest_header = 405, "sha256:" + "0" * 64
    ref = f"{hostile}/acme/engine:v1"
    entries, errors = lock_one(tmp_path, ref)
    assert entries[ref] == {"digest": None} and "Docker-Content-Digest" in errors[ref]
    Hostile.digest_header = INDEX_DIGEST  # the honest header
    entries, errors = lock_one(tmp_path, ref)
    assert errors == {} and entries[ref]["digest"] == INDEX_DIGEST and entries[ref]["media_type"] == MANIFEST_TYPES[0]


def test_the_lock_file_is_world_readable_and_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    import os

    from infra import imagelock

    synced = []
    real_fsync = os.fsync

    def spy(fd):  # records what each fsync was of: the temporary file, then the directory
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), (tmp_path / "images.lock.yaml").exists()))
        real_fsync(fd)

    monkeypatch.setattr(imagelock.os, "fsync", spy)
    lock = tmp_path / "images.lock.yaml"
    imagelock.write_lock(lock, {"a/b:1": {"digest": INDEX_DIGEST}})
    assert oct(lock.stat().st_mode & 0o777) == oct(0o644)
    assert yaml.safe_load(lock.read_text()) == {"a/b:1": {"digest": INDEX_DIGEST}}
    (file_path, file_renamed), (dir_path, dir_renamed) = synced
    assert ".images.lock." in file_path and not file_renamed  # the data is on disk before the rename ...
    assert dir_path == str(tmp_path) and dir_renamed  # ... and the rename is, after it
    assert [p.name for p in tmp_path.iterdir()] == ["images.lock.yaml"]


class Redirecting(Hostile):
    """A registry whose manifest answer is a redirect (HEAD and GET), e.g. to a service on this machine."""

    location = None

    def do_HEAD(self):
        self._send(302, headers=[("Location", Redirecting.location)])

    do_GET = do_HEAD


def test_a_manifest_redirect_to_another_host_is_not_followed(recorder, tmp_path):
    Redirecting.location = f"http://127.0.0.1:{recorder.port}/latest/meta-data/iam"
    for registry in serve(Redirecting):
        ref = f"{registry}/acme/engine:v1"
        entries, errors = lock_one(tmp_path, ref)
    assert recorder.hits == 0, "the lock followed a registry's redirect to another service"
    assert entries[ref] == {"digest": None}
    assert "not one of the registries being locked" in errors[ref] and "\n" not in errors[ref]


class MovedOnItsOwnHost(Hostile):
    """A registry that moves a tag's manifest to another path on its own host (a relative Location)."""

    def do_HEAD(self):
        if self.path.endswith("/manifests/v1"):
            return self._send(307, headers=[("Location", "/v2/acme/engine/manifests/moved")])
        self._send(200, headers=[("Content-Type", MANIFEST_TYPES[0]), ("Docker-Content-Digest", "sha256:" + "ab" * 32)])


def test_a_manifest_redirect_on_the_same_registry_is_followed(tmp_path):
    for registry in serve(MovedOnItsOwnHost):
        ref = f"{registry}/acme/engine:v1"
        entries, errors = lock_one(tmp_path, ref)
    assert not errors and entries[ref]["digest"] == "sha256:" + "ab" * 32


def test_the_tool_server_base_is_locked_with_the_engine_bases(hub, tmp_path):
    """`invoke lock-images` covers every section of images.yaml, the tool server's `toolserver:` row included."""
    from infra import builtin_tools as BT
    from infra import constants as C
    from infra.imagelock import catalogue_refs

    base = BT.toolserver_base()
    assert f"{base['image']}:{base['tag']}" in catalogue_refs(yaml.safe_load((C.CATALOGUE_DIR / "images.yaml").read_text()))
    assert f"{base['image']}:{base['tag']}" in yaml.safe_load(C.IMAGE_LOCK_FILE.read_text())  # a row, pinned or not yet
    path = tmp_path / "images.yaml"
    path.write_text(yaml.safe_dump({"vllm": {"cuda": {"image": f"{hub}/acme/engine", "tag": "v1"}},
                                    "toolserver": {"python": {"image": f"{hub}/acme/engine", "tag": "gone"}}}))
    entries, errors = lock_images(path, tmp_path / "lock.yaml", deadline_s=10)
    assert entries[f"{hub}/acme/engine:v1"]["digest"] == INDEX_DIGEST
    assert list(errors) == [f"{hub}/acme/engine:gone"]  # the tool server row was asked for too
