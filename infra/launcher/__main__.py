import sys

from infra.launcher.main import main

sys.exit(main())
