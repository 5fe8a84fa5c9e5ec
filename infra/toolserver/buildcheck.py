"""The tool server image's build step (its Dockerfile's one RUN): the base pin and the server's imports."""
from __future__ import annotations

import os
import sys

from infra.launcher.buildsetup import BuildError, check_pin


def main() -> int:
    try:
        pin = check_pin(os.environ)
    except BuildError as exc:
        print(f"gptoss build: {exc}", file=sys.stderr)
        return 1
    print(f"gptoss build: {pin}")
    import mcp.server.mcpserver  # noqa: F401  the dependencies are in site/

    from infra.toolserver import server  # noqa: F401
    print(f"gptoss build: python tool server ready on Python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
