"""The control socket: how a CLI write wakes the running daemon within milliseconds.

A Unix stream socket (mode 0600) that accepts one-line commands (``wake``, ``reload``, and
``hook EVENT``: an agent's hook event as one line of JSON, from ``asched hook``) from peers with
the daemon's own uid only (SO_PEERCRED). The daemon records the socket's path in the lock file,
so a CLI finds it whatever environment either was started with (a systemd unit has
RUNTIME_DIRECTORY; a shell does not).

A ``wake`` is how a write reaches a daemon that sleeps until its next due time: the scheduler
reads the store on a wake-up, at a due time and on a reload, never on a timer (scheduler.py).
A CLI that cannot reach the daemon loses nothing either: no daemon listening means none is past
its first read of the store (the socket listens before it), and the line of one that answered
late is still read.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from asched.daemon.lock import LOCK_NAME, read_holder

# The CLI imports this module for send(); asyncio and structlog stay out of that path (~40 ms).
if TYPE_CHECKING:
    import asyncio

COMMANDS = frozenset({"wake", "reload", "hook"})
MAX_LINE = 1 << 20  # a hook event carries a prompt: up to a body's size, with JSON escapes
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a connected Unix socket."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    _pid, uid, _gid = _UCRED.unpack(raw)
    return int(uid)


class ControlServer:
    """Serves the control socket on the daemon's loop; ``handlers`` map a command to a callback."""

    def __init__(
        self,
        path: Path,
        handlers: dict[str, Callable[[], None]],
        with_payload: dict[str, Callable[[str], str | None]] | None = None,
    ) -> None:
        self.path = path
        self.handlers = handlers
        # Commands followed by a payload on the same line; the callback returns an error or None.
        self.with_payload = dict(with_payload or {})
        self._server: asyncio.Server | None = None
        from asched.core.logs import get_logger

        self._log = get_logger()

    async def start(self) -> None:
        """Bind (replacing a socket file left by a dead daemon: we hold the lock, so it is)."""
        import asyncio

        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_socket():
                self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_LINE
            )
        finally:
            os.umask(old)
        self._log.debug("control.listening", path=str(self.path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import asyncio

        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock) if sock is not None else None
            if uid != os.geteuid():
                self._log.warning("control.refused", peer_uid=uid)
                return
            line = await asyncio.wait_for(reader.readline(), timeout=2.0)
            command, _, payload = line.decode(errors="replace").strip().partition(" ")
            writer.write(self._dispatch(command, payload).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        except ValueError:  # a line over MAX_LINE (asyncio.LimitOverrunError is one)
            self._log.warning("control.line_too_long", limit=MAX_LINE)
        finally:
            writer.close()

    def _dispatch(self, command: str, payload: str) -> str:
        """Run one command; the reply line: ``ok``, or ``error WHY``."""
        if command in self.with_payload:
            error = self.with_payload[command](payload)
            return "ok" if error is None else f"error {error}"
        handler = self.handlers.get(command)
        if handler is None or payload:
            return "error unknown command"
        handler()
        return "ok"

    async def close(self) -> None:
        """Stop listening and remove the socket file."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def send(
    state_dir: Path,
    command: str,
    timeout_s: float = 0.5,
    payload: str = "",
    *,
    queued_is_told: bool = False,
) -> bool:
    """Send ``command`` (and its one-line ``payload``) to the daemon on ``state_dir``; False
    when no daemon answered ``ok``. ``queued_is_told``: also True when the line was written to
    the daemon's socket but its answer did not come within ``timeout_s`` (a daemon kept off the
    CPU, as under 50 commands at once on two cores, or stopped): it reads the line when it runs
    again."""
    if command not in COMMANDS:
        raise ValueError(f"unknown control command {command!r}")
    if "\n" in payload:
        raise ValueError("a control payload is one line")
    path = read_holder(state_dir / LOCK_NAME).socket
    if not path:
        return False
    line = (f"{command} {payload}" if payload else command).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(timeout_s)
            sock.connect(path)
            sock.sendall(line)
            try:
                return sock.recv(64).startswith(b"ok")
            except TimeoutError:
                return queued_is_told
    except OSError:
        return False
