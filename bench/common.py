"""Helpers for the benchmarks: daemons with a notify socket, a private tmux server, statistics.

Everything started here is registered with a :class:`Cleanup` and ended by pid (daemons) or by
``kill-server`` on the private socket (tmux), also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

import psutil

REPO = Path(__file__).resolve().parent.parent
_VENV_BIN = REPO / ".venv" / "bin"
# The running interpreter's own environment first (a tox env has its own asched), else the venv.
_OWN_BIN = Path(sys.executable).parent
BIN = _OWN_BIN if (_OWN_BIN / "asched").exists() else _VENV_BIN
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
ASCHED = str(BIN / "asched")

_STRIPPED_ENV = ("NOTIFY_", "WATCHDOG_", "ASCHED_", "JOURNAL_", "INVOCATION_", "TMUX")
_DROPPED_ENV = ("XDG_RUNTIME_DIR", "RUNTIME_DIRECTORY", "XDG_STATE_HOME", "PYTHONDONTWRITEBYTECODE")
_pycache: Path | None = None
_source: Path | None = None


# -- cleanup -----------------------------------------------------------------------------------


class Cleanup:
    """Callbacks run in reverse order at exit; SIGTERM is turned into KeyboardInterrupt."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Cleanup:
        """Install the SIGTERM handler."""
        signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        """Run every callback; a second Ctrl-C during cleanup is ignored."""
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self._stack.close()
        finally:
            signal.signal(signal.SIGINT, old)

    def push(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` at exit (exceptions from it are swallowed)."""

        def safe() -> None:
            with contextlib.suppress(Exception):
                fn()

        self._stack.callback(safe)

    def tempdir(self, prefix: str = "asched-b-") -> Path:
        """A short temp dir (AF_UNIX paths stay under 108 bytes), removed at exit."""
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self.push(lambda: shutil.rmtree(path, ignore_errors=True))
        return path


def _raise_interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def use_bytecode_cache(path: Path | None) -> None:
    """Give every process started from here a private bytecode cache (PYTHONPYCACHEPREFIX).

    An installed asched has its bytecode compiled at install time; an editable install run with
    PYTHONDONTWRITEBYTECODE=1 (as in some CI and dev shells) compiles every module that has no
    ``__pycache__`` entry at every start. A private cache measures the installed case without
    writing into the working tree. None: PYTHONDONTWRITEBYTECODE=1, whatever is cached is used.
    """
    global _pycache
    _pycache = path


def use_source(path: Path | None) -> None:
    """Run daemons and CLIs from the asched package under ``path`` (e.g. a ``git archive``
    export of another commit) instead of the installed one; None: the installed one."""
    global _source
    _source = path


def bench_env(tmp: Path) -> dict[str, str]:
    """The environment for daemons and CLIs: nothing inherited from systemd, tmux or asched."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_STRIPPED_ENV) and k not in _DROPPED_ENV
    }
    env["XDG_CONFIG_HOME"] = str(tmp / "xdg-config")  # no user config file
    if _pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env["PYTHONPYCACHEPREFIX"] = str(_pycache)
    if _source is not None:
        env["PYTHONPATH"] = str(_source)  # ahead of the editable install's finder
    return env


# -- sd_notify listener and daemons ------------------------------------------------------------


class NotifyListener:
    """A datagram socket standing in for NOTIFY_SOCKET; records each message's arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.bind(str(path))
        self._sock.settimeout(0.05)
        self._cond = threading.Condition()
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True)
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
            fields = dict(ln.split("=", 1) for ln in data.decode().splitlines() if "=" in ln)
            with self._cond:
                self.messages.append((at, fields))
                self._cond.notify_all()

    def wait_for(self, key: str, value: str, timeout: float) -> float:
        """Monotonic arrival time of the first message with ``key=value``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, fields in self.messages:
                    if fields.get(key) == value:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {key}={value} within {timeout} s")
                self._cond.wait(left)

    def close(self) -> None:
        """Stop the thread, remove the socket."""
        self._closed = True
        self._thread.join(timeout=2)
        self._sock.close()
        self.path.unlink(missing_ok=True)


@dataclass
class Daemon:
    """A spawned ``asched daemon`` with its own notify socket and stderr file."""

    proc: subprocess.Popen[bytes]
    notify: NotifyListener
    stderr_path: Path
    spawned_at: float  # monotonic, just before the fork

    @property
    def pid(self) -> int:
        """The daemon's pid."""
        return self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds from spawn to the READY=1 datagram's arrival; fails fast if the daemon exits."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.notify.wait_for("READY", "1", 0.2) - self.spawned_at
            except TimeoutError:
                if self.proc.poll() is not None:
                    tail = self.stderr_path.read_text(errors="replace")[-500:]
                    raise RuntimeError(f"daemon exited {self.proc.returncode}: {tail}") from None
                if time.monotonic() > deadline:
                    raise

    def ps(self) -> psutil.Process:
        """The daemon as a psutil Process."""
        return psutil.Process(self.proc.pid)

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines so far (lines that do not parse are skipped)."""
        out = []
        text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                obj = json.loads(line[line.index(">") + 1 :] if line.startswith("<") else line)
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


def spawn_daemon(
    cleanup: Cleanup,
    tmp: Path,
    state_dir: Path,
    *,
    loop: str = "uvloop",
    tmux_socket: str | None = None,
    name: str = "d",
) -> Daemon:
    """Start ``asched daemon`` on ``state_dir`` in a session of its own (Ctrl-C reaches us only)."""
    cmd = [ASCHED, "daemon", "--state-dir", str(state_dir), "--loop", loop]
    if tmux_socket is not None:
        cmd += ["--tmux-socket", tmux_socket]
    return spawn_process(cleanup, tmp, cmd, name=name)


def spawn_process(
    cleanup: Cleanup,
    tmp: Path,
    cmd: Sequence[str],
    *,
    name: str,
    env: dict[str, str] | None = None,
    stdin_pipe: bool = False,
) -> Daemon:
    """Start ``cmd`` with a NOTIFY_SOCKET of its own and stderr to a file, in a session of its
    own; stopped (SIGTERM, then SIGKILL) at cleanup. ``stdin_pipe``: keep a pipe to its stdin."""
    listener = NotifyListener(tmp / f"{name}.notify")
    env = dict(bench_env(tmp) if env is None else env)
    env["NOTIFY_SOCKET"] = str(listener.path)
    stderr_path = tmp / f"{name}.stderr"
    with open(stderr_path, "wb") as err:
        spawned_at = time.monotonic()
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            cwd=tmp,
            start_new_session=True,
        )
    daemon = Daemon(proc, listener, stderr_path, spawned_at)
    cleanup.push(daemon.stop)
    return daemon


class Timed(NamedTuple):
    """How one command ran: wall and CPU seconds, and how often it was switched out."""

    wall: float
    cpu: float
    waits: int  # voluntary context switches: it blocked (I/O, locks, sleeps)
    preempted: int  # involuntary ones: it was runnable but another task got the CPU


def run_timed(cmd: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> Timed:
    """Run ``cmd`` (which must succeed) and say how it ran, from spawn to exit.

    CPU and switches come from RUSAGE_CHILDREN, so nothing else may be reaped meanwhile (the bench
    runs its commands one at a time; daemons are only reaped when stopped).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, timeout=60, check=False)
    took = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    return Timed(
        took,
        (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        after.ru_nvcsw - before.ru_nvcsw,
        after.ru_nivcsw - before.ru_nivcsw,
    )


def wakeups(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid``: how often it went to sleep."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def git_state() -> dict[str, Any]:
    """HEAD and the modified files of the repo (read-only: no optional index refresh)."""

    def git(*args: str) -> str:
        r = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(REPO), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        return r.stdout.rstrip("\n")

    dirty = [ln[3:] for ln in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"head": git("rev-parse", "--short", "HEAD"), "modified": dirty}


def parse_ts(text: str) -> float:
    """A log ``timestamp`` (ISO, UTC) as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- private tmux server -----------------------------------------------------------------------


class TmuxServer:
    """A private tmux server (``tmux -S DIR/tmux -f /dev/null``), killed at cleanup."""

    def __init__(self, cleanup: Cleanup, root: Path) -> None:
        self.sock = str(root / "tmux")
        self.pid: int | None = None
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        self._env["SHELL"] = "/bin/sh"
        cleanup.push(self.kill)

    def tmux(self, *args: str) -> str:
        """Run one tmux command on this server; raise on failure."""
        r = subprocess.run(
            ["tmux", "-S", self.sock, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            env=self._env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"tmux {args}: {r.stderr.strip()}")
        return r.stdout

    def new_session(self, name: str, cmd: str) -> str:
        """Start a session (the server with the first one); returns its pane id."""
        pane = self.tmux(
            "new-session", "-d", "-s", name, "-x", "200", "-y", "50", "-P", "-F", "#{pane_id}", cmd
        ).strip()
        if self.pid is None:
            self.pid = int(self.tmux("display-message", "-p", "#{pid}").strip())
        return pane

    def new_window(self, session: str, cmd: str) -> str:
        """Add a window running ``cmd``; returns its pane id."""
        args = ("new-window", "-d", "-t", f"={session}:", "-P", "-F", "#{pane_id}", cmd)
        return self.tmux(*args).strip()

    def kill(self) -> None:
        """kill-server on our socket, then SIGKILL the server's pid if it lingers."""
        with contextlib.suppress(Exception):
            self.tmux("kill-server")
        pid, self.pid = self.pid, None  # idempotent: never signal a pid twice (reuse)
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


# -- statistics and output ---------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, min, p50, p99, max and mean of ``values``."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": min(values),
        "p50": statistics.median(values),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def fmt(value: object, digits: int = 1) -> str:
    """A table cell: floats rounded, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain text table (first column left-aligned, the rest right-aligned)."""
    cells = [[str(h) for h in headers], *[[fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        first = r[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for r in cells[1:]:
        print(line(r))
    sys.stdout.flush()


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON (atomically: a temp file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
