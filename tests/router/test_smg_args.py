"""The router's command line from the rendered chart values, read back by SMG 1.9.0's own parser."""
import pytest

from infra.deploy.targets.k8s.smg_args import CHART_ROUTER_DEFAULTS, launch_args, router_env
from tests.router.workers import rendered_values

KEY = "sk-test-" + "0a1b2c3d4e5f6a7b"  # a throwaway key: it must reach the parsed args and nothing else


def parse(args):
    smg = pytest.importorskip("smg.launch_router", reason="smg==1.9.0 is in the dev extras")
    return smg.parse_router_args(args)


def test_rendered_values_become_the_router_the_chart_would_run():
    values = rendered_values()
    env = router_env(values, {"API_KEY": KEY})
    args = launch_args(values, worker_urls=["http://127.0.0.1:9001", "http://127.0.0.1:9002"], host="127.0.0.1",
                       port=9000, prometheus_port=9003, env=env)
    ra = parse(args)
    hc = values["router"]["healthCheck"]
    assert ra.policy == values["router"]["policy"] == "cache_aware"
    assert ra.worker_urls == ["http://127.0.0.1:9001", "http://127.0.0.1:9002"] and not ra.service_discovery
    assert ra.host == "127.0.0.1" and ra.port == 9000
    assert ra.prometheus_host == "127.0.0.1" and ra.prometheus_port == 9003  # loopback, not SMG's 0.0.0.0
    assert ra.api_key == KEY  # $(GPTOSS_ROUTER_API_KEY) expanded as the kubelet does, from the Secret
    assert (ra.health_check_interval_secs, ra.health_failure_threshold, ra.health_success_threshold,
            ra.health_check_timeout_secs, ra.health_check_endpoint) == (
        hc["intervalSecs"], hc["failureThreshold"], hc["successThreshold"], hc["timeoutSecs"], hc["endpoint"])
    assert ra.request_timeout_secs == values["router"]["requestTimeoutSecs"]
    # the chart's defaults for what the project leaves unset
    d = CHART_ROUTER_DEFAULTS
    assert ra.retry_max_retries == d["retry"]["maxRetries"] and ra.cb_failure_threshold == d["circuitBreaker"]["failureThreshold"]
    assert ra.eviction_interval_secs == d["evictionIntervalSecs"] and ra.queue_size == d["queueSize"]
    assert not ra.disable_retries and not ra.disable_circuit_breaker and not ra.disable_health_check


def test_policy_and_disabled_sections_follow_the_values():
    values = rendered_values("round_robin")
    values["router"] = {**values["router"], "retry": {"enabled": False}, "circuitBreaker": {"enabled": False}}
    ra = parse(launch_args(values, worker_urls=["http://127.0.0.1:9001"], host="127.0.0.1", port=9000,
                           prometheus_port=9003, env=router_env(values, {"API_KEY": KEY})))
    assert ra.policy == "round_robin" and ra.disable_retries and ra.disable_circuit_breaker


def test_missing_secret_and_missing_workers_are_named():
    values = rendered_values()
    with pytest.raises(KeyError, match="GPTOSS_ROUTER_API_KEY.*'API_KEY'"):
        router_env(values, {})
    with pytest.raises(ValueError, match="worker URL"):
        launch_args(values, worker_urls=[], host="127.0.0.1", port=1, prometheus_port=2)
    # an unknown $(VAR) stays as written, as the kubelet leaves it
    args = launch_args(values, worker_urls=["http://127.0.0.1:9001"], host="127.0.0.1", port=1, prometheus_port=2)
    assert args[-2:] == ["--api-key", "$(GPTOSS_ROUTER_API_KEY)"]


def test_the_test_processes_keep_the_key_out_of_their_repr(tmp_path):
    # pytest prints these objects in assertion reports; the key must not reach the CI log that way
    from tests.router.workers import SmgRouter
    from tests.vllm_cpu.server import VllmServer

    assert KEY not in repr(VllmServer(plan=None, venv=tmp_path, workdir=tmp_path, api_key=KEY))
    assert KEY not in repr(SmgRouter(rendered_values(), ["http://127.0.0.1:9001"], KEY, tmp_path))
