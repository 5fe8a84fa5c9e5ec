import json

import pytest

from infra.endpoint.target import (TargetError, default_health_url, normalize_base_url,
                                   resolve_target, target_from_outputs)

from .conftest import TEST_API_KEY, stack_outputs
from .invoke_helpers import run_task


@pytest.mark.parametrize("given,base", [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
    ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
    ("127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
    ("https://host.example/prefix/v1", "https://host.example/prefix/v1"),
])
def test_normalize_base_url(given, base):
    assert normalize_base_url(given) == base


def test_health_url_is_beside_v1():
    assert default_health_url("http://h:1/v1") == "http://h:1/health"
    assert default_health_url("https://h/p/v1") == "https://h/p/health"


def test_bad_url_and_both_or_neither_source():
    with pytest.raises(TargetError):
        normalize_base_url("ftp://x")
    with pytest.raises(TargetError):
        resolve_target()
    with pytest.raises(TargetError):
        resolve_target(stack="a", url="http://127.0.0.1:1")


def test_key_from_env_and_repr_never_shows_it(monkeypatch):
    monkeypatch.setenv("MY_KEY", TEST_API_KEY)
    t = resolve_target(url="http://127.0.0.1:9", api_key_env="MY_KEY", model="m")
    assert t.api_key == TEST_API_KEY and t.headers()["Authorization"] == f"Bearer {TEST_API_KEY}"
    assert TEST_API_KEY not in repr(t) and TEST_API_KEY not in str(t)
    assert "Authorization" not in t.headers(with_key=False)
    with pytest.raises(TargetError, match="MISSING_VAR"):
        resolve_target(url="http://127.0.0.1:9", api_key_env="MISSING_VAR")


def test_stack_outputs_via_fake_pulumi(fake_pulumi, tmp_path):
    fake_pulumi("prod", stack_outputs("http://127.0.0.1:8123", "openai/gpt-oss-120b", TEST_API_KEY,
                                      logs_command=["docker", "logs", "--tail", "200", "gptoss"]))
    t = resolve_target(stack="prod")
    assert t.base_url == "http://127.0.0.1:8123/v1" and t.health_url == "http://127.0.0.1:8123/health"
    assert (t.model, t.backend, t.gpu, t.api_key) == ("openai/gpt-oss-120b", "vllm", "h100-80gb", TEST_API_KEY)
    assert t.logs_command == ["docker", "logs", "--tail", "200", "gptoss"] and t.source == "stack:prod"
    calls = [json.loads(line) for line in fake_pulumi.log.read_text().splitlines()]
    assert calls == [["stack", "output", "--json", "--stack", "prod", "--show-secrets"]]
    # explicit options win over the outputs
    t2 = resolve_target(stack="prod", model="other", gpu="h200")
    assert (t2.model, t2.gpu) == ("other", "h200")


def test_the_stacks_planned_context_comes_from_its_launch_plan():
    outs = stack_outputs("http://127.0.0.1:8123", "m", None, launch_plan={"settings": {"max_model_len": 131072}})
    assert target_from_outputs(outs, "prod").max_model_len == 131072
    assert target_from_outputs(stack_outputs("http://127.0.0.1:8123", "m", None), "prod").max_model_len is None
    for bad in ("lots", -1, 0, True, 1 << 30, 3.5):
        outs["launch_plan"] = {"settings": {"max_model_len": bad}}
        with pytest.raises(TargetError, match=r"launch_plan\.settings\.max_model_len is .*whole number"):
            target_from_outputs(outs, "prod")
    outs["launch_plan"] = ["not", "an", "object"]
    with pytest.raises(TargetError, match="launch_plan is not a launch.json object.*invoke up --stack prod"):
        target_from_outputs(outs, "prod")


def test_a_bad_max_model_len_option_is_a_usage_error(capsys):
    code, out, err = run_task(["smoke-test", "--url", "http://127.0.0.1:9", "--max-model-len", "32k"], capsys)
    assert code == 2 and "--max-model-len is '32k'" in err


def test_unknown_stack_is_a_clear_error(fake_pulumi):
    with pytest.raises(TargetError, match="no stack named 'nope'") as exc:
        resolve_target(stack="nope")
    assert exc.value.code == 255


def test_stack_without_endpoint_url():
    with pytest.raises(TargetError, match="endpoint_url"):
        target_from_outputs({"model": "m"}, "s")


def test_missing_pulumi_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(TargetError) as exc:
        resolve_target(stack="prod")
    assert exc.value.code == 127 and "bash scripts/bootstrap.sh --with-pulumi" in str(exc.value)
    code, out, err = run_task(["smoke-test", "--stack", "prod"], capsys)
    assert code == 127
    assert "pulumi" in err and "bash scripts/bootstrap.sh --with-pulumi" in err


def test_stack_outputs_never_print_the_key(fake_pulumi, capsys):
    # the stack points at a closed port: the run fails, and nothing it prints holds the key
    fake_pulumi("dead", stack_outputs("http://127.0.0.1:9", "m", TEST_API_KEY))
    code, out, err = run_task(["smoke-test", "--stack", "dead", "--only", "health,models", "--timeout", "2"], capsys)
    assert code == 1
    assert "health" in out and TEST_API_KEY not in out + err


def test_unknown_check_name_is_a_usage_error(capsys):
    code, out, err = run_task(["smoke-test", "--url", "http://127.0.0.1:9", "--only", "nonsense"], capsys)
    assert code == 2 and "nonsense" in err


def test_smoke_test_against_nothing_stops_after_health_with_one_line(tmp_path, capsys):
    """It ran every check and printed 'Connection refused' nine times."""
    import json

    report = tmp_path / "smoke.json"
    code, out, err = run_task(["smoke-test", "--url", "http://127.0.0.1:9/v1", "--model", "m", "--json", str(report)], capsys)
    assert code == 1
    data = json.loads(report.read_text())
    assert [c["name"] for c in data["checks"]] == ["health"] and "no server answers" in data["stopped"]
    final = [line for line in err.splitlines() if "stopped after health" in line]
    assert len(final) == 1 and "http://127.0.0.1:9/health" in final[0] and "Connection refused" in final[0]
    assert (out + err).count("Connection refused") == 2  # the table's health row and that one line


def test_the_endpoint_client_never_imports_the_cli_layer():
    """infra/endpoint/target.py imported infra.tasks.pulumi_cli to read stack outputs; running pulumi
    is infra/pulumi_run.py now, below both."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "infra" / "endpoint"
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name}: {n}" for n in names if n == "infra.tasks" or n.startswith(("infra.tasks.", "invoke"))]
    assert found == []
