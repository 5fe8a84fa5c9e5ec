"""A stack that cannot work fails before anything is registered, naming the field and the fix."""
from __future__ import annotations

import pulumi
import pytest
from pulumi_harness import GENERATED_KEY, SENTINELS, pulumi_config, run_stack, stack_doc

from infra import constants as C
import pulumi_harness as T
from infra.fit import FitError
from infra.spec import SpecError

NO_REGISTRY_PASSWORD = {k: v for k, v in SENTINELS.items() if k != "registry_password"}

# (id, stack, overrides, secrets, field named, words the message must carry)
CASES = [
    ("unknown-key", "local", {"max_model_lenn": "4096"}, None, "max_model_lenn", ["did you mean 'max_model_len'"]),
    ("unknown-section-key", "local", {"docker": {"host": "unix:///var/run/docker.sock", "publish_adress": "0.0.0.0"}},
     None, "docker.publish_adress", ["did you mean 'publish_address'"]),
    ("impossible-fit-120b-on-l40s", "l40s-sglang-20b", {"model": "openai/gpt-oss-120b"}, None, "model", ["L40S"]),
    ("missing-registry-password", "h100-vllm", {}, NO_REGISTRY_PASSWORD, "registry_password", ["invoke config --stack h100-vllm registry_password --secret"]),
    ("remote-push-without-credentials", "h100-vllm", {"image": {"registry": "ghcr.io/acme"}}, NO_REGISTRY_PASSWORD,
     "image.registry_username", ["needs registry credentials"]),
    ("bad-tensor-parallel", "h100x2-sglang", {"tensor_parallel": "3"}, None, "tensor_parallel", ["divide"]),
    ("unknown-backend", "local", {"backend": "tgi"}, None, "backend", ["vllm", "sglang"]),
    ("ssh-host-without-name", "h100-vllm", {"docker": {"host": "ssh://", "publish_address": "0.0.0.0"}}, None,
     "docker.host", ["ssh://user@gpu-host"]),
    ("too-few-pinned-gpus", "h100x2-sglang",
     {"docker": {"host": "ssh://ubuntu@gpu-h100x2.internal", "publish_address": "0.0.0.0", "device_ids": ["0"]}}, None,
     "docker.device_ids", ["needs 2"]),
    ("publish-address-not-an-ip", "local", {"docker": {"publish_address": "localhost"}}, None,
     "docker.publish_address", ["127.0.0.1"]),
]


def _run_failing(stack: str, config: dict[str, str], secret_keys: list[str], program=None) -> tuple[BaseException, T.RecordingMonitor]:
    from infra.deploy.program import deploy

    monitor = T.RecordingMonitor(T.DeterministicMocks(random_password=GENERATED_KEY))
    with pytest.raises(BaseException) as info:
        T.run_program(program or (lambda: deploy()), project=C.PROJECT, stack=stack, config=config,
                      secret_keys=secret_keys, monitor=monitor)
    return info.value, monitor


def _registered(monitor: T.RecordingMonitor) -> list[str]:
    return [f"{r['type']}::{r['name']}" for r in monitor.registrations if r["type"] != T.STACK_TYPE]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_config_fails_before_any_resource(case):
    _, stack, overrides, secrets, field, words = case
    config, secret_keys = pulumi_config(stack, secrets=secrets, overrides=overrides)
    error, monitor = _run_failing(stack, config, secret_keys)
    assert isinstance(error, SpecError), repr(error)
    assert error.field == field
    message = str(error)
    assert f"{C.CONFIG_NAMESPACE}:{field}" in message and "Fix:" in message
    for word in words:
        assert word in message
    assert _registered(monitor) == []
    # The error must not carry a secret either.
    assert not any(s in message for s in SENTINELS.values())


def test_plaintext_secret_in_config_is_refused_without_echoing_it():
    config, secret_keys = pulumi_config("local")
    hf = f"{C.CONFIG_NAMESPACE}:hf_token"
    secret_keys = [k for k in secret_keys if k != hf]  # set, but not as a secret
    error, monitor = _run_failing("local", config, secret_keys)
    assert isinstance(error, SpecError) and error.field == "hf_token"
    assert "--secret" in str(error) and SENTINELS["hf_token"] not in str(error)
    assert _registered(monitor) == []


def test_plain_setting_stored_as_secret_is_refused():
    config, secret_keys = pulumi_config("local")
    secret_keys = [*secret_keys, f"{C.CONFIG_NAMESPACE}:model"]
    error, monitor = _run_failing("local", config, secret_keys)
    assert isinstance(error, SpecError) and error.field == "model"
    assert _registered(monitor) == []


def test_over_ambitious_fit_names_the_numbers_and_fixes():
    config, secret_keys = pulumi_config("h100-vllm", overrides={"max_model_len": "131072", "gpu_memory_fraction": "0.8"})
    error, monitor = _run_failing("h100-vllm", config, secret_keys)
    assert isinstance(error, FitError)
    message = str(error)
    # one full-length sequence must fit (not max_num_seqs of them); the fix names a context that does
    assert "max_model_len 131072" in message and "lower max_model_len to" in message and "GiB" in message
    assert _registered(monitor) == []


def test_main_reports_the_field_without_a_traceback():
    """Under the CLI, `__main__` turns the SpecError into a RunError: Pulumi prints just the message."""
    from infra.deploy.program import main

    config, secret_keys = pulumi_config("local", overrides={"max_model_lenn": "4096"})
    error, monitor = _run_failing("local", config, secret_keys, program=main)
    assert isinstance(error, pulumi.RunError)
    assert f"{C.CONFIG_NAMESPACE}:max_model_lenn" in str(error)
    assert _registered(monitor) == []


def test_every_target_of_the_spec_is_implemented():
    from infra.deploy.targets import TARGETS

    assert set(C.TARGETS) == set(TARGETS)


def test_stack_files_hold_no_plaintext_secret(stack):
    doc = stack_doc(stack)
    for key in C.SECRET_KEYS:
        value = doc.get(f"{C.CONFIG_NAMESPACE}:{key}")
        assert value is None or (isinstance(value, dict) and set(value) == {"secure"}), key


def test_stacks_as_shipped_deploy_or_ask_for_exactly_their_missing_secret(stack):
    """With no secret set: `local` deploys; a stack that pushes as a registry user stops before any
    resource and names registry_password (the one secret the user must add)."""
    config, secret_keys = pulumi_config(stack, secrets={})
    spec_image = stack_doc(stack).get(f"{C.CONFIG_NAMESPACE}:image") or {}
    if spec_image.get("registry_username"):
        error, monitor = _run_failing(stack, config, secret_keys)
        assert isinstance(error, SpecError) and error.field == "registry_password"
        assert _registered(monitor) == []
    else:
        assert run_stack(stack, secrets={}).resources


@pytest.mark.parametrize("stack", ["h100-vllm", "h200-sglang"])
def test_unlocked_base_image_is_refused_before_any_resource_naming_lock_images(stack, tmp_path, monkeypatch):
    """The committed lock has no digests where Docker Hub is unreachable: every non-local stack is refused
    before anything is created (no 20 GB pull first); `local` (allow_unpinned_base) still deploys."""
    import yaml

    lock = tmp_path / "images.lock.yaml"
    committed = C.CATALOGUE_DIR / "images.lock.yaml"
    entries = {k: {"digest": None} for k in yaml.safe_load(committed.read_text())}  # as committed here
    lock.write_text(yaml.safe_dump(entries))
    monkeypatch.setattr(C, "IMAGE_LOCK_FILE", lock)
    config, secret_keys = pulumi_config(stack)
    error, monitor = _run_failing(stack, config, secret_keys)
    assert isinstance(error, SpecError) and error.field == "image.base_digest", repr(error)
    assert "invoke lock-images" in str(error) and "images.lock.yaml" in str(error)
    assert _registered(monitor) == []
