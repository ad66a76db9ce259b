"""A private tmux server (``tmux -S <root>/sock -f /dev/null``) for a test or a benchmark.

The owner ends it with :meth:`Server.kill` (a test fixture's teardown, a benchmark's cleanup).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

# No TMUX/TMUX_PANE of an enclosing session: the client must talk to our socket only.
TMUX_ENV = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
TMUX_ENV["SHELL"] = "/bin/sh"  # the shell tmux runs pane commands with


class Server:
    """A private tmux server (started by the first session)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = str(root / "sock")
        self.pid: int | None = None

    def tmux(self, *args: str, check: bool = True, input: str | None = None) -> str:
        """Run one tmux command on this server (``input`` on its stdin, else none); with
        ``check``, AssertionError on failure."""
        r = subprocess.run(
            ["tmux", "-S", self.sock, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            env=TMUX_ENV,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            check=False,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"tmux {args}: {r.stderr}")
        return r.stdout

    def new_session(
        self,
        name: str,
        cmd: str | Sequence[str],
        window_name: str | None = None,
        *,
        size: tuple[int, int] = (200, 50),
    ) -> str:
        """Start a session (and the server with the first one) running ``cmd`` (a shell line,
        or an argv); return its first pane id."""
        args = ["new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1])]
        args += ["-P", "-F", "#{pane_id}"]
        if window_name is not None:
            args += ["-n", window_name]
        pane = self.tmux(*args, *([cmd] if isinstance(cmd, str) else cmd)).strip()
        if self.pid is None:
            self.pid = int(self.tmux("display-message", "-p", "#{pid}").strip())
        return pane

    def new_window(self, session: str, cmd: str, name: str | None = None) -> str:
        """Add a window running ``cmd`` to ``session``; returns its pane id."""
        args = ["new-window", "-d", "-t", f"={session}:", "-P", "-F", "#{pane_id}"]
        if name is not None:
            args += ["-n", name]
        return self.tmux(*args, cmd).strip()

    def kill(self) -> None:
        """kill-server on our socket, then SIGKILL the server's pid if it lingers. Idempotent:
        a pid is never signalled twice (it may have been reused)."""
        with contextlib.suppress(Exception):
            self.tmux("kill-server", check=False)
        pid, self.pid = self.pid, None
        if pid is None:
            return
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and psutil.pid_exists(pid):
            with contextlib.suppress(psutil.Error):
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    return
            time.sleep(0.01)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
