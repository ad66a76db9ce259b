"""Chaos: the tmux server SIGKILLed in the middle of deliveries, then started again."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asched.core.models import NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.core.states import DeliveryState
from asched.daemon.control import send as control_send
from asched.store.store import Store
from tests.chaos.conftest import tracebacks
from tests.chaos.ledger import all_final, reconcile, seen_lines
from tests.chaos.receivers import open_receivers, sigkill_server, start_daemon
from tests.support.daemons import Spawner, wait_until
from tests.support.stats import percentile
from tests.support.tmux import Server

ROUNDS = 5
PANES = 5
PER_ROUND = 30  # due every 100 ms: the server dies about a third of the way through
OUTAGE_S = 1.5


@pytest.mark.timeout(600)
def test_tmux_server_killed_mid_delivery_and_restarted(
    uv_spawner: Spawner, short_tmp: Path, server: Server, chaos_report: Callable[..., object]
) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    files = open_receivers(server, PANES)
    targets = list(files)
    d = start_daemon(uv_spawner, state, server)
    recover_ms: list[float] = []
    for rnd in range(ROUNDS):
        start = datetime.now(UTC) + timedelta(seconds=0.5)
        with Store.open(state / DB_NAME) as store:
            store.add_many(
                NewCheckIn(
                    target=targets[i % PANES],
                    message=f"tmux-{rnd}-{i:02d}",
                    rule=Once(due := start + timedelta(milliseconds=100 * i)),
                    next_due=due,
                    grace_s=60.0,  # long enough to outlast the outage: retried, not failed
                )
                for i in range(PER_ROUND)
            )
        control_send(state, "wake")
        time.sleep(0.5 + 0.1 * PER_ROUND / 3)
        sigkill_server(server)
        time.sleep(OUTAGE_S)
        restarted = time.monotonic()
        open_receivers(server, PANES)
        before = sum(len(v) for v in seen_lines(files).values())
        # The daemon finds the new server by itself (same socket): the next line lands soon.
        if wait_until(
            lambda b=before: sum(len(v) for v in seen_lines(files).values()) > b, timeout=20
        ):
            recover_ms.append((time.monotonic() - restarted) * 1000)
        assert d.proc.poll() is None, "the daemon died with the tmux server"
    total = ROUNDS * PER_ROUND
    settled = wait_until(lambda: all_final(state, total), timeout=180, step=0.25)
    assert d.proc.poll() is None
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=15) == 0
    ledger = reconcile(state, files)
    tb = tracebacks(uv_spawner)
    recover_ms.sort()
    with Store.open(state / DB_NAME) as store:
        reasons = sorted({f"{r.state}:{r.reason}" for r in store.history(limit=1000) if r.reason})
    chaos_report(
        "tmux server SIGKILLed mid-delivery",
        ROUNDS,
        duplicates=ledger.duplicates,
        lost=ledger.missing,
        tracebacks=tb,
        checkins=total,
        delivered=ledger.delivered,
        interrupted=ledger.interrupted,
        daemon_restarts=0,
        first_line_after_restart_ms=round(percentile(recover_ms, 50)) if recover_ms else None,
        reasons=reasons,
    )
    assert len(recover_ms) == ROUNDS, "the daemon did not deliver after a tmux restart"
    assert settled, ledger.states
    assert ledger.bad == 0 and tb == 0, ledger
    assert ledger.states.get(str(DeliveryState.FAILED), 0) == 0, ledger
    # What the dead server took is typed again into the new one (within the grace window).
    assert ledger.delivered == total, ledger
