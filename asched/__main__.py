"""``python -m asched [--daemon | COMMAND ...]``."""

from __future__ import annotations

import sys

from asched.cli.main import run_module

if __name__ == "__main__":
    sys.exit(run_module())
