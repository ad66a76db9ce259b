"""asched: a check-in scheduler for AI agents (and people) working in tmux."""

from __future__ import annotations

__version__ = "0.1.0"
