"""Is the database file at a state directory's path the one its running daemon has open?

Removed (a new empty file would be created) or replaced (``mv``, a restore) under a running
daemon, the file at the path is read by nobody, and another main file combined with the daemon's
-wal corrupts both. The daemon announces the (device, inode) of its database and -wal in its lock
file; every CLI command that opens the database compares them with what is at the path first.
"""

from __future__ import annotations

from pathlib import Path

from asched.core.errors import StoreReplaced
from asched.core.paths import DB_NAME
from asched.daemon.lock import LOCK_NAME, is_held, read_holder
from asched.store.connection import file_id, wal_path


def refuse_foreign_db(state: Path) -> None:
    """Raise :class:`StoreReplaced` (exit 4) when a daemon runs on ``state`` and the database
    or -wal at the path is not the one it has open; wake that daemon, so that it notices too and
    stops (systemd starts it again on the file that is there now)."""
    lock = state / LOCK_NAME
    try:
        if not is_held(lock):
            return
    except OSError:
        return  # the open that follows says what is wrong with the state directory
    holder = read_holder(lock)
    db = state / DB_NAME
    if holder.db is None:
        return  # a daemon that has not opened its database yet (or an older asched)
    if file_id(db) == holder.db and (holder.wal is None or file_id(wal_path(db)) == holder.wal):
        return
    # Lazy: the control client (socket, selectors: about 8 ms) is needed only here, and
    # `ls` and `history`, which go through this check on every call, never wake the daemon.
    from asched.daemon import control

    control.send(state, "wake")
    who = f"pid {holder.pid}" if holder.pid is not None else "a running daemon"
    raise StoreReplaced(
        f"{db} is not the database the daemon ({who}) has open: it was removed or replaced "
        "under it; the daemon stops when it notices (systemd starts it again), or restart it, "
        "then try again"
    )
