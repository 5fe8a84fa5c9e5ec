"""The python tool server's own image (issue 22): built by the Pulumi program like the engine image, tagged from what
it runs (never `latest`), deployed by its ref, refused while its base is unpinned. The real program under the
recording mock engine (the only fake); the base digests come from the stand-in lock (tests/cloud/conftest.py)."""
from __future__ import annotations

import shutil

import pytest
import yaml
from pulumi_harness import refused, run_stack, run_stacks

from infra import builtin_tools as BT
from infra import constants as C
import pulumi_harness as T
from infra.deploy import toolserver_image as TS

IMAGE = "docker-build:index:Image"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
CONTAINER = "docker:index/container:Container"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
TOOLS = {"builtin_tools": {"python": {"enabled": True}}}


@pytest.fixture(scope="module")
def runs():
    return run_stacks(["h200-vllm-tools", "h200-vllm"])


def tool_build(run) -> T.Resource:
    (image,) = [r for r in run.of_type(IMAGE) if r.name.endswith("-toolserver-build")]
    return image


def test_the_tools_stack_builds_and_pushes_the_tool_server_image_like_the_engine_image(runs):
    run = runs["h200-vllm-tools"]
    engine, tool = sorted(run.of_type(IMAGE), key=lambda r: r.name.endswith("-toolserver-build"))
    base = BT.toolserver_base()
    assert base["digest"] and base["digest"].startswith("sha256:")  # the stand-in lock pins it
    tag = BT.image_tag(base)
    assert tag != "latest" and tag.startswith(BT.project_version() + "-") and len(tag.rsplit("-", 1)[1]) == 12
    assert tool.plain("tags") == [f"ghcr.io/your-org/{C.TOOLSERVER_IMAGE}:{tag}"]
    assert tool.plain("context") == {"location": "build/image-context/toolserver"}
    assert tool.plain("dockerfile") == {"location": "build/image-context/toolserver/Dockerfile"}
    assert tool.plain("buildArgs") == {"BASE_IMAGE": f"{base['image']}:{base['tag']}", "BASE_DIGEST": base["digest"]}
    # the engine image's rules: pushed with the same registry credentials, built only by `pulumi up`
    for key in ("push", "buildOnPreview", "platforms", "registries", "load"):
        assert tool.plain(key) == engine.plain(key), key
    assert tool.plain("push") is True and tool.plain("buildOnPreview") is False
    assert tool.plain("cacheFrom") == [{"registry": {"ref": tool.plain("tags")[0]}}]
    # the tool server container runs exactly the built image, by tag@digest, and the stack says which
    ref = T.unwrap_secrets(run.stack_outputs["toolserver_image_ref"])
    assert ref.startswith(tool.plain("tags")[0] + "@sha256:")
    remote = next(r for r in run.of_type(REMOTE_IMAGE) if r.name.endswith("-toolserver-image"))
    assert remote.plain("name") == ref and remote.plain("keepLocally") is True
    assert remote.plain("triggers") == {"digest": ref.rsplit("@", 1)[1]}
    container = next(r for r in run.of_type(CONTAINER) if r.plain("name").endswith("-python-tool"))
    assert container.plain("image") == T._fake_digest("image-id", ref)  # the mocks' image id of that RemoteImage


def test_the_context_is_build_py_s_layout_and_nothing_is_installed_under_the_mocks(monkeypatch):
    def no_pip(*a, **k):
        raise AssertionError("pip ran under the Pulumi mocks")

    monkeypatch.setattr(TS.toolserver_build_module(), "install_site", no_pip)
    seen = []
    real = TS.assemble_toolserver_context
    monkeypatch.setattr(TS, "assemble_toolserver_context", lambda *a, install, **k: seen.append(install) or real(*a, install=install, **k))
    run_stack("h200-vllm-tools")
    assert seen == [False]
    ctx = C.REPO_ROOT / "build" / "image-context" / "toolserver"
    assert (ctx / "Dockerfile").read_bytes() == (C.REPO_ROOT / "images" / "toolserver" / "Dockerfile").read_bytes()
    assert (ctx / "infra" / "toolserver" / "server.py").is_file() and not (ctx / "infra" / "deploy").exists()
    assert (ctx / "site").is_dir()  # from the site cache when a real build filled it, else empty


def test_pulumi_up_fetches_the_tool_servers_wheels_and_a_preview_does_not(monkeypatch, tmp_path):
    """The program's default (fetch_build_inputs=None): `pulumi up` fills site/ (here a recording stand-in
    for the PyPI install), `pulumi preview` does not."""
    from infra.deploy.program import deploy

    filled = []
    monkeypatch.setattr(TS, "fill_site_cache", lambda *a, **k: filled.append(True) or tmp_path)
    run_stack("h200-vllm-tools", program=deploy)
    assert filled == [True]
    cfg, secret_keys = T.pulumi_config("h200-vllm-tools")
    T.run_program(deploy, project=C.PROJECT, stack="h200-vllm-tools", config=cfg, secret_keys=secret_keys,
                  mocks=T.DeterministicMocks(random_password=T.GENERATED_KEY), preview=True)
    assert filled == [True]


def test_a_stack_without_the_tool_builds_no_tool_server_image(runs):
    run = runs["h200-vllm"]
    assert [r.name for r in run.of_type(IMAGE)] == ["h200-vllm-build"]
    assert "toolserver_image_ref" not in run.stack_outputs


def test_the_kubernetes_tool_server_runs_the_built_image():
    from infra.deploy import targets
    from infra.deploy.targets import kubernetes_pulumi

    saved = dict(targets.TARGETS)
    targets.TARGETS.setdefault("kubernetes", kubernetes_pulumi.KubernetesTarget())
    try:
        run = run_stack("k8s-h100-vllm", overrides=TOOLS)
    finally:
        targets.TARGETS.clear()
        targets.TARGETS.update(saved)
    ref = T.unwrap_secrets(run.stack_outputs["toolserver_image_ref"])
    assert ref.startswith(tool_build(run).plain("tags")[0] + "@sha256:")
    deployment = next(r for r in run.of_type(DEPLOYMENT) if r.plain("metadata")["name"] == BT.k8s_service_name("k8s-h100-vllm"))
    (container,) = deployment.plain("spec")["template"]["spec"]["containers"]
    assert container["image"] == ref


@pytest.fixture
def unpinned_tool_base(monkeypatch, tmp_path):
    """The stand-in lock with every base pinned except the tool server's."""
    lock = T.write_stand_in_image_lock(tmp_path / "images.lock.yaml")
    doc = yaml.safe_load(lock.read_text())
    base = BT.toolserver_base()
    doc[f"{base['image']}:{base['tag']}"] = {"digest": None}
    lock.write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(C, "IMAGE_LOCK_FILE", lock)


def test_an_unpinned_tool_server_base_is_refused_before_any_resource(unpinned_tool_base):
    err = refused("h200-vllm-tools", {})
    assert err.field == "builtin_tools.python.enabled" and "invoke lock-images" in str(err)
    assert "python:3.12-slim-bookworm has no digest" in str(err) and "\n" not in str(err)
    # the engine's own base is pinned in this lock: the refusal is the tool server's alone
    assert run_stack("h200-vllm").of_type(IMAGE)


def test_allow_unpinned_base_covers_the_tool_server_too(unpinned_tool_base):
    run = run_stack("h200-vllm-tools", overrides={"image": {"registry": "ghcr.io/your-org", "registry_username": "bot",
                                                             "allow_unpinned_base": True}})
    args = tool_build(run).plain("buildArgs")
    assert args == {"BASE_IMAGE": "docker.io/library/python:3.12-slim-bookworm", "BASE_DIGEST": "",
                    "ALLOW_UNPINNED_BASE": "1"}
    assert any("tool server's base image" in line and "not pinned" in line for line in run.logs)


def test_a_tool_server_of_the_users_own_needs_no_image():
    run = run_stack("h200-vllm-tools", overrides={"builtin_tools": {"python": {"enabled": True,
                                                                                "address": "10.0.0.9:8765"}}})
    assert len(run.of_type(IMAGE)) == 1 and "toolserver_image_ref" not in run.stack_outputs


def test_the_tag_follows_what_the_image_runs(monkeypatch, tmp_path):
    for source in BT.TAG_SOURCES:
        src, dest = C.REPO_ROOT / source, tmp_path / source
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copy2(src, dest)
    shutil.copy2(C.REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    base = {"image": "docker.io/library/python", "tag": "3.12-slim-bookworm", "digest": "sha256:" + "a" * 64}
    here = BT.image_tag(base)
    monkeypatch.setattr(C, "REPO_ROOT", tmp_path)
    assert BT.image_tag(base) == here  # the same inputs anywhere: the same tag
    assert BT.image_tag({**base, "digest": "sha256:" + "b" * 64}) != here
    assert BT.image_tag({**base, "digest": None}) != here
    server = tmp_path / "infra" / "toolserver" / "server.py"
    server.write_text(server.read_text() + "\n# changed\n")
    changed = BT.image_tag(base)
    assert changed != here
    (tmp_path / "infra" / "toolserver" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "infra" / "toolserver" / "__pycache__" / "x.py").write_text("stale")
    assert BT.image_tag(base) == changed  # bytecode caches are not what the image runs
    req = tmp_path / "images" / "toolserver" / "requirements.txt"
    req.write_text(req.read_text() + "extra==1.0\n")
    assert BT.image_tag(base) != changed


def test_the_site_cache_is_filled_once_per_requirements(monkeypatch, tmp_path):
    builder = TS.toolserver_build_module()
    installs = []

    def install_site(dest, python_version, machine=None, pip=None):  # the PyPI boundary: pip itself is not run
        installs.append((python_version, machine))
        dest.mkdir(parents=True)
        (dest / "mcp").mkdir()
        return dest

    monkeypatch.setattr(builder, "install_site", install_site)
    cache = tmp_path / "cache"
    ctx = TS.assemble_toolserver_context(tmp_path / "ctx", install=False, cache_root=cache)
    assert installs == [] and list((ctx / "site").iterdir()) == []  # a preview: no install, an empty site/
    ctx = TS.assemble_toolserver_context(tmp_path / "ctx", install=True, cache_root=cache)
    assert installs == [(builder.python_version(), "x86_64")] and (ctx / "site" / "mcp").is_dir()
    TS.assemble_toolserver_context(tmp_path / "ctx", install=True, cache_root=cache)
    assert len(installs) == 1  # cached by requirements, Python and arch
    assert [p.name for p in cache.iterdir()] == [TS.site_cache_dir(cache_root=cache).name]
    ctx = TS.assemble_toolserver_context(tmp_path / "ctx", install=False, cache_root=cache)
    assert (ctx / "site" / "mcp").is_dir()  # a preview reuses what a build installed


def test_unpushed_the_tool_server_image_is_loaded_into_the_docker_host_and_run_by_tag():
    run = run_stack("h200-vllm-tools", overrides={"image": {"push": False}})
    tool = tool_build(run)
    assert tool.plain("push") is False and tool.plain("load") is True and not tool.plain("registries")
    assert tool.plain("tags") == [f"{C.TOOLSERVER_IMAGE}:{BT.image_tag()}"]
    # built by the daemon that runs it (the stack's ssh:// host), like the engine image
    builders = {r.name: r.plain("host") for r in run.resources if r.type == "pulumi:providers:docker-build"}
    assert builders == {"h200-vllm-tools-build-builder": "ssh://ubuntu@gpu-h200.internal",
                        "h200-vllm-tools-toolserver-build-builder": "ssh://ubuntu@gpu-h200.internal"}
    ref = T.unwrap_secrets(run.stack_outputs["toolserver_image_ref"])
    assert ref == tool.plain("tags")[0]
    remote = next(r for r in run.of_type(REMOTE_IMAGE) if r.name.endswith("-toolserver-image"))
    assert remote.plain("name") == ref and remote.plain("triggers")["digest"].startswith("sha256:")


def test_two_ups_filling_the_site_cache_at_once_both_succeed(monkeypatch, tmp_path):
    builder = TS.toolserver_build_module()
    cache = tmp_path / "cache"

    def install_site(dest, python_version, machine=None, pip=None):  # the other `pulumi up` finishes first
        dest.mkdir(parents=True)
        (dest / "mine").touch()
        other = TS.site_cache_dir(cache_root=cache)
        other.mkdir()
        (other / "theirs").touch()
        return dest

    monkeypatch.setattr(builder, "install_site", install_site)
    ctx = TS.assemble_toolserver_context(tmp_path / "ctx", install=True, cache_root=cache)
    assert [p.name for p in (ctx / "site").iterdir()] == ["theirs"]
    assert [p.name for p in cache.iterdir()] == [TS.site_cache_dir(cache_root=cache).name]  # no temp dir left
