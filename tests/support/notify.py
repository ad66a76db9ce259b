"""A datagram socket standing in for systemd's NOTIFY_SOCKET, for tests and benchmarks."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Notification:
    """One sd_notify datagram, with the monotonic time it arrived."""

    at: float
    fields: dict[str, str]


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; collects messages in a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.bind(str(path))
        self._sock.settimeout(0.05)
        self.messages: list[Notification] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"notify-{path.name}")
        self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.monotonic()
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._cond:
                self.messages.append(Notification(at, fields))
                self._cond.notify_all()

    def wait_for(self, key: str, value: str | None = None, timeout: float = 10.0) -> Notification:
        """The first message (already received or arriving within ``timeout``) with ``key``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.messages:
                    if key in msg.fields and (value is None or msg.fields[key] == value):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {key}={value} on {self.path} within {timeout} s")
                self._cond.wait(left)

    def all(self, key: str) -> list[Notification]:
        """Every message so far carrying ``key``."""
        with self._cond:
            return [m for m in self.messages if key in m.fields]

    def has(self, key: str) -> bool:
        """True when some message so far carried ``key``."""
        return bool(self.all(key))

    def close(self) -> None:
        """Stop the thread and remove the socket (again: nothing)."""
        self._closed = True
        self._thread.join(timeout=2)
        self._sock.close()
        self.path.unlink(missing_ok=True)
