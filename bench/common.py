"""Helpers for the benchmarks: cleanup, the daemons' environment, timed commands, tables.

Daemons, tmux servers and statistics come from tests/support, which the tests use too. Everything
started here is registered with a :class:`Cleanup` and ended by pid (daemons) or by
``kill-server`` on the private socket (tmux), also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from tests.support.daemons import SYSTEMD_ENV, DaemonProc, daemon_env, spawn

REPO = Path(__file__).resolve().parent.parent
_VENV_BIN = REPO / ".venv" / "bin"
# The running interpreter's own environment first (a tox env has its own asched), else the venv.
_OWN_BIN = Path(sys.executable).parent
BIN = _OWN_BIN if (_OWN_BIN / "asched").exists() else _VENV_BIN
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
ASCHED = str(BIN / "asched")

_STRIPPED_ENV = (*SYSTEMD_ENV, "TMUX")
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
    env = daemon_env(tmp, strip=_STRIPPED_ENV)
    for key in _DROPPED_ENV:
        env.pop(key, None)
    if _pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env["PYTHONPYCACHEPREFIX"] = str(_pycache)
    if _source is not None:
        env["PYTHONPATH"] = str(_source)  # ahead of the editable install's finder
    return env


# -- daemons -----------------------------------------------------------------------------------


def spawn_daemon(
    cleanup: Cleanup,
    tmp: Path,
    state_dir: Path,
    *,
    loop: str = "uvloop",
    tmux_socket: str | None = None,
    name: str = "d",
    extra_env: dict[str, str] | None = None,
) -> DaemonProc:
    """Start ``asched daemon`` on ``state_dir`` in a session of its own (Ctrl-C reaches us only);
    ``extra_env``: variables on top of :func:`bench_env` (a WATCHDOG_USEC, as systemd sets)."""
    cmd = [ASCHED, "daemon", "--state-dir", str(state_dir), "--loop", loop]
    if tmux_socket is not None:
        cmd += ["--tmux-socket", tmux_socket]
    env = {**bench_env(tmp), **extra_env} if extra_env else None
    return spawn_process(cleanup, tmp, cmd, name=name, env=env)


def spawn_process(
    cu: Cleanup,
    tmp: Path,
    cmd: Sequence[str],
    *,
    name: str,
    env: dict[str, str] | None = None,
    stdin_pipe: bool = False,
) -> DaemonProc:
    """Start ``cmd`` with a NOTIFY_SOCKET of its own and stderr to a file, in a session of its
    own; stopped (SIGTERM, then SIGKILL) at cleanup. ``stdin_pipe``: keep a pipe to its stdin."""
    daemon = spawn(
        cmd,
        tmp,
        name,
        env=bench_env(tmp) if env is None else env,
        stdin_pipe=stdin_pipe,
        new_session=True,
    )
    cu.push(daemon.stop)
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


# -- output ------------------------------------------------------------------------------------


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
