"""Chaos: the database removed, or replaced by another, under a daemon that is delivering."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asched.core.errors import EXIT_STORE_REPLACED
from asched.core.models import NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.daemon.control import send as control_send
from asched.store.store import Store
from tests.chaos.conftest import tracebacks
from tests.chaos.ledger import all_final, seen_lines
from tests.chaos.receivers import open_receivers, start_daemon
from tests.cliharness import asched_process
from tests.support.daemons import Spawner, wait_until
from tests.support.tmux import Server

PANES = 5
PER_DB = 40  # due 100 ms apart: the swap lands in the middle of the first database's


def _fill(db: Path, targets: list[str], prefix: str, start: datetime) -> set[str]:
    with Store.open(db) as store:
        store.add_many(
            NewCheckIn(
                target=targets[i % len(targets)],
                message=f"{prefix}-{i:02d}",
                rule=Once(due := start + timedelta(milliseconds=100 * i)),
                next_due=due,
                grace_s=60.0,
            )
            for i in range(PER_DB)
        )
    return {f"{prefix}-{i:02d}" for i in range(PER_DB)}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["replaced", "removed"])
def test_the_database_swapped_under_a_delivering_daemon(
    uv_spawner: Spawner,
    short_tmp: Path,
    server: Server,
    chaos_report: Callable[..., object],
    how: str,
) -> None:
    # Half-way through 40 deliveries, the database is replaced by another one (a restore, a
    # `mv`) or removed. The daemon notices, stops with exit 4 (the CLI refuses the file meanwhile)
    # and, started again as systemd would, delivers what the file now holds. Nothing is typed
    # twice, nothing torn, whatever the old daemon had in flight.
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    files = open_receivers(server, PANES, "s")
    targets = list(files)
    db = state / DB_NAME
    old_messages = _fill(db, targets, f"old-{how}", datetime.now(UTC) + timedelta(seconds=1.5))
    d = start_daemon(uv_spawner, state, server)
    control_send(state, "wake")
    time.sleep(1.5 + 0.1 * PER_DB / 2)
    keep = short_tmp / "kept"
    keep.mkdir()
    os.link(db, keep / DB_NAME)  # the old file stays readable after it leaves the path
    new_messages: set[str] = set()
    if how == "replaced":
        other = short_tmp / "other.db"
        new_messages = _fill(other, targets, "new", datetime.now(UTC) + timedelta(seconds=3))
        os.replace(other, db)
    else:
        db.unlink()
    swapped = time.monotonic()
    refused = asched_process("ls", state=state)
    rc = d.wait(timeout=15)
    detected_s = time.monotonic() - swapped
    # Started again (systemd's Restart=on-failure): it serves the file that is there now.
    d2 = start_daemon(uv_spawner, state, server)
    if new_messages:
        assert wait_until(lambda: all_final(state, PER_DB), timeout=60, step=0.25)
    time.sleep(1.0)
    d2.signal(signal.SIGTERM)
    assert d2.wait(timeout=10) == 0
    lines = [line for got in seen_lines(files).values() for line in got]
    copies = Counter(lines)
    torn = sum(n for line, n in copies.items() if line not in old_messages | new_messages)
    twice = sum(n - 1 for line, n in copies.items() if n > 1)
    new_lost = len(new_messages - set(copies))
    with Store.open(keep / DB_NAME) as store:
        old_rows = Counter(str(r.state) for r in store.history(limit=1000))
    old_typed = len(old_messages & set(copies))
    tb = tracebacks(uv_spawner)
    shutil.rmtree(keep, ignore_errors=True)
    chaos_report(
        f"database {how} under the daemon",
        1,
        duplicates=twice,
        lost=torn + new_lost,
        tracebacks=tb,
        exit_code=rc,
        detected_s=round(detected_s, 2),
        cli_exit=refused.returncode,
        old_typed=old_typed,
        old_journal=dict(old_rows),
        new_delivered=len(new_messages & set(copies)),
    )
    assert rc == EXIT_STORE_REPLACED and detected_s < 10, (rc, detected_s)
    assert refused.returncode == EXIT_STORE_REPLACED, refused
    assert twice == torn == new_lost == 0, copies
    assert tb == 0
