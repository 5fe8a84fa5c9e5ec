"""The images: Dockerfile facts against the one source of truth, the build step, and a real `docker build`
of each image's launcher layer on a locally made stand-in base (Docker Hub is unreachable here), then
`docker run ... --dry-run --gpu-snapshot` inside it. Needs root and Debian's docker.io (CI installs it;
there a missing docker is a failure, elsewhere a skip).
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from launcher_support import CANARIES, FIXTURES, ROOT, SNAPSHOTS, clean_env, require_tool, snapshot

sys.path.insert(0, str(ROOT / "images"))
import build as image_build  # noqa: E402  (images/build.py)

from infra import constants as C  # noqa: E402
from infra.launcher import buildsetup  # noqa: E402
from infra.launcher.errors import LaunchError  # noqa: E402
from infra.launcher.main import prepare  # noqa: E402


def dockerfile(backend: str) -> str:
    return (ROOT / "images" / backend / "Dockerfile").read_text()


# ----------------------------------------------------------------------------- static facts

@pytest.mark.parametrize("backend", C.BACKENDS)
def test_dockerfile_agrees_with_the_catalogue_and_constants(backend):
    text = dockerfile(backend)
    base = image_build.base_for(backend, "cuda")
    assert f"ARG BASE_IMAGE={base['image']}:{base['tag']}\n" in text
    assert f"ARG ENGINE_VERSION={C.ENGINE_VERSIONS[backend]}\n" in text
    assert "FROM ${BASE_IMAGE}${BASE_DIGEST:+@}${BASE_DIGEST}" in text
    assert f"EXPOSE {C.DEFAULT_PORT}\n" in text
    assert f'VOLUME ["{C.CACHE_ROOT}"]' in text
    start = int(re.search(r"HEALTHCHECK .*--start-period=(\d+)s", text).group(1))
    assert start >= max(C.STARTUP_GRACE_SECONDS.values())
    assert 'ENTRYPOINT ["python3", "-m", "infra.launcher"]' in text
    assert f"GPTOSS_BACKEND={backend}" in text
    for label in ("org.opencontainers.image.source", "org.opencontainers.image.version",
                  "org.opencontainers.image.base.name", "org.opencontainers.image.base.digest", "io.gptoss.engine.version"):
        assert label in text
    # The classic builder (Debian's docker.io) must build it: no BuildKit-only syntax.
    assert "--mount" not in text and "<<" not in text and "# syntax=" not in text


@pytest.mark.parametrize("platform", image_build.PLATFORMS)
@pytest.mark.parametrize("backend", C.BACKENDS)
def test_build_args_come_from_the_catalogue(backend, platform):
    args = image_build.build_args(backend, platform)
    cat = image_build.base_for(backend, platform)
    assert args["BASE_IMAGE"] == f"{cat['image']}:{cat['tag']}" and args["BASE_DIGEST"] == (cat["digest"] or "")
    assert args["PLATFORM"] == platform and args["ENGINE_VERSION"] == C.ENGINE_VERSIONS[backend]
    assert "ALLOW_UNPINNED_BASE" not in args
    assert not any(k in args for k in CANARIES)


def test_build_py_refuses_an_unpinned_base(capsys):
    if image_build.base_for("vllm", "cuda")["digest"]:
        pytest.skip("the catalogue pins this base now")
    assert image_build.main(["--backend", "vllm", "--dry-run"]) == 2
    assert "no digest" in capsys.readouterr().err
    assert image_build.main(["--backend", "vllm", "--dry-run", "--allow-unpinned-base", "--download-encodings"]) == 0


def test_build_context_holds_only_what_the_image_needs(tmp_path, encodings_dir):
    ctx = image_build.assemble_context(tmp_path / "ctx", "sglang", encodings_dir)
    top = sorted(p.name for p in (ctx / "infra").iterdir())
    for needed in ("catalogue", "launcher", "plan.py", "spec.py", "fit.py", "envmap.py", "constants.py"):
        assert needed in top
    assert "deploy" not in top and "tasks" not in top
    assert sorted(p.name for p in (ctx / "encodings").iterdir()) == sorted(["o200k_base.tiktoken", "cl100k_base.tiktoken"])
    assert (ctx / "Dockerfile").read_text() == dockerfile("sglang")
    assert not list(ctx.rglob("Pulumi.*.yaml")) and not list(ctx.rglob(".git"))


@pytest.mark.parametrize("env, ok, words", [
    ({"BASE_IMAGE": "x:1", "BASE_DIGEST": "sha256:" + "a" * 64}, True, "pinned"),
    ({"BASE_IMAGE": "x:1", "BASE_DIGEST": "", "ALLOW_UNPINNED_BASE": "1"}, True, "UNPINNED"),
    ({"BASE_IMAGE": "x:1", "BASE_DIGEST": ""}, False, "not pinned by digest"),
    ({"BASE_IMAGE": "x:1", "BASE_DIGEST": "sha256:short"}, False, "not sha256:<64 hex>"),
])
def test_pin_check(env, ok, words):
    if ok:
        assert words in buildsetup.check_pin(env)
    else:
        with pytest.raises(buildsetup.BuildError, match=words):
            buildsetup.check_pin(env)


def test_engine_user_added_without_useradd(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    assert "added" in buildsetup.ensure_user(str(tmp_path))
    assert "gptoss:x:10001:10001:" in (etc / "passwd").read_text()
    assert "gptoss:x:10001:" in (etc / "group").read_text()
    assert "gptoss:!:" in (etc / "shadow").read_text()  # locked
    assert "exists" in buildsetup.ensure_user(str(tmp_path))
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\nubuntu:x:10001:10001::/home/ubuntu:/bin/sh\n")
    with pytest.raises(buildsetup.BuildError, match="uid 10001 is taken"):
        buildsetup.ensure_user(str(tmp_path))


# ----------------------------------------------------------------------------- Docker

def _build(docker, tmp_path_factory, encodings_dir, backend, tag, **arg_overrides) -> subprocess.CompletedProcess:
    ctx = image_build.assemble_context(tmp_path_factory.mktemp(f"ctx-{backend}") / "ctx", backend, encodings_dir)
    args = image_build.build_args(backend, "cuda", with_ssh=False)
    args.update(arg_overrides)
    cmd = image_build.docker_build_cmd(ctx, tag, args, docker.bin)
    # --no-cache: the tests read the build step's own output, which a cached layer does not print.
    return docker("build", "--no-cache", *cmd[2:], check=False)


@pytest.fixture(scope="session")
def images(docker, standin_base, encodings_dir, tmp_path_factory) -> dict[str, str]:
    out = {}
    for backend in C.BACKENDS:
        tag = f"gptoss-{backend}:test"
        r = _build(docker, tmp_path_factory, encodings_dir, backend, tag,
                   BASE_IMAGE=standin_base, BASE_DIGEST="", ALLOW_UNPINNED_BASE="1")
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert "gptoss build: base gptoss-standin-base" in r.stdout and "UNPINNED" in r.stdout
        assert "sha256 ok" in r.stdout
        out[backend] = tag
    return out


def _run(docker, image, *args, env=None, user=None):
    cmd = ["run", "--rm", "--network", "none", "-v", f"{FIXTURES}:/snap:ro"]
    if user:
        cmd += ["--user", user]
    for k, v in (env or {}).items():
        cmd += ["-e", f"{k}={v}"]
    return docker(*cmd, image, *args, check=False)


def test_unpinned_base_is_refused(docker, standin_base, encodings_dir, tmp_path_factory):
    r = _build(docker, tmp_path_factory, encodings_dir, "vllm", "gptoss-vllm:refused", BASE_IMAGE=standin_base, BASE_DIGEST="")
    assert r.returncode != 0
    assert "is not pinned by digest" in r.stdout + r.stderr and "ALLOW_UNPINNED_BASE=1" in r.stdout + r.stderr


@pytest.mark.parametrize("backend", C.BACKENDS)
def test_image_config(docker, images, backend):
    info = json.loads(docker("image", "inspect", images[backend]).stdout)[0]["Config"]
    labels = info["Labels"]
    assert labels["io.gptoss.engine"] == backend and labels["io.gptoss.engine.version"] == C.ENGINE_VERSIONS[backend]
    assert labels["org.opencontainers.image.version"] == f"{C.ENGINE_VERSIONS[backend]}-cuda"
    assert info["ExposedPorts"] == {f"{C.DEFAULT_PORT}/tcp": {}}
    assert info["Healthcheck"]["Test"] == ["CMD", "python3", "-m", "infra.launcher.healthcheck"]
    assert info["Entrypoint"] == ["python3", "-m", "infra.launcher"]
    assert f"TIKTOKEN_ENCODINGS_BASE={C.TIKTOKEN_DIR}" in info["Env"] and C.CACHE_ROOT in info["Volumes"]


@pytest.mark.parametrize("backend", C.BACKENDS)
@pytest.mark.parametrize("snap", SNAPSHOTS)
def test_dry_run_in_the_image_matches_the_host(docker, images, backend, snap):
    env = {"MODEL": "openai/gpt-oss-20b"} if snap.startswith(("l40s", "rtx4090", "h100-mig")) else {}
    r = _run(docker, images[backend], "--dry-run", "--json", "--gpu-snapshot", f"/snap/{snap}", env=env)
    assert r.returncode == 0, r.stderr
    inside = json.loads(r.stdout)
    host = prepare(clean_env(**env), backend, snapshot(snap), dry_run=True)
    assert inside["argv"] == host.to_json()["argv"] and inside["files"] == host.to_json()["files"]
    assert inside["gpu"] == host.plan.gpu and inside["tensor_parallel"] == host.plan.tensor_parallel


def test_refusals_in_the_image(docker, images):
    r = _run(docker, images["vllm"], "--dry-run", "--gpu-snapshot", "/snap/l40s-1gpu.json")
    assert r.returncode == 2 and "for gpt-oss-20b only" in r.stderr and r.stderr.count("\n") == 1
    with pytest.raises(LaunchError, match="for gpt-oss-20b only"):
        prepare(clean_env(), "vllm", snapshot("l40s-1gpu.json"), dry_run=True)
    r = _run(docker, images["sglang"], env={"MAX_MODEL_LEN": "lots"})
    assert r.returncode == 2 and "MAX_MODEL_LEN='lots'" in r.stderr
    r = _run(docker, images["vllm"])  # no GPU, no snapshot: the real NVML path
    assert r.returncode == 2 and "NVML" in r.stderr and "--gpus all" in r.stderr


def test_image_files_encodings_user_and_cache(docker, images):
    img = images["vllm"]
    r = docker("run", "--rm", "--network", "none", "--entrypoint", "python3", img, "-m", "infra.launcher.encodings",
               "verify", C.TIKTOKEN_DIR)
    assert "ok" in r.stdout
    code = ("import os, pwd; p = pwd.getpwnam('gptoss'); "
            f"print(p.pw_uid, [os.stat(d).st_uid for d in {[C.CACHE_ROOT, *C.CACHE_ENV.values(), C.CONFIG_DIR]!r}])")
    out = docker("run", "--rm", "--network", "none", "--entrypoint", "python3", img, "-c", code).stdout.split(maxsplit=1)
    assert out[0] == "10001" and set(json.loads(out[1])) == {10001}
    r = docker("run", "--rm", "--network", "none", "--entrypoint", "python3", img, "-m", "infra.launcher.healthcheck",
               check=False, timeout=60)
    assert r.returncode == 1  # the HEALTHCHECK command runs in the image; nothing is serving yet


def test_non_root_variant(docker, standin_base, encodings_dir, tmp_path_factory, images):
    r = _build(docker, tmp_path_factory, encodings_dir, "sglang", "gptoss-sglang:test-nonroot",
               BASE_IMAGE=standin_base, BASE_DIGEST="", ALLOW_UNPINNED_BASE="1", RUNTIME_USER="gptoss")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(docker("image", "inspect", "gptoss-sglang:test-nonroot").stdout)[0]["Config"]["User"] == "gptoss"
    r = _run(docker, "gptoss-sglang:test-nonroot", "--dry-run", "--gpu-snapshot", "/snap/h200-1gpu.json")
    assert r.returncode == 0 and "python3 -m sglang.launch_server" in r.stdout


def test_no_secret_reaches_history_inspect_or_layers(docker, images, tmp_path):
    """Every build and run above had the canary secrets in its environment (Docker() env)."""
    for backend, img in images.items():
        r = _run(docker, img, "--dry-run", "--gpu-snapshot", "/snap/h200-1gpu.json", env=CANARIES)
        assert r.returncode == 0, r.stderr
        texts = [r.stdout + r.stderr,
                 docker("history", "--no-trunc", img).stdout,
                 docker("image", "inspect", img).stdout]
        tar = tmp_path / f"{backend}.tar"
        docker("save", "-o", tar, img)
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                if m.isfile():
                    data = tf.extractfile(m).read()
                    if m.name.endswith("layer.tar"):
                        with tarfile.open(fileobj=__import__("io").BytesIO(data)) as layer:
                            for f in layer.getmembers():
                                if f.isfile():
                                    texts.append(layer.extractfile(f).read().decode("latin-1"))
                    else:
                        texts.append(data.decode("latin-1"))
        blob = "\n".join(texts)
        from pulumi_harness import base64_forms  # the project's one secret-form scanner

        for name, value in CANARIES.items():
            assert value not in blob, f"{name} leaked into {img}"
            assert not any(form in blob for form in base64_forms(value)), f"{name} leaked (base64) into {img}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory):
    """Debian's docker-registry (the reference OCI distribution server) on a loopback port; stopped by PID."""
    require_tool("docker-registry", "apt-get install docker-registry")
    port = _free_port()
    reg_dir = tmp_path_factory.mktemp("registry")
    conf = reg_dir / "config.yml"
    conf.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {reg_dir}/data\n"
                    f"http:\n  addr: 127.0.0.1:{port}\n")
    reg = subprocess.Popen(["docker-registry", "serve", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("docker-registry did not start")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        reg.terminate()
        reg.wait(timeout=10)


def _lock_one(tmp_path, ref: str) -> tuple[dict, dict]:
    from infra.imagelock import lock_images

    image, tag = ref.rsplit(":", 1)
    images = tmp_path / "images.yaml"
    images.write_text(json.dumps({"vllm": {"cuda": {"image": image, "tag": tag, "source": "test"}}}))
    entries, errors = lock_images(images, tmp_path / "images.lock.yaml", deadline_s=30)
    return entries[ref], errors


def test_base_pinned_by_digest_through_a_local_registry(docker, standin_base, encodings_dir, tmp_path_factory,
                                                        local_registry, tmp_path):
    """The pinned path for real: push the stand-in to a loopback registry, `invoke lock-images`' resolver
    reads its digest over the registry API (the digest Docker recorded on push), build FROM name@sha256:..."""
    name = f"{local_registry}/gptoss-standin-base:pinned"
    docker("tag", standin_base, name)
    docker("push", name)
    pushed = json.loads(docker("image", "inspect", name).stdout)[0]["RepoDigests"][0].split("@", 1)[1]
    entry, errors = _lock_one(tmp_path, name)
    assert errors == {} and entry["digest"] == pushed and re.fullmatch(r"sha256:[0-9a-f]{64}", pushed)
    assert entry["media_type"] == "application/vnd.docker.distribution.manifest.v2+json"
    r = _build(docker, tmp_path_factory, encodings_dir, "vllm", "gptoss-vllm:test-pinned", BASE_IMAGE=name,
               BASE_DIGEST=entry["digest"])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"@{pushed} (pinned)" in r.stdout
    labels = json.loads(docker("image", "inspect", "gptoss-vllm:test-pinned").stdout)[0]["Config"]["Labels"]
    assert labels["org.opencontainers.image.base.digest"] == pushed


def test_lock_resolves_a_multi_platform_index_to_the_index_digest(docker, standin_base, local_registry, tmp_path):
    """Release images are multi-platform: the lock must pin the OCI index (what `FROM name@digest` needs to keep
    picking the host's platform), not one platform's manifest. The test pushes an index to the real registry."""
    import hashlib

    import httpx

    name = f"{local_registry}/gptoss-standin-multi"
    docker("tag", standin_base, f"{name}:single")
    docker("push", f"{name}:single")
    single_type = "application/vnd.docker.distribution.manifest.v2+json"
    got = httpx.get(f"http://{local_registry}/v2/gptoss-standin-multi/manifests/single",
                    headers={"Accept": single_type}, timeout=10)
    assert got.status_code == 200
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": single_type, "size": len(got.content), "digest": "sha256:" + hashlib.sha256(got.content).hexdigest(),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    put = httpx.put(f"http://{local_registry}/v2/gptoss-standin-multi/manifests/multi", content=index,
                    headers={"Content-Type": "application/vnd.oci.image.index.v1+json"}, timeout=10)
    assert put.status_code == 201, put.text
    entry, errors = _lock_one(tmp_path, f"{name}:multi")
    assert errors == {}
    assert entry["digest"] == "sha256:" + hashlib.sha256(index).hexdigest() == put.headers["Docker-Content-Digest"]
    assert entry["media_type"] == "application/vnd.oci.image.index.v1+json"
    missing, errors = _lock_one(tmp_path, f"{name}:nope")
    assert missing == {"digest": None} and "no such tag" in errors[f"{name}:nope"]


def _push_minimal_image(registry: str, repository: str, tag: str) -> tuple[bytes, str]:
    """Push a config blob and a Docker v2 manifest over the distribution API (no Docker daemon needed);
    returns the manifest bytes and the digest the registry recorded."""
    import hashlib

    import httpx

    v2 = "application/vnd.docker.distribution.manifest.v2+json"
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": v2, "layers": [], "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": config_digest}}).encode()
    with httpx.Client(base_url=f"http://{registry}", timeout=10) as client:
        upload = client.post(f"/v2/{repository}/blobs/uploads/")
        assert upload.status_code == 202, upload.text
        location = upload.headers["Location"]  # carries the upload's state in its query: add the digest to it
        blob = client.put(f"{location}{'&' if '?' in location else '?'}digest={config_digest}", content=config)
        assert blob.status_code == 201, blob.text
        put = client.put(f"/v2/{repository}/manifests/{tag}", content=manifest, headers={"Content-Type": v2})
        assert put.status_code == 201, put.text
    return manifest, put.headers["Docker-Content-Digest"]


def test_the_get_fallback_pins_a_real_registrys_manifest(local_registry, tmp_path):
    """The GET fallback's checks (a v2 manifest type, schemaVersion 2, Docker-Content-Digest = sha256 of the body)
    pass on the real registry's own answers: a forwarder in front of it refuses HEAD, so the lock GETs the manifest."""
    import hashlib
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    manifest, pushed = _push_minimal_image(local_registry, "gptoss-getfallback", "v1")
    assert pushed == "sha256:" + hashlib.sha256(manifest).hexdigest()

    class NoHead(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_HEAD(self):
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            up = httpx.get(f"http://{local_registry}{self.path}", headers={"Accept": self.headers.get("Accept", "")},
                           timeout=10)
            self.send_response(up.status_code)
            for name in ("Content-Type", "Docker-Content-Digest"):
                if name in up.headers:
                    self.send_header(name, up.headers[name])
            self.send_header("Content-Length", str(len(up.content)))
            self.end_headers()
            self.wfile.write(up.content)

    server = ThreadingHTTPServer(("127.0.0.1", 0), NoHead)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        entry, errors = _lock_one(tmp_path, f"127.0.0.1:{server.server_address[1]}/gptoss-getfallback:v1")
    finally:
        server.shutdown()
        server.server_close()
    assert errors == {} and entry["digest"] == pushed
    assert entry["media_type"] == "application/vnd.docker.distribution.manifest.v2+json"


def test_real_start_in_the_image_execs_as_pid_1_without_root(docker, images, tmp_path):
    """No --dry-run: the image's launcher verifies the baked encodings, writes its config, drops from root
    to uid 10001 and execs the engine (the stand-in, mounted as `vllm`), which becomes PID 1."""
    engine = tmp_path / "vllm"
    engine.write_text("#!/usr/bin/python3\n" + (Path(__file__).parent / "engine_standin.py").read_text())
    engine.chmod(0o755)
    r = docker("run", "--rm", "--network", "none", "-v", f"{FIXTURES}:/snap:ro", "-v", f"{engine}:/usr/local/bin/vllm:ro",
               "-e", "STANDIN_RECORD=-", "-e", f"API_KEY={CANARIES['API_KEY']}", "-e", "PUBLIC_KEY=ssh-ed25519 AAAAC3Nza x@y",
               images["vllm"], "--gpu-snapshot", "/snap/h200-1gpu.json", check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rec = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("STANDIN_RECORD "))[15:])
    assert rec["pid"] == 1 and rec["uid"] == 10001 and rec["home"] == "/home/gptoss"
    assert rec["argv"][1:] == ["serve", "openai/gpt-oss-120b", "--config", f"{C.CONFIG_DIR}/vllm.yaml",
                               "--middleware", C.VLLM_AUTH_MIDDLEWARE]  # API_KEY set: the key on every route
    assert rec["vllm_api_key_set"] and not rec["api_key_in_env"] and "PUBLIC_KEY" not in rec["env"]
    assert "as gptoss" in r.stdout and "WITH_SSH=1" in r.stdout  # SSH asked for, image without sshd: warned, not fatal
    assert CANARIES["API_KEY"] not in r.stdout + r.stderr
