"""sd_notify(3) without a dependency: datagrams of ``KEY=VALUE`` lines to ``$NOTIFY_SOCKET``.

A :class:`Notifier` built without NOTIFY_SOCKET is a no-op, so the daemon calls it unconditionally.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    """Sends state changes to the service manager."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._addr: str | None = None
        self._sock: socket.socket | None = None
        path = env.get("NOTIFY_SOCKET", "")
        if path.startswith(("/", "@")):
            # A leading "@" names a socket in the abstract namespace.
            self._addr = "\0" + path[1:] if path.startswith("@") else path
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.watchdog_interval_s = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return self._sock is not None

    def send(self, *lines: str) -> bool:
        """Send ``lines`` as one datagram; False when nobody listens or the send failed.

        A failed notification must never take the daemon down: systemd will notice a missing
        READY or WATCHDOG on its own.
        """
        if self._sock is None or self._addr is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self._addr)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1, with an optional STATUS= line."""
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """A one-line STATUS= shown by ``systemctl status``."""
        return self.send(f"STATUS={text}")

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1: the service manager then expects the process to exit."""
        return self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        """RELOADING=1 with the CLOCK_MONOTONIC timestamp that Type=notify-reload requires."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: proof of life; sent from a task on the event loop."""
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket; later sends are no-ops."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of WATCHDOG_USEC in seconds, or None when no watchdog is asked of this process."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
