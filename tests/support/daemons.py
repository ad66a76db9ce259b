"""Helpers for tests that spawn real daemons: a sd_notify listener and a process wrapper.

Every wait has a timeout; every process started here is ended by pid in the fixture's teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PYTHON = sys.executable


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
        """Stop the thread and remove the socket."""
        self._closed = True
        self._thread.join(timeout=2)
        self._sock.close()
        self.path.unlink(missing_ok=True)


@dataclass
class DaemonProc:
    """A spawned daemon with its own notify listener."""

    proc: subprocess.Popen[bytes]
    notify: NotifyListener
    stderr_path: Path
    exited_at: float | None = None
    _waiter: threading.Thread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """The daemon's pid."""
        return self.proc.pid

    def start_exit_watch(self) -> None:
        """Record the monotonic time of exit as precisely as a blocking wait allows."""

        def wait() -> None:
            self.proc.wait()
            self.exited_at = time.monotonic()

        self._waiter = threading.Thread(target=wait, daemon=True)
        self._waiter.start()

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for exit; returns the exit code."""
        code = self.proc.wait(timeout=timeout)
        if self._waiter is not None:
            self._waiter.join(timeout=1)
        if self.exited_at is None:
            self.exited_at = time.monotonic()
        return code

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the daemon's pid (never by name)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def log_lines(self) -> list[str]:
        """stderr so far, as lines."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def events(self) -> list[dict[str, object]]:
        """stderr parsed as JSON objects (lines that do not parse raise)."""
        out = []
        for line in self.log_lines():
            text = line[line.index(">") + 1 :] if line.startswith("<") else line
            out.append(json.loads(text))
        return out


class Spawner:
    """Starts daemons for one test and ends every one of them, by pid, at teardown."""

    def __init__(self, tmp: Path, loop: str = "uvloop") -> None:
        self.tmp = tmp
        self.loop = loop
        self.procs: list[DaemonProc] = []
        self._n = 0

    def base_env(self) -> dict[str, str]:
        """The environment of a daemon: no inherited systemd or asched variables."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("NOTIFY_", "WATCHDOG_", "ASCHED_", "JOURNAL_", "INVOCATION_"))
        }
        env["XDG_CONFIG_HOME"] = str(self.tmp / "xdg-config")
        return env

    def spawn(
        self,
        state_dir: Path | None,
        *,
        argv: Sequence[str] | None = None,
        extra: Sequence[str] = (),
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        lock_timeout: float | None = None,
        stderr_fd: int | None = None,
    ) -> DaemonProc:
        """Start a daemon; ``argv`` replaces the default ``python -m asched --daemon``."""
        self._n += 1
        n = self._n
        listener = NotifyListener(self.tmp / f"notify-{n}.sock")
        full_env = self.base_env()
        if env:
            full_env.update(env)
        full_env["NOTIFY_SOCKET"] = str(listener.path)
        cmd = list(argv) if argv is not None else [PYTHON, "-m", "asched", "--daemon"]
        if state_dir is not None:
            cmd += ["--state-dir", str(state_dir)]
        cmd += ["--loop", self.loop]
        if lock_timeout is not None:
            cmd += ["--lock-timeout", str(lock_timeout)]
        cmd += list(extra)
        stderr_path = self.tmp / f"daemon-{n}.stderr"
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr_fd if stderr_fd is not None else err,
                env=full_env,
                cwd=cwd or self.tmp,
            )
        d = DaemonProc(proc, listener, stderr_path)
        self.procs.append(d)
        return d

    def cleanup(self) -> None:
        """SIGKILL every daemon still alive (by pid) and close the listeners."""
        for d in self.procs:
            if d.proc.poll() is None:
                d.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                d.proc.wait(timeout=5)
            d.notify.close()


def wait_until(pred: Callable[[], bool], timeout: float = 5.0, step: float = 0.005) -> bool:
    """Poll ``pred`` until true or ``timeout``; returns the last result (tests assert on it)."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def spawner_fixture(tmp: Path, loop: str) -> Iterator[Spawner]:
    """The body of the ``spawner`` fixture (kept here so other test packages can reuse it)."""
    s = Spawner(tmp, loop)
    try:
        yield s
    finally:
        s.cleanup()


def argv_variants(tmp: Path, state: Path) -> list[tuple[list[str], dict[str, str], Path]]:
    """(argv, env, cwd): the spellings and launch contexts a user or a unit might use."""
    console = Path(sys.executable).with_name("asched")
    rel_cwd = state.parent
    variants: list[tuple[list[str], dict[str, str], Path]] = [
        ([PYTHON, "-m", "asched", "--daemon", "--state-dir", str(state)], {}, tmp),
        ([PYTHON, "-m", "asched", "daemon", f"--state-dir={state}"], {}, Path("/")),
        ([PYTHON, "-m", "asched", "--daemon"], {"ASCHED_STATE_DIR": str(state)}, tmp),
        (
            [PYTHON, "-m", "asched", "daemon", "--state-dir", state.name],
            {"INVOCATION_ID": "1" * 32, "JOURNAL_STREAM": "8:12345"},
            rel_cwd,
        ),
        (
            [PYTHON, "-m", "asched", "--daemon"],
            {"STATE_DIRECTORY": str(state), "INVOCATION_ID": "2" * 32},
            Path("/"),
        ),
    ]
    if console.exists():
        variants.append(([str(console), "daemon", "--state-dir", str(state)], {}, tmp))
    return variants
