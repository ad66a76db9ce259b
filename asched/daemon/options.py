"""What the daemon is started with: :class:`DaemonOptions`, apart from the daemon's own code.

The command line builds the options before it starts the daemon (asched/daemon/start.py), and
importing this module costs it nothing of the daemon's (no asyncio, no structlog).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from asched.core import paths
from asched.daemon.lock import DEFAULT_POLL_S, DEFAULT_TIMEOUT_S


class DaemonOptions(NamedTuple):
    """Everything the daemon is started with (from the command line and the environment)."""

    state_dir: Path
    config_path: Path
    lock_timeout_s: float = DEFAULT_TIMEOUT_S
    lock_poll_s: float = DEFAULT_POLL_S
    loop: str = "uvloop"
    log_level: str | None = None  # None: the config file's, else "info"
    tmux_socket: str | None = None
    argv: tuple[str, ...] = ()


def options_for(
    argv: tuple[str, ...],
    *,
    state_dir: str | None = None,
    config: str | None = None,
    tmux_socket: str | None = None,
    lock_timeout_s: float = DEFAULT_TIMEOUT_S,
    loop: str = "uvloop",
    log_level: str | None = None,
) -> DaemonOptions:
    """The options of a daemon started with these settings (None or the default: not given),
    the rest from the environment. The one place where an option not given gets its value, for
    ``asched daemon`` and for the units' bare ``python -m asched --daemon``, which starts
    without the command line's parser (:func:`asched.cli.main.run_module`)."""
    return DaemonOptions(
        # The daemon's own rule: it never follows another daemon's published state directory.
        state_dir=paths.state_dir(state_dir),
        config_path=paths.config_file(config),
        lock_timeout_s=lock_timeout_s,
        loop=loop,
        log_level=log_level,
        tmux_socket=paths.tmux_socket_setting(tmux_socket),
        argv=argv,
    )
