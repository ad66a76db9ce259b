"""Driving the APScheduler peer process (bench/peers/apscheduler_peer.py) from the bench."""

from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import PYTHON, REPO, Cleanup, bench_env, run_timed, spawn_process
from bench.receivers import body
from tests.support.daemons import DaemonProc

PEER = "bench.peers.apscheduler_peer"


def versions() -> dict[str, str]:
    """The pinned peer's package versions."""
    out = {}
    for name in ("apscheduler", "sqlalchemy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def available() -> str | None:
    """Why the peer cannot run here (None when it can)."""
    missing = [k for k, v in versions().items() if v == "missing"]
    return f"not installed: {', '.join(missing)} (pip install -e '.[bench]')" if missing else None


def peer_env(tmp: Path) -> dict[str, str]:
    """The bench environment plus the repo on the path (the job module lives in bench/)."""
    env = bench_env(tmp)
    env["PYTHONPATH"] = str(REPO) + (":" + env["PYTHONPATH"] if "PYTHONPATH" in env else "")
    return env


def build_store(tmp: Path, n: int) -> tuple[Path, float]:
    """A job store with ``n`` hourly jobs; returns its path and the seconds the build took."""
    db = tmp / "jobs.sqlite"
    t = run_timed([PYTHON, "-m", PEER, "build", "--db", str(db), "-n", str(n)], peer_env(tmp), tmp)
    return db, t.wall


def add_cmd(db: Path) -> list[str]:
    """The argv that adds one job to ``db`` from a separate process."""
    return [PYTHON, "-m", PEER, "add", "--db", str(db)]


class ApsPeer:
    """One running APScheduler peer on its own job store."""

    def __init__(self, cu: Cleanup, tmux_socket: str, db: Path | None = None, name: str = "aps"):
        self.tmp = cu.tempdir("asched-aps-")
        self.db = db if db is not None else self.tmp / "jobs.sqlite"
        cmd = [PYTHON, "-m", PEER, "serve", "--db", str(self.db), "--tmux-socket", tmux_socket]
        self.proc: DaemonProc = spawn_process(
            cu, self.tmp, cmd, name=name, env=peer_env(self.tmp), stdin_pipe=True
        )
        self._added = 0

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds from spawn to READY=1 (scheduler started, store processed)."""
        return self.proc.wait_ready(timeout)

    def schedule(self, jobs: list[tuple[str, str, str, float]], timeout: float = 60.0) -> float:
        """Add ``(job_id, pane_id, token, due_epoch)`` jobs typing ``body(token)``; returns when
        (epoch) the peer had added them all."""
        assert self.proc.proc.stdin is not None
        add = [(job_id, pane, body(token), due) for job_id, pane, token, due in jobs]
        self.proc.proc.stdin.write((json.dumps({"add": add}) + "\n").encode())
        self.proc.proc.stdin.flush()
        self._added += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [e for e in self.proc.events(strict=False) if e.get("event") == "added"]
            if len(done) >= self._added:
                return float(done[-1]["t"])
            time.sleep(0.01)
        raise TimeoutError("the APScheduler peer did not add the jobs")

    def events(self, kind: str) -> list[dict[str, Any]]:
        """Job events of one kind (``executed``, ``missed``, ``error``)."""
        return [e for e in self.proc.events(strict=False) if e.get("event") == kind]

    def stop(self) -> float:
        """SIGTERM and wait; seconds to exit."""
        return self.proc.stop()
