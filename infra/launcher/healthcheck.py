"""Docker HEALTHCHECK: GET http://127.0.0.1:<port>/health (no curl needed in the image).

The port follows the same precedence as the launcher: PORT env, else the stack spec's port
(GPTOSS_STACK_SPEC), else the default.
"""
from __future__ import annotations

import json
import os
import sys

from infra.constants import DEFAULT_PORT, SPEC_ENV
from infra.launcher.progress import http_health


def health_url(env=os.environ) -> str:
    host, port = env.get("HOST") or "", env.get("PORT") or ""
    try:
        spec = json.loads(env.get(SPEC_ENV) or "{}")
    except ValueError:
        spec = {}
    host = host or str(spec.get("host") or "")
    port = port or str(spec.get("port") or DEFAULT_PORT)
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"  # the server listens everywhere; ask it on loopback
    return f"http://{host}:{port}/health"


def main() -> int:
    return 0 if http_health(health_url(), timeout=5.0) else 1


if __name__ == "__main__":
    sys.exit(main())
