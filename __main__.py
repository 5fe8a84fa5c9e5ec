"""Pulumi entry point (`pulumi up --stack <name>`, or `invoke up --stack <name>`).

All logic lives in infra/deploy/; this file only makes the repo importable and runs it.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra.deploy.program import main  # noqa: E402

main()
