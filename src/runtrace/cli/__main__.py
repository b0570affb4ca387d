"""``python -m runtrace.cli``: what the coding-agent hooks run (no console script needed)."""

import sys

from .app import main

sys.exit(main())
