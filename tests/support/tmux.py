"""A private tmux server per test (`tmux -S <tmp>/sock -f /dev/null`), killed at teardown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

TMUX_ENV = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
TMUX_ENV["SHELL"] = "/bin/sh"  # the shell tmux runs pane commands with


class Server:
    """A private tmux server for one test (started by the first session)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = str(root / "sock")
        self.pid: int | None = None

    def tmux(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(
            ["tmux", "-S", self.sock, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=5,
            env=TMUX_ENV,
            stdin=subprocess.DEVNULL,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"tmux {args}: {r.stderr}")
        return r.stdout

    def new_session(self, name: str, cmd: str, window_name: str | None = None) -> str:
        """Start a session (and the server with the first one); return its first pane id."""
        args = ["new-session", "-d", "-s", name, "-x", "200", "-y", "50", "-P", "-F", "#{pane_id}"]
        if window_name is not None:
            args += ["-n", window_name]
        pane = self.tmux(*args, cmd).strip()
        if self.pid is None:
            self.pid = int(self.tmux("display-message", "-p", "#{pid}").strip())
        return pane

    def new_window(self, session: str, cmd: str, name: str | None = None) -> str:
        args = ["new-window", "-d", "-t", f"={session}:", "-P", "-F", "#{pane_id}"]
        if name is not None:
            args += ["-n", name]
        return self.tmux(*args, cmd).strip()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.tmux("kill-server", check=False)
        if self.pid is not None:
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and psutil.pid_exists(self.pid):
                with contextlib.suppress(psutil.Error):
                    if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                        break
                time.sleep(0.01)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
