"""The chaos cases' set-up: receiving panes (``cat >> FILE``, a session each), a daemon, and the
daemon's tmux control client; the tmux server killed."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import psutil

from tests.support.daemons import DaemonProc, Spawner, wait_until
from tests.support.tmux import Server


def open_receivers(server: Server, count: int, prefix: str = "r") -> dict[str, Path]:
    """Start ``count`` sessions ``<prefix><n>``; returns target ("r3:0") -> the file it appends to.

    ``>>`` (not ``>``) so that a session started again after a tmux server was killed keeps what
    the first one received.
    """
    files: dict[str, Path] = {}
    for n in range(count):
        f = server.root / f"{prefix}{n}.txt"
        server.new_session(f"{prefix}{n}", f"cat >> {f}")
        files[f"{prefix}{n}:0"] = f
    return files


def start_daemon(spawner: Spawner, state: Path, server: Server) -> DaemonProc:
    """A daemon on ``state`` delivering into ``server``, once it said READY."""
    d = spawner.spawn(state, extra=["--tmux-socket", server.sock], lock_timeout=5)
    d.notify.wait_for("READY", "1", timeout=15)
    return d


def sigkill_server(server: Server) -> None:
    """Kill the tmux server by pid (no goodbye to its clients), and wait until it is gone."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    assert wait_until(lambda: not psutil.pid_exists(server.pid or 0), timeout=5) or (
        psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE
    )
    server.pid = None


def control_clients(server: Server, daemon: DaemonProc) -> list[int]:
    """The pids of the control-mode clients attached to ``server`` that ``daemon`` started.

    ``#{client_control_mode}``: tmux 3.3a has no ``#{client_control}`` (docs/TMUX-CONTROL.md).
    """
    out = server.tmux("list-clients", "-F", "#{client_control_mode} #{client_pid}", check=False)
    pids = []
    for line in out.splitlines():
        mode, _, pid = line.partition(" ")
        if mode != "1" or not pid.isdigit():
            continue
        with contextlib.suppress(psutil.Error):
            if psutil.Process(int(pid)).ppid() == daemon.pid:
                pids.append(int(pid))
    return pids


def await_control_client(server: Server, daemon: DaemonProc, timeout: float = 10.0) -> int:
    """The pid of the daemon's control client on ``server``, once one is attached (the daemon
    attaches it in the background after READY); AssertionError after ``timeout``."""
    found: list[int] = []

    def attached() -> bool:
        found[:] = control_clients(server, daemon)
        return bool(found)

    assert wait_until(attached, timeout=timeout, step=0.05), (
        "no control client of the daemon is attached: "
        + server.tmux("list-clients", "-F", "#{client_control_mode} #{client_pid}", check=False)
    )
    return found[0]
