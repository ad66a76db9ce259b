"""A model API on loopback that never answers: every request ends in a closed connection.

The agent UIs are pointed here (``ANTHROPIC_BASE_URL``, ``GOOGLE_GEMINI_BASE_URL``) so that they
never try a public address, and each submitted prompt ends in one API error line, fast. Setting
``hold_s`` keeps new connections open that long first: the agent shows its "working" state
(a spinner, "esc to interrupt") for as long as a test needs a busy agent.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class FakeApi:
    """A TCP server on 127.0.0.1 (a free port) that reads a request and hangs up."""

    def __init__(self) -> None:
        self.hold_s = 0.0
        self.requests = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-api", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The base URL to give an agent."""
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests += 1
            threading.Thread(target=self._hang_up, args=(conn, self.hold_s), daemon=True).start()

    def _hang_up(self, conn: socket.socket, hold_s: float) -> None:
        with conn:
            conn.settimeout(1.0)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            end = time.monotonic() + hold_s
            while time.monotonic() < end and not self._stop.is_set():
                time.sleep(0.05)

    def close(self) -> None:
        """Stop serving; every held connection ends within 50 ms."""
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)
