import pytest
from hypothesis import given, settings, strategies as st

from infra.spec import SpecError, load_spec

BASE = {"backend": "vllm", "model": "openai/gpt-oss-120b", "gpu": "h100-80gb"}


def spec(**kw):
    return load_spec({**BASE, **kw}, stack="t")


def test_minimal_spec_and_defaults():
    s = spec()
    assert s.resolved_tp == 1 and s.port == 8000 and s.target == "docker"
    assert s.loopback_only and not s.wants_api_key


@pytest.mark.parametrize("key,expect", [("max_modle_len", "max_model_len"), ("gpu_mem_fraction", "gpu_memory_fraction"),
                                        ("backnd", "backend"), ("tensor_paralel", "tensor_parallel")])
def test_unknown_key_did_you_mean(key, expect):
    with pytest.raises(SpecError, match=f"did you mean '{expect}'"):
        load_spec({**BASE, key: 1}, stack="t")


def test_unknown_nested_key():
    with pytest.raises(SpecError, match=r"docker\.publish_adress.*did you mean 'publish_address'"):
        spec(docker={"publish_adress": "0.0.0.0"})


@pytest.mark.parametrize("kw,field", [
    ({"backend": "tgi"}, "backend"), ({"gpu": "h100"}, "gpu"), ({"model": "openai/gpt-oss-70b"}, "model"),
    ({"gpu_memory_fraction": 0.0}, "gpu_memory_fraction"), ({"gpu_memory_fraction": 0.99}, "gpu_memory_fraction"),
    ({"gpu_memory_fraction": 1.5}, "gpu_memory_fraction"),
    ({"tensor_parallel": 3, "gpu_count": 4}, "tensor_parallel"), ({"tensor_parallel": 2}, "tensor_parallel"),
    ({"tensor_parallel": 16, "gpu_count": 16}, "tensor_parallel"),
    ({"max_model_len": 262144}, "max_model_len"), ({"port": 70000}, "port"),
])
def test_bad_values_name_the_field(kw, field):
    with pytest.raises(SpecError) as exc:
        spec(**kw)
    assert exc.value.field == field
    assert "Fix:" in str(exc.value) and "gptoss-stacks:" in str(exc.value)


@pytest.mark.parametrize("gpu", ["l40s-48gb", "rtx4090-24gb"])
def test_120b_on_small_cards_is_refused(gpu):
    with pytest.raises(SpecError, match="openai/gpt-oss-20b") as exc:
        spec(gpu=gpu)
    assert exc.value.field == "model"


def test_fp8_kv_on_ampere_is_refused():
    with pytest.raises(SpecError, match="FP8") as exc:
        spec(gpu="a100-80gb", kv_cache_dtype="fp8")
    assert exc.value.field == "kv_cache_dtype"
    spec(gpu="h100-80gb", kv_cache_dtype="fp8")  # fine on Hopper


@pytest.mark.parametrize("gpu", ["a100-80gb", "b200-180gb"])
def test_flash_attn_off_hopper_is_refused(gpu):
    with pytest.raises(SpecError, match="TRITON_ATTN"):
        spec(gpu=gpu, attention_backend="FLASH_ATTN")


def test_eagle3_needs_a_draft_model():
    with pytest.raises(SpecError, match="EAGLE3"):
        spec(model="openai/gpt-oss-20b", speculative="eagle3")


def test_plaintext_secret_is_refused_and_not_echoed():
    with pytest.raises(SpecError) as exc:
        spec(api_key="sk-plaintext-123")
    assert "sk-plaintext-123" not in str(exc.value)
    assert "invoke config --stack t api_key --secret" in str(exc.value)  # the README's way: no secret on argv


def test_secure_secret_is_recorded_without_value():
    s = spec(api_key={"secure": "v1:abc"}, hf_token={"secure": "v1:def"})
    assert s.secrets_set == {"api_key", "hf_token"}
    assert "v1:abc" not in s.model_dump_json()


def test_secret_looking_env_and_args_are_refused():
    with pytest.raises(SpecError, match="secret"):
        spec(env={"HF_TOKEN": "x"})
    with pytest.raises(SpecError, match="ps"):
        spec(extra_args=["--api-key", "x"])
    for name in ("GITHUB_TOKEN", "HFTOKEN", "DB_PASSWORD", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "MY_SECRET"):
        with pytest.raises(SpecError, match=f"env.{name}.*looks like a secret"):
            spec(env={name: "x"})


@pytest.mark.parametrize("name,secret", [
    # the spec's old word list (words ending in a secret word) and the launcher's (whole words, KEY among them)
    ("HF_TOKEN", True), ("HFTOKEN", True), ("HUGGING_FACE_HUB_TOKEN", True), ("VLLM_API_KEY", True),
    ("OPENAI_APIKEY", True), ("AWS_SECRET_ACCESS_KEY", True), ("SSH_PASSWORD", True), ("DB_PASSWD", True),
    ("MY_SECRET", True), ("ENCRYPTION_KEY", True), ("KEY", True), ("GCP_CREDENTIALS", True), ("OPENAI_API_KEYS", True),
    ("TIKTOKEN_ENCODINGS_BASE", False), ("TIKTOKEN_CACHE_DIR", False), ("TOKENIZERS_PARALLELISM", False),
    ("PUBLIC_KEY", False), ("SSH_PUBLIC_KEY", False), ("KEYBOARD", False), ("PORT", False), ("MAX_MODEL_LEN", False),
])
def test_one_secret_name_rule_for_the_spec_and_the_launcher(name, secret):
    from infra.constants import looks_secret
    from infra.launcher.main import redact_env

    assert looks_secret(name) is secret
    assert (redact_env({name: "v"})[name] == "<redacted>") is secret  # the launcher's output
    if secret:
        with pytest.raises(SpecError, match=f"env.{name}.*looks like a secret"):
            spec(env={name: "x"})
    else:
        assert spec(env={name: "x"}).env == {name: "x"}


def test_tokenizer_settings_are_not_taken_for_secrets():
    # the images set TIKTOKEN_ENCODINGS_BASE; tokenizers' own switch is TOKENIZERS_PARALLELISM
    env = {"TIKTOKEN_ENCODINGS_BASE": "/opt/encodings", "TIKTOKEN_CACHE_DIR": "/cache/tiktoken",
           "TOKENIZERS_PARALLELISM": "false"}
    assert spec(env=env).env == env


def test_wrong_target_section_is_refused():
    with pytest.raises(SpecError, match="target is 'docker'"):
        spec(runpod={"volume_gb": 100})


def test_cloud_targets_need_a_registry():
    with pytest.raises(SpecError) as exc:
        spec(target="kubernetes")
    assert exc.value.field == "image.registry"


def test_deploy_needs_registry_password_only_when_pushing_with_a_user():
    s = spec(image={"registry": "ghcr.io/x", "registry_username": "bot"})
    with pytest.raises(SpecError) as exc:
        s.check_deploy_secrets()
    assert exc.value.field == "registry_password"
    spec(image={"registry": "ghcr.io/x", "registry_username": "bot"},
         registry_password={"secure": "v1:x"}).check_deploy_secrets()
    spec(image={"registry": "localhost:5000"}).check_deploy_secrets()


def test_api_key_mode():
    assert spec(docker={"publish_address": "0.0.0.0"}).wants_api_key
    assert spec(api_key_mode="none", docker={"publish_address": "0.0.0.0"}).wants_api_key is False
    with pytest.raises(SpecError, match="api_key"):
        spec(api_key_mode="config")


# ---------------------------------------------------------------- properties

valid_specs = st.fixed_dictionaries({
    "backend": st.sampled_from(["vllm", "sglang"]),
    "model": st.sampled_from(["openai/gpt-oss-20b", "openai/gpt-oss-120b"]),
    "gpu": st.sampled_from(["h100-80gb", "h200-141gb", "b200-180gb", "a100-80gb", "mi300x-192gb", "auto"]),
}, optional={
    "max_model_len": st.integers(1024, 131072),
    "gpu_memory_fraction": st.floats(0.06, 0.98, allow_nan=False),
    "max_num_seqs": st.integers(1, 512),
    "enable_prefix_caching": st.booleans(),
    "port": st.integers(1, 65535),
    "extra_args": st.lists(st.sampled_from(["--max-log-len", "100", "--disable-log-requests"]), max_size=3)
        .filter(lambda a: not a or a[0].startswith("-")),
})


@settings(max_examples=150, deadline=None)
@given(valid_specs)
def test_round_trip_to_config(cfg):
    s = load_spec(cfg, stack="p")
    again = load_spec(s.to_config(), stack="p")
    assert again == s


@settings(max_examples=150, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-2, max_value=3))
def test_fraction_accepted_exactly_in_range(f):
    try:
        spec(gpu_memory_fraction=f)
        assert 0.05 < f <= 0.98
    except SpecError as exc:
        assert not (0.05 < f <= 0.98)
        assert exc.field == "gpu_memory_fraction"


@settings(max_examples=100, deadline=None)
@given(st.integers(-2, 70), st.integers(1, 8))
def test_tensor_parallel_rule(tp, count):
    ok = tp >= 1 and 64 % tp == 0 and tp <= count and tp <= 8
    try:
        spec(tensor_parallel=tp, gpu_count=count)
        assert ok
    except SpecError as exc:
        assert not ok and exc.field in ("tensor_parallel", "gpu_count")


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20))
def test_any_unknown_key_is_an_error_never_ignored(key):
    from infra.spec import StackSpec
    from infra.constants import SECRET_KEYS

    if key in StackSpec.model_fields or key in SECRET_KEYS:
        return
    with pytest.raises(SpecError, match="unknown key"):
        load_spec({**BASE, key: 1}, stack="t")


# ---------------------------------------------------------------- validation in the model

def _message(build) -> str:
    with pytest.raises(SpecError) as exc:
        build()
    return str(exc.value)


@pytest.mark.parametrize("bad,field", [
    ({"tensor_parallel": 2}, "tensor_parallel"),  # a rule across fields (TP above gpu_count)
    ({"docker": {"host": "ssh://"}}, "docker.host"),  # a section's own rule
    ({"kubernetes": {"network_policy": {"api_server_cidrs": ["10.0.0.1/33"]}}, "target": "kubernetes",
      "image": {"registry": "ghcr.io/a"}}, "kubernetes.network_policy.api_server_cidrs[0]"),  # two sections down
    ({"port": "abc"}, "port"),  # a type pydantic checks
    ({"max_modle_len": 4096}, "max_modle_len"),  # an unknown key
    ({"image": {"registry": "bot:pw@ghcr.io/a"}}, "image.registry"),  # its fix names the stack: `invoke config --stack t`
])
def test_every_way_of_building_a_spec_is_checked_with_one_message(bad, field):
    """A bare StackSpec(...), model_validate and model_copy(update=...) (which pydantic does not validate)
    all refuse what load_spec refuses, with the same one-line SpecError."""
    from infra.spec import StackSpec

    expected = _message(lambda: load_spec({**BASE, **bad}, stack="t"))
    assert expected.startswith(f"stack 't': gptoss-stacks:{field} = ") and "Fix:" in expected and "\n" not in expected
    assert "--stack NAME" not in expected
    good = spec()
    assert _message(lambda: StackSpec(stack="t", **BASE, **bad)) == expected
    assert _message(lambda: StackSpec.model_validate({**good.model_dump(), **bad})) == expected
    assert _message(lambda: good.model_copy(update=bad)) == expected


def test_a_valid_copy_is_still_a_copy():
    s = spec(docker={"publish_address": "0.0.0.0"})
    t = s.model_copy(update={"port": 9000})
    assert (t.port, t.docker, t.stack, s.port) == (9000, s.docker, "t", 8000)
    assert s.model_copy() == s


def test_a_section_built_alone_is_checked_too():
    from infra.spec import DockerTarget, KubernetesTarget

    # the constructor of a section alone: pydantic's ValidationError around the same message
    with pytest.raises(ValueError, match="gptoss-stacks:publish_address = 'localhost': Docker publishes ports on an IP"):
        DockerTarget(publish_address="localhost")
    assert _message(lambda: DockerTarget().model_copy(update={"publish_address": "localhost"})).startswith(
        "gptoss-stacks:publish_address = 'localhost': Docker publishes ports on an IP address only")
    assert _message(lambda: KubernetesTarget.model_validate({"namespace": "Bad_NS"})).startswith(
        "gptoss-stacks:namespace = 'Bad_NS': is not a Kubernetes namespace name")
    assert "did you mean 'max_replicas'" in _message(lambda: KubernetesTarget().model_copy(
        update={"autoscaling": {"max_replica": 2}}))


@pytest.mark.parametrize("config,message", [
    ({"tensor_paralel": 2}, "gptoss-stacks:tensor_paralel = '...': unknown key. Fix: did you mean 'tensor_parallel'?"),
    ({"kubernetes": {"autoscaling": {"max_replica": 2}}},
     "gptoss-stacks:kubernetes.autoscaling.max_replica = '...': unknown key. Fix: did you mean 'max_replicas'?"),
    ({"image": {"zzz": 1}}, "gptoss-stacks:image.zzz = '...': unknown key. Fix: known keys: allow_unpinned_base, "),
    # a misspelt secret key, even stored encrypted, is an unknown key (its value never shown)
    ({"registry_pasword": {"secure": "v1:abc"}}, "gptoss-stacks:registry_pasword = '...': unknown key. "
                                                 "Fix: did you mean 'registry_password'?"),
    ({"stack": "other"}, "gptoss-stacks:stack = '...': unknown key."),  # the reader sets it, not the file
    # an unknown key is named before the errors it probably causes
    ({"max_modle_len": 4096, "port": "abc"}, "gptoss-stacks:max_modle_len = '...': unknown key."),
])
def test_unknown_key_messages(config, message):
    assert _message(lambda: load_spec({**BASE, **config}, stack="t")).startswith(f"stack 't': {message}")


def test_the_launcher_reports_the_same_spec_error():
    import json

    from infra import constants as C
    from infra.launcher.errors import LaunchError
    from infra.launcher.main import spec_from_env

    expected = _message(lambda: load_spec({**BASE, "tensor_parallel": 2}, stack="t"))
    data = {**spec().model_dump(mode="json"), "tensor_parallel": 2}
    with pytest.raises(LaunchError) as exc:
        spec_from_env({C.SPEC_ENV: json.dumps(data)}, "vllm")
    assert str(exc.value) == expected
