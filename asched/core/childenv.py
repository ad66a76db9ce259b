"""The environment a subprocess of the daemon gets: the service manager's variables stay here."""

from __future__ import annotations

import os
from collections.abc import Mapping

# Variables that belong to this process only: children (the tmux client) must not inherit them,
# or a child could speak for the service.
SERVICE_ONLY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without the service-only variables, for subprocesses."""
    src = os.environ if env is None else env
    return {k: v for k, v in src.items() if k not in SERVICE_ONLY_ENV}
