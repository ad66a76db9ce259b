"""The single-instance lock: ``flock(2)`` on ``<state_dir>/asched.lock``.

The kernel releases the lock when its holder dies, SIGKILL included, so there is no stale-lock
cleanup, no process scanning and no pid liveness check. The file is never truncated or unlinked
before it is held; its content (pid, start time, version, argv) is written only by the holder and
is information for ``asched status``, never the lock itself.

POSIX record locks (``lockf``) are not used on purpose: they belong to the process, and any
open/close of the same file elsewhere in the process silently drops them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from asched.core.errors import LockTimeout, StateDirError

LOCK_NAME = "asched.lock"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_POLL_S = 0.02  # a waiting daemon takes over within this of the holder's exit


class HolderInfo(NamedTuple):
    """What the holder wrote into the lock file (any field may be missing)."""

    pid: int | None
    started_at: str | None
    version: str | None
    argv: list[str] | None
    socket: str | None = None
    db: tuple[int, int] | None = None  # (device, inode) of the database the daemon has open
    wal: tuple[int, int] | None = None  # and of its -wal
    tmux: str | None = None  # the socket of the tmux server it delivers to


def _open(path: Path) -> int:
    # O_NOFOLLOW: a symlink planted at the lock path must not redirect our writes.
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:  # a read-only file system, no permission, a symlink planted there
        raise StateDirError(f"cannot open the lock file {path}: {exc.strerror or exc}") from exc


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


class InstanceLock:
    """A held lock; keep it (and its fd) for the life of the process."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    async def acquire(
        cls,
        path: Path,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        poll_s: float = DEFAULT_POLL_S,
        on_wait: Callable[[HolderInfo], None] | None = None,
        wait_report_s: float = 1.0,
    ) -> InstanceLock:
        """Poll ``LOCK_EX | LOCK_NB`` every ``poll_s`` until held or ``timeout_s`` has passed.

        Polling keeps the event loop free, so a cancellation (SIGTERM) ends the wait at once.
        ``on_wait`` is called with the holder's info at most every ``wait_report_s`` seconds.
        Raises :class:`LockTimeout` when the time is up.
        """
        import asyncio  # here, not at the top: the CLI reads lock files and needs no loop

        fd = _open(path)
        try:
            deadline = time.monotonic() + timeout_s
            next_report = time.monotonic()
            while not _try_flock(fd):
                now = time.monotonic()
                if now >= deadline:
                    raise LockTimeout(str(path), read_holder(path).pid, timeout_s)
                if on_wait is not None and now >= next_report:
                    on_wait(read_holder(path))
                    next_report = now + wait_report_s
                await asyncio.sleep(min(poll_s, max(deadline - now, 0.0)))
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    def write_info(self, info: dict[str, Any]) -> None:
        """Record who holds the lock; only ever called while holding it."""
        if self._fd is None:
            raise RuntimeError("lock released")
        data = (json.dumps(info, separators=(",", ":")) + "\n").encode()
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError as exc:  # a full disk
            raise StateDirError(f"cannot write the lock file {self.path}: {exc.strerror}") from exc

    def release(self) -> None:
        """Release the lock by closing its fd (the file itself stays)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def read_holder(path: Path) -> HolderInfo:
    """Parse the lock file's content; unknown fields are None (it may be mid-write or empty)."""
    try:
        with open(path, "rb") as fh:
            raw = json.loads(fh.read(64 * 1024) or b"{}")
    except (OSError, ValueError):
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    pid = raw.get("pid")
    argv = raw.get("argv")
    db, wal = _file_id(raw.get("db")), _file_id(raw.get("wal"))
    return HolderInfo(
        pid=pid if isinstance(pid, int) else None,
        started_at=raw.get("started_at") if isinstance(raw.get("started_at"), str) else None,
        version=raw.get("version") if isinstance(raw.get("version"), str) else None,
        argv=[str(a) for a in argv] if isinstance(argv, list) else None,
        socket=raw.get("socket") if isinstance(raw.get("socket"), str) else None,
        db=db,
        wal=wal,
        tmux=raw.get("tmux") if isinstance(raw.get("tmux"), str) else None,
    )


def _file_id(value: Any) -> tuple[int, int] | None:
    """A (device, inode) pair as the lock file holds it (a JSON list), or None."""
    if isinstance(value, list) and len(value) == 2 and all(type(x) is int for x in value):
        return (value[0], value[1])
    return None


def is_held(path: Path) -> bool:
    """True when some process holds the lock; never disturbs the holder.

    A shared, non-blocking flock on a separate open file description either fails (someone holds
    it exclusively) or succeeds and is dropped at once. Closing our descriptor cannot release the
    holder's lock: flock locks belong to open file descriptions, not to processes.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return True
            raise
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
