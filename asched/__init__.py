"""asched: a check-in scheduler for AI agents (and people) working in tmux."""

from __future__ import annotations

# The one place the version is written: pyproject.toml reads it from here at build time
# ([tool.setuptools.dynamic], without importing), and `asched --version` prints it without
# importlib.metadata (which costs about 30 ms of imports). CHANGELOG.md has a section for it
# (tests/cli/test_package.py checks both).
__version__ = "0.1.0"
