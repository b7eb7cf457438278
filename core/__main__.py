"""``python -m sls_py`` runs the CLI (through :mod:`sls_py.entry`, as the console script)."""

import sys

from .entry import main

sys.exit(main())
