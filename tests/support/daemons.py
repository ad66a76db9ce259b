"""Spawning real daemons for tests and benchmarks: each with its own sd_notify listener and
stderr file, ended by pid.

Every wait has a timeout; every process a :class:`Spawner` starts is ended by pid in the
fixture's teardown (a benchmark registers :meth:`DaemonProc.stop` with its own cleanup).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.support.notify import NotifyListener

PYTHON = sys.executable
# Variables a daemon must not inherit: systemd's (it would answer a foreign NOTIFY_SOCKET or
# believe it runs under a unit, and publish its state directory in the unit's runtime
# directory) and asched's own (a developer's state dir or tmux socket).
SYSTEMD_ENV = ("NOTIFY_", "WATCHDOG_", "ASCHED_", "JOURNAL_", "INVOCATION_", "RUNTIME_DIRECTORY")


def config_home(tmp: Path) -> Path:
    """The XDG_CONFIG_HOME of daemons spawned under ``tmp`` (empty: no user config file)."""
    return tmp / "xdg-config"


def daemon_env(tmp: Path, strip: Sequence[str] = SYSTEMD_ENV) -> dict[str, str]:
    """The environment of a daemon: nothing whose name starts with one of ``strip``, and
    XDG_CONFIG_HOME under ``tmp`` (the user's own config file must not count)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(tuple(strip))}
    env["XDG_CONFIG_HOME"] = str(config_home(tmp))
    return env


@dataclass
class DaemonProc:
    """A spawned daemon with its own notify listener and stderr file."""

    proc: subprocess.Popen[bytes]
    notify: NotifyListener
    stderr_path: Path
    spawned_at: float  # monotonic, just before the fork
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

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds from spawn to the READY=1 datagram's arrival; fails fast if the daemon exits."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.notify.wait_for("READY", "1", 0.2).at - self.spawned_at
            except TimeoutError:
                if self.proc.poll() is not None:
                    tail = self.stderr_path.read_text(errors="replace")[-500:]
                    raise RuntimeError(f"daemon exited {self.proc.returncode}: {tail}") from None
                if time.monotonic() > deadline:
                    raise

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the daemon's pid (never by name)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def ps(self) -> psutil.Process:
        """The daemon as a psutil Process."""
        return psutil.Process(self.proc.pid)

    def log_lines(self) -> list[str]:
        """stderr so far, as lines."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def events(self, strict: bool = True) -> list[dict[str, Any]]:
        """stderr parsed as JSON objects (a journal stream's ``<N>`` prefix dropped). A line that
        does not parse raises; with ``strict`` false it is skipped (a benchmark reads the log
        of a daemon that is still writing it)."""
        out = []
        for line in self.log_lines():
            text = line[line.index(">") + 1 :] if line.startswith("<") else line
            if strict:
                out.append(json.loads(text))
                continue
            with contextlib.suppress(ValueError):
                obj = json.loads(text)
                if isinstance(obj, dict):
                    out.append(obj)
        return out

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM by pid and wait (SIGKILL after ``timeout``); returns the seconds it took."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            # A pidfd turns readable at exit: Popen.wait(timeout) polls in steps of up to 50 ms.
            pidfd = os.pidfd_open(self.proc.pid)
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                exited = bool(select.select([pidfd], [], [], timeout)[0])
            finally:
                os.close(pidfd)
            if not exited:
                self.proc.kill()
            self.proc.wait(timeout=5)
        took = time.monotonic() - t0
        self.notify.close()  # after the clock: its thread takes up to 50 ms to notice
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        return took


def spawn(
    cmd: Sequence[str],
    tmp: Path,
    name: str,
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    stdin_pipe: bool = False,
    stderr_fd: int | None = None,
    new_session: bool = False,
) -> DaemonProc:
    """Start ``cmd`` with a NOTIFY_SOCKET of its own (``tmp/NAME.notify``) and stderr to
    ``tmp/NAME.stderr`` (or to ``stderr_fd``), in ``cwd`` (default ``tmp``). ``stdin_pipe``:
    keep a pipe to its stdin; ``new_session``: a session of its own (Ctrl-C reaches us only)."""
    listener = NotifyListener(tmp / f"{name}.notify")
    full_env = dict(env)
    full_env["NOTIFY_SOCKET"] = str(listener.path)
    stderr_path = tmp / f"{name}.stderr"
    with open(stderr_path, "wb") as err:
        spawned_at = time.monotonic()
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr_fd if stderr_fd is not None else err,
            env=full_env,
            cwd=cwd or tmp,
            start_new_session=new_session,
        )
    return DaemonProc(proc, listener, stderr_path, spawned_at)


class Spawner:
    """Starts daemons for one test and ends every one of them, by pid, at teardown."""

    def __init__(self, tmp: Path, loop: str = "uvloop") -> None:
        self.tmp = tmp
        self.loop = loop
        self.procs: list[DaemonProc] = []
        self._n = 0

    def base_env(self) -> dict[str, str]:
        """The environment of a daemon: no inherited systemd or asched variables."""
        return daemon_env(self.tmp)

    def write_config(self, text: str) -> Path:
        """Write the user config file that every daemon of this spawner reads; returns its path."""
        cfg = config_home(self.tmp) / "asched" / "config.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(text)
        return cfg

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
        full_env = self.base_env()
        if env:
            full_env.update(env)
        cmd = list(argv) if argv is not None else [PYTHON, "-m", "asched", "--daemon"]
        if state_dir is not None:
            cmd += ["--state-dir", str(state_dir)]
        cmd += ["--loop", self.loop]
        if lock_timeout is not None:
            cmd += ["--lock-timeout", str(lock_timeout)]
        cmd += list(extra)
        d = spawn(cmd, self.tmp, f"daemon-{self._n}", env=full_env, cwd=cwd, stderr_fd=stderr_fd)
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
