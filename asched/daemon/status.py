"""``asched status``: is a daemon running on a state directory, and what does it cost.

The answer comes from the lock itself (probed without disturbing the holder), never from scanning
processes; psutil only adds facts about the pid the holder wrote into the lock file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import psutil

from asched.core.errors import StateDirError
from asched.core.paths import DB_NAME
from asched.daemon.lock import LOCK_NAME, is_held, read_holder


class Status(NamedTuple):
    """A snapshot of one state directory's daemon."""

    running: bool
    state_dir: str
    db_path: str
    lock_path: str
    pid: int | None = None
    started_at: str | None = None
    version: str | None = None
    uptime_s: float | None = None
    rss_bytes: int | None = None

    def as_json(self) -> dict[str, Any]:
        """Stable field names for ``status --json``."""
        return self._asdict()


def probe(state_dir: Path) -> Status:
    """Look at ``state_dir`` without creating anything in it."""
    lock_path = state_dir / LOCK_NAME
    where = (str(state_dir), str(state_dir / DB_NAME), str(lock_path))
    try:
        held = is_held(lock_path)
    except OSError as exc:  # a state dir that is a file, a name too long, no permission
        raise StateDirError(f"cannot look at {lock_path}: {exc.strerror or exc}") from exc
    if not held:
        return Status(False, *where)
    holder = read_holder(lock_path)
    uptime_s: float | None = None
    rss: int | None = None
    if holder.pid is not None:
        try:
            proc = psutil.Process(holder.pid)
            with proc.oneshot():
                uptime_s = round(time.time() - proc.create_time(), 1)
                rss = int(proc.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return Status(
        True,
        *where,
        pid=holder.pid,
        started_at=holder.started_at,
        version=holder.version,
        uptime_s=uptime_s,
        rss_bytes=rss,
    )
