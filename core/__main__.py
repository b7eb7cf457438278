"""``python -m sls_py`` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
