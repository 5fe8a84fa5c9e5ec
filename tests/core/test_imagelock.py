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


@pytest.fixture
def hub():
    FakeHub.seen, FakeHub.send_digest = [], True
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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
