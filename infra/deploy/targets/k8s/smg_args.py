"""The SMG router's command line, from the chart values the Kubernetes target renders.

The SMG chart (v1.9.0, deploy/helm/smg/templates/_helpers.tpl, ``smg.routerArgs``) turns its values
into the router container's ``args``; :func:`launch_args` does the same for the values this project
sets (router.py's ``SmgValues``), with the chart's values.yaml defaults for the rest
(CHART_ROUTER_DEFAULTS, copied from deploy/helm/smg/values.yaml at v1.9.0), so ``smg launch`` can run
the router the cluster would run, outside a cluster. What differs, and only this:
- worker discovery (``--service-discovery --selector ...``, which needs the Kubernetes API) is
  replaced by a static ``--worker-urls`` list, as the chart itself renders when
  ``router.workerUrls`` is set;
- ``--host`` is the caller's (the chart binds 0.0.0.0 inside the pod), for the Prometheus listener
  too (``--prometheus-host``: SMG binds it to 0.0.0.0 by default), and the Prometheus port (the
  chart's 29000 is fixed; a test needs a free one);
- ``$(VAR)`` in an argument is expanded from the given environment the way the kubelet expands it
  in a container's args (an unknown name is left as written), the container's ``extraEnv``
  resolved by :func:`router_env` from the secret values.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# deploy/helm/smg/values.yaml (v1.9.0): the router keys smg.routerArgs reads that our values leave unset.
CHART_ROUTER_DEFAULTS: dict[str, Any] = {
    "port": 30000,
    "cacheThreshold": 0.3, "balanceAbsThreshold": 64, "balanceRelThreshold": 1.5, "evictionIntervalSecs": 120,
    "maxTreeSize": 67108864, "blockSize": 16, "maxPayloadSize": 536870912, "requestTimeoutSecs": 1800,
    "maxConcurrentRequests": -1, "queueSize": 100, "queueTimeoutSecs": 60,
    "retry": {"enabled": True, "maxRetries": 5, "initialBackoffMs": 50, "maxBackoffMs": 30000,
              "backoffMultiplier": 1.5, "jitterFactor": 0.2},
    "circuitBreaker": {"enabled": True, "failureThreshold": 10, "successThreshold": 3, "timeoutDurationSecs": 60,
                       "windowDurationSecs": 120},
    "healthCheck": {"enabled": True, "failureThreshold": 3, "successThreshold": 2, "timeoutSecs": 5,
                    "intervalSecs": 60, "endpoint": "/health"},
    "logging": {"level": "info"},
    "extraArgs": [],
}
# smg.routerArgs' switchable sections: (values key, flag when disabled, (flag, key) when enabled)
_SECTIONS = (
    ("retry", "--disable-retries", (("--retry-max-retries", "maxRetries"), ("--retry-initial-backoff-ms", "initialBackoffMs"),
                                    ("--retry-max-backoff-ms", "maxBackoffMs"),
                                    ("--retry-backoff-multiplier", "backoffMultiplier"),
                                    ("--retry-jitter-factor", "jitterFactor"))),
    ("circuitBreaker", "--disable-circuit-breaker", (
        ("--cb-failure-threshold", "failureThreshold"), ("--cb-success-threshold", "successThreshold"),
        ("--cb-timeout-duration-secs", "timeoutDurationSecs"), ("--cb-window-duration-secs", "windowDurationSecs"))),
    ("healthCheck", "--disable-health-check", (
        ("--health-failure-threshold", "failureThreshold"), ("--health-success-threshold", "successThreshold"),
        ("--health-check-timeout-secs", "timeoutSecs"), ("--health-check-interval-secs", "intervalSecs"),
        ("--health-check-endpoint", "endpoint"))),
)
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _merged(values: Mapping[str, Any]) -> dict[str, Any]:
    router = dict(CHART_ROUTER_DEFAULTS)
    for key, value in (values.get("router") or {}).items():
        if isinstance(value, Mapping) and isinstance(router.get(key), Mapping):
            router[key] = {**router[key], **value}
        else:
            router[key] = value
    return router


def _expand(arg: str, env: Mapping[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), arg)


def router_env(values: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, str]:
    """The router container's ``extraEnv``: plain values, and secretKeyRef entries from ``secrets``
    (the Secret's data by key). A key the secrets lack is an error naming it."""
    env: dict[str, str] = {}
    for item in (values.get("router") or {}).get("extraEnv") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = ((item.get("valueFrom") or {}).get("secretKeyRef") or {})
        if ref.get("key") not in secrets:
            raise KeyError(f"router extraEnv {item.get('name')!r}: no secret value for key {ref.get('key')!r}")
        env[item["name"]] = secrets[ref["key"]]
    return env


def launch_args(values: Mapping[str, Any], *, worker_urls: list[str], host: str, port: int,
                prometheus_port: int, env: Mapping[str, str] | None = None) -> list[str]:
    """``smg launch`` arguments equal to the chart's router args for ``values``, with the
    differences the module docstring lists."""
    r = _merged(values)
    if not worker_urls:
        raise ValueError("launch_args: at least one worker URL is needed (it replaces service discovery)")
    args = ["--host", host, "--port", str(port), "--policy", str(r["policy"]), "--worker-urls", *worker_urls]
    args += ["--cache-threshold", str(r["cacheThreshold"]), "--balance-abs-threshold", str(r["balanceAbsThreshold"]),
             "--balance-rel-threshold", str(r["balanceRelThreshold"]),
             "--eviction-interval-secs", str(r["evictionIntervalSecs"]),  # the chart writes the prefix --eviction-interval
             "--max-tree-size", str(int(r["maxTreeSize"])), "--block-size", str(r["blockSize"]),
             "--max-payload-size", str(int(r["maxPayloadSize"])), "--request-timeout-secs", str(r["requestTimeoutSecs"]),
             "--max-concurrent-requests", str(r["maxConcurrentRequests"]), "--queue-size", str(r["queueSize"]),
             "--queue-timeout-secs", str(r["queueTimeoutSecs"])]
    for section, disabled, flags in _SECTIONS:
        sub = r[section]
        if not sub["enabled"]:
            args.append(disabled)
        else:
            args += [a for flag, key in flags for a in (flag, str(sub[key]))]
    args += ["--prometheus-host", host, "--prometheus-port", str(prometheus_port), "--log-level", str(r["logging"]["level"])]
    args += [_expand(str(a), env or {}) for a in r["extraArgs"]]
    return args
