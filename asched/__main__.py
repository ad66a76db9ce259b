"""``python -m asched [--daemon | COMMAND ...]``."""

from __future__ import annotations

from asched.cli.main import exit_process, run_module

if __name__ == "__main__":
    exit_process(run_module())
