"""`python -m infra.toolserver --host 0.0.0.0 --port 8765`: the python tool server (see infra/toolserver/__init__.py)."""
import sys

from infra.toolserver.server import main

sys.exit(main())
