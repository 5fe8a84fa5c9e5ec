"""Issue 11 items 3 and 9 through the real Pulumi program (mocks): credentials in URLs, a mistyped
config namespace and option-like hosts are refused before any resource, never echoing the secret;
the tunnel and logs commands end their options before any host or name."""
from __future__ import annotations

import pytest
from pulumi_harness import SENTINELS, pulumi_config, run_stack
from test_deploy_bad_config import _registered, _run_failing

from infra import constants as C
from infra.deploy.targets.docker import logs_command, not_an_option, tunnel_command
from infra.spec import SpecError, load_spec
from infra.stackfile import read_stack_config

PASSWORD = "pw-7f3c9a1e55"


@pytest.mark.parametrize("stack, overrides, field, fix", [
    ("h100-vllm", {"docker": {"host": f"ssh://root:{PASSWORD}@gpu-host", "publish_address": "0.0.0.0"}},
     "docker.host", "SSH key"),
    ("h100-vllm", {"docker": {"host": f"tcp://admin:{PASSWORD}@gpu-host:2376", "publish_address": "0.0.0.0"}},
     "docker.host", "ssh://user@host"),
    ("h100-vllm", {"image": {"registry": f"bot:{PASSWORD}@ghcr.io/acme", "registry_username": "bot"}},
     "image.registry", "registry_password"),
    ("h100-vllm", {"image": {"registry": f"{PASSWORD}@ghcr.io/acme", "registry_username": "bot"}},
     "image.registry", "registry_username"),
])
def test_credentials_in_urls_are_refused_with_the_fix(stack, overrides, field, fix):
    config, secret_keys = pulumi_config(stack, overrides=overrides)
    error, monitor = _run_failing(stack, config, secret_keys)
    assert isinstance(error, SpecError) and error.field == field, repr(error)
    message = str(error)
    assert fix in message and PASSWORD not in message and "<credentials>@" in message
    assert _registered(monitor) == []


@pytest.mark.parametrize("key", ["gptoss:api_key", "gptoss-stack:model", "gptoss_stacks:hf_token"])
def test_mistyped_namespace_is_an_error_that_never_shows_the_value(key):
    config, secret_keys = pulumi_config("local")
    config[key] = SENTINELS["api_key"]  # a plaintext secret under the wrong namespace
    error, monitor = _run_failing("local", config, secret_keys)
    assert isinstance(error, SpecError) and error.field == key, repr(error)
    assert f"{C.CONFIG_NAMESPACE}:{key.split(':', 1)[1]}" in str(error)
    assert SENTINELS["api_key"] not in str(error)
    assert _registered(monitor) == []


def test_provider_namespaces_stay_pulumis():
    config, secret_keys = pulumi_config("local")
    config["docker:host"] = "unix:///var/run/docker.sock"
    run = run_stack("local", config=(config, secret_keys))
    assert run.stack_outputs["container_name"] == "gptoss-local"


def test_mistyped_namespace_in_a_stack_file(tmp_path):
    (tmp_path / "Pulumi.typo.yaml").write_text(
        "config:\n  gptoss-stacks:backend: vllm\n  gptoss-stacks:gpu: auto\n  gptoss:api_key: sk-plaintext-0123456789\n")
    with pytest.raises(SpecError) as exc:
        read_stack_config("typo", tmp_path)
    assert "gptoss-stacks:api_key" in str(exc.value) and "sk-plaintext" not in str(exc.value)


@pytest.mark.parametrize("docker", [
    {"host": "ssh://-oProxyCommand=touch pwned@gpu-host"},
    {"host": "ssh://-oProxyCommand=x"},
    {"host": "ssh://ops@gpu-host/-oProxyCommand=x"},
    {"host": "ssh://ops@gpu-host", "container_name": "--help"},
    {"host": "ssh://ops@gpu-host", "container_name": "-f"},
])
def test_option_like_hosts_and_names_are_refused_where_the_spec_is_read(docker):
    with pytest.raises(SpecError) as exc:
        load_spec({"backend": "vllm", "gpu": "auto", "docker": {"publish_address": "127.0.0.1", **docker}}, stack="opt")
    assert exc.value.field in ("docker.host", "docker.container_name")


def test_tunnel_and_logs_commands_end_options_before_the_host_and_name():
    spec = load_spec({"backend": "vllm", "gpu": "auto", "model": "openai/gpt-oss-20b",
                      "docker": {"host": "ssh://ops@gpu-box:2222", "publish_address": "127.0.0.1"}}, stack="t")
    tunnel = tunnel_command(spec)
    assert tunnel[-2:] == ["--", "ops@gpu-box"] and tunnel.index("--") > tunnel.index("-L")
    logs = logs_command("t", spec)
    assert logs[-2:] == ["--", "gptoss-t"]
    with pytest.raises(SpecError, match="command-line option"):
        not_an_option("-oProxyCommand=x", "docker.host", spec)
