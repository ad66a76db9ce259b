"""Receiving panes for the chaos cases: each runs ``cat >> FILE`` in its own session."""

from __future__ import annotations

from pathlib import Path

from tests.tmuxsrv import Server


def open_receivers(server: Server, count: int, prefix: str = "r") -> dict[str, Path]:
    """Start ``count`` sessions ``<prefix><n>``; returns target ("r3:0") -> the file it appends to.

    ``>>`` (not ``>``) so that a session started again after a tmux server was killed keeps what
    the first one received.
    """
    files: dict[str, Path] = {}
    for n in range(count):
        f = server.root / f"{prefix}{n}.txt"
        server.new_session(f"{prefix}{n}", f"cat >> {f}")
        files[f"{prefix}{n}:0"] = f
    return files
