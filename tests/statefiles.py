"""State directories for the bad-input and hardening tests: seeded, and damaged on purpose."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asched.core.models import NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.store.store import Store


def seed(state: Path, n: int = 2) -> list[str]:
    """``n`` one-shot check-ins an hour or more away; returns their messages."""
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    messages = [f"check-in number {i}" for i in range(1, n + 1)]
    with Store.open(state / DB_NAME) as store:
        for i, message in enumerate(messages, 1):
            due = now + timedelta(hours=i)
            store.add_checkin(
                NewCheckIn(
                    target=f"w:{i}", message=message, rule=Once(due), next_due=due, key=f"k{i}"
                )
            )
    return messages


def damage(db: Path, kind: str) -> None:
    if kind == "random":
        db.write_bytes(os.urandom(16384))
        return
    seed(db.parent)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if kind == "foreign":
        conn.execute("PRAGMA application_id = 42")
    if kind == "newer":
        conn.execute("PRAGMA user_version = 99")
    if kind == "other-app":  # a plain SQLite file of some other program
        conn.execute("PRAGMA application_id = 0")
        conn.execute("PRAGMA user_version = 0")
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    if kind == "truncated":
        with db.open("r+b") as fh:
            fh.truncate(db.stat().st_size // 2)
    for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        extra.unlink(missing_ok=True)


KINDS = ["random", "truncated", "foreign", "newer", "other-app"]
