"""The chaos cases' set-up: receiving panes (``cat >> FILE``, a session each) and a daemon."""

from __future__ import annotations

from pathlib import Path

from tests.support.daemons import DaemonProc, Spawner
from tests.support.tmux import Server


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


def start_daemon(spawner: Spawner, state: Path, server: Server) -> DaemonProc:
    """A daemon on ``state`` delivering into ``server``, once it said READY."""
    d = spawner.spawn(state, extra=["--tmux-socket", server.sock], lock_timeout=5)
    d.notify.wait_for("READY", "1", timeout=15)
    return d
