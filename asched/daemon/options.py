"""What the daemon is started with: :class:`DaemonOptions`, apart from the daemon's own code.

The command line builds the options before it starts the daemon (asched/daemon/start.py), and
importing this module costs it nothing of the daemon's (no asyncio, no structlog).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asched.daemon.lock import DEFAULT_POLL_S, DEFAULT_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """Everything the daemon is started with (from the command line and the environment)."""

    state_dir: Path
    config_path: Path
    lock_timeout_s: float = DEFAULT_TIMEOUT_S
    lock_poll_s: float = DEFAULT_POLL_S
    loop: str = "uvloop"
    log_level: str | None = None  # None: the config file's, else "info"
    tmux_socket: str | None = None
    argv: tuple[str, ...] = field(default_factory=tuple)
