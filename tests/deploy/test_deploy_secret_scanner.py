"""The no-plaintext-secret proof is only as good as its scanner: show it catches each way a
secret can slip out, including through the real program when a wrapper is missing."""
from __future__ import annotations

import base64
import json

import pulumi
from pulumi_harness import ALL_SENTINELS, SENTINELS, run_stack

import pulumi_harness as T
from infra.deploy.targets import docker_pulumi as docker_target

SECRET = SENTINELS["registry_password"]
WRAP = {T.SECRET_SIG_KEY: T.SECRET_SIG}


def wrapped(value):
    return {**WRAP, "value": value}


def test_plain_value_anywhere_is_found():
    assert T.find_plaintext_secrets({"a": [{"b": f"X={SECRET}"}]}, {"rp": SECRET}) == ["rp (plain) at $.a[0].b"]
    assert T.find_plaintext_secrets({SECRET: 1}, {"rp": SECRET})  # in a key


def test_value_inside_a_secret_wrapper_is_fine():
    assert T.find_plaintext_secrets({"a": wrapped([f"X={SECRET}"])}, {"rp": SECRET}) == []


def test_dockerconfigjson_auth_is_found_at_every_alignment():
    for user in ("a", "ab", "abc", "robot$ci"):
        auth = base64.b64encode(f"{user}:{SECRET}".encode()).decode()
        dockerconfig = json.dumps({"auths": {"ghcr.io": {"auth": auth}}})
        # as JSON text, and base64 of that JSON (a Kubernetes Secret's .data)
        for form in (dockerconfig, base64.b64encode(dockerconfig.encode()).decode(),
                     base64.urlsafe_b64encode(dockerconfig.encode()).decode()):
            leaks = T.find_plaintext_secrets({"data": {".dockerconfigjson": form}}, {"rp": SECRET})
            assert leaks, (user, form[:40])


def test_base64_forms_are_alignment_independent():
    forms = T.base64_forms(SECRET)
    for prefix in ("", "x", "xy", "xyz", "user:"):
        encoded = base64.b64encode((prefix + SECRET + "tail").encode()).decode()
        assert any(f in encoded for f in forms), prefix


def test_unrelated_text_is_not_a_leak():
    text = base64.b64encode(b"completely unrelated configuration text").decode()
    assert T.find_plaintext_secrets({"x": [text, "HF_HOME=/cache/huggingface"]}, ALL_SENTINELS) == []


def test_the_real_program_is_caught_if_a_secret_env_loses_its_wrapper(monkeypatch):
    """Negative control: unwrap the container's secret env and the proof must fail."""
    def leaky_env(ctx):
        env = [f"{k}={v}" for k, v in sorted(ctx.plan.env.items())]
        for var, value in sorted(ctx.secret_env.items()):
            env.append(pulumi.Output.unsecret(pulumi.Output.concat(var, "=", value)))
        return env

    monkeypatch.setattr(docker_target, "container_env", leaky_env)
    run = run_stack("h100-vllm")
    leaks = T.find_plaintext_secrets(run.everything_sent(), ALL_SENTINELS)
    assert any(leak.startswith("hf_token (plain)") for leak in leaks), leaks
    assert any(leak.startswith("api_key (plain)") for leak in leaks), leaks


def test_generated_key_would_leak_without_the_programs_own_wrapper(monkeypatch):
    """Mocks do not apply the provider's additional_secret_outputs: if the component returned the
    RandomPassword result without its own Output.secret, the key would reach the engine in plain
    text (here: the api_key stack output), and the proof says so."""
    import pulumi_random

    from infra.deploy import component

    def unwrapped_key(self, stack, spec, secrets, child):
        return pulumi_random.RandomPassword(f"{stack}-api-key", length=48, special=False, opts=child).result

    monkeypatch.setattr(component.GptOssDeployment, "_api_key", unwrapped_key)
    secrets = {k: v for k, v in SENTINELS.items() if k != "api_key"}
    run = run_stack("h100-vllm", secrets=secrets)
    leaks = T.find_plaintext_secrets(run.everything_sent(), ALL_SENTINELS)
    assert any(leak.startswith("generated_api_key (plain)") and "api_key" in leak for leak in leaks), leaks
