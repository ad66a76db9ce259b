"""Talking to tmux: panes, guards, the clients that run commands.

This module itself says how every tmux client of ours is started, whatever starts it (the
daemon's TmuxClient, the command line's one blocking look-up): its argv prefix, its environment
and the socket it reaches. Standard library only, so the command line can use it without asyncio
(and with no module more: tests/cli/test_imports.py counts them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def client_prefix(tmux_bin: str, socket_path: str | None) -> tuple[str, ...]:
    """``tmux -N -u [-S socket]``: ``-N`` never starts a server (one forked from the daemon would
    die with its service); ``-u`` keeps non-ASCII names when the locale is not UTF-8."""
    return (tmux_bin, "-N", "-u") + (("-S", socket_path) if socket_path is not None else ())


def client_env() -> dict[str, str]:
    """The environment of a tmux client: :func:`child_env` without ``TMUX``/``TMUX_PANE``, which
    name the server we run inside, not the one we were configured for."""
    # Here, not at the top: a command that only checks a target imports this package too.
    from asched.core.childenv import child_env

    env = child_env()
    env.pop("TMUX", None)
    env.pop("TMUX_PANE", None)
    return env


def default_socket(env: Mapping[str, str]) -> str:
    """tmux's own default socket for this user: ``$TMUX_TMPDIR`` (else /tmp), then
    ``tmux-UID/default``."""
    base = env.get("TMUX_TMPDIR") or "/tmp"
    return os.path.join(base, f"tmux-{os.getuid()}", "default")
