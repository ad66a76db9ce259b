"""A bare tmux control-mode client for the floors: what a command costs through an attached
``tmux -C`` client when nothing else (no scheduler, no journal, no asched code) is in the way.

Standard library only. Lines are written as given: the callers' arguments need no quoting.
"""

from __future__ import annotations

import os
import select
import subprocess
import time


class RawControl:
    """``tmux -C attach -t SESSION -f no-output,ignore-size``, ended by :meth:`close`."""

    def __init__(self, tmux_prefix: list[str], session: str) -> None:
        argv = [*tmux_prefix, "-C", "attach-session", "-t", session, "-f", "no-output,ignore-size"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._buf = b""
        self._seq = 0
        self.send("display-message -p attached")

    def send(self, line: str, timeout: float = 10.0) -> None:
        """Write ``line`` and return once tmux has answered every command of it (a mark line
        follows it; its block ends the wait)."""
        assert self.proc.stdin is not None
        self._seq += 1
        mark = f"floor-mark-{self._seq}".encode()
        self.proc.stdin.write(line.encode() + b"\ndisplay-message -p " + mark + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while b"\n" + mark + b"\n" not in self._buf:
            self._read(deadline)
        self._buf = self._buf.split(b"\n" + mark + b"\n", 1)[1]

    def _read(self, deadline: float) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError("tmux control client: no answer")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EOFError("tmux control client ended")
        self._buf += chunk

    def close(self) -> None:
        """Detach (stdin closed), then make sure the process is gone and reaped."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
