"""Chaos: the tmux server killed, and frozen, while the daemon's control-mode client is attached.

The daemon keeps one control client per tmux server (``tmux -C attach-session``, a child of the
daemon) and falls back to one-shot clients when it is not up. Each case first checks that the
daemon's control client is attached (``list-clients``: ``#{client_control_mode}`` 1, its pid's
parent the daemon), so the fault hits the control path, then that nothing was typed twice or lost.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asched.core.models import NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.daemon.control import send as control_send
from asched.store.store import Store
from tests.chaos.conftest import tracebacks
from tests.chaos.ledger import all_final, reconcile, seen_lines
from tests.chaos.receivers import (
    await_control_client,
    control_clients,
    open_receivers,
    sigkill_server,
    start_daemon,
)
from tests.support.daemons import Spawner, wait_until
from tests.support.tmux import Server

PANES = 5
TMUX_TIMEOUT_S = 5.0  # TmuxClient's default timeout_s: the freeze outlasts it


def add_burst(state: Path, targets: list[str], prefix: str, count: int, step_s: float) -> int:
    """``count`` one-shot check-ins over ``targets``, due every ``step_s`` from 0.5 s on, with a
    grace long enough to outlast the fault (retried, not failed); returns ``count``."""
    start = datetime.now(UTC) + timedelta(seconds=0.5)
    with Store.open(state / DB_NAME) as store:
        store.add_many(
            NewCheckIn(
                target=targets[i % len(targets)],
                message=f"{prefix}-{i:02d}",
                rule=Once(due := start + timedelta(seconds=step_s * i)),
                next_due=due,
                grace_s=60.0,
            )
            for i in range(count)
        )
    control_send(state, "wake")
    return count


def states(state: Path) -> list[str]:
    """Every journal row's final state and reason (the figures of the summary)."""
    with Store.open(state / DB_NAME) as store:
        rows = store.history(limit=1000)
    return sorted({f"{r.state}:{r.reason}" if r.reason else str(r.state) for r in rows})


@pytest.mark.timeout(120)
def test_tmux_server_killed_under_the_control_client(
    uv_spawner: Spawner, short_tmp: Path, server: Server, chaos_report: Callable[..., object]
) -> None:
    # SIGKILL (the control client gets "%exit server exited unexpectedly") with deliveries in
    # flight; a new server on the same socket 1.5 s later. What the dead server took is typed
    # again, once; the daemon attaches a control client to the new server.
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    files = open_receivers(server, PANES)
    d = start_daemon(uv_spawner, state, server)
    before = await_control_client(server, d)
    total = add_burst(state, list(files), "killed", 20, 0.1)
    # The kill falls in the burst: a few lines in (each pane's own pace), the rest in flight or due.
    assert wait_until(lambda: sum(len(v) for v in seen_lines(files).values()) >= 3, timeout=10)
    typed_before = sum(len(v) for v in seen_lines(files).values())
    sigkill_server(server)
    time.sleep(1.5)
    assert d.proc.poll() is None, "the daemon died with the tmux server"
    open_receivers(server, PANES)
    settled = wait_until(lambda: all_final(state, total), timeout=60, step=0.1)
    after = await_control_client(server, d, timeout=20)
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=15) == 0
    ledger = reconcile(state, files)
    tb = tracebacks(uv_spawner)
    chaos_report(
        "tmux SIGKILLed, control client attached",
        1,
        duplicates=ledger.duplicates,
        lost=ledger.missing,
        tracebacks=tb,
        checkins=total,
        typed_before_kill=typed_before,
        delivered=ledger.delivered,
        interrupted=ledger.interrupted,
        control_reattached=after != before,
        states=states(state),
    )
    assert 0 < typed_before < total, "the kill did not fall in the middle of the burst"
    assert settled, ledger.states
    assert ledger.bad == 0 and tb == 0, ledger
    assert ledger.delivered == total, ledger


@pytest.mark.timeout(120)
def test_tmux_server_frozen_under_the_control_client(
    uv_spawner: Spawner, short_tmp: Path, server: Server, chaos_report: Callable[..., object]
) -> None:
    # SIGSTOP for longer than the tmux timeout while check-ins fall due: the commands the daemon
    # wrote meanwhile run when the server resumes, in order (docs/TMUX-CONTROL.md), so a call
    # that timed out may still have happened. Nothing may be typed twice, nothing lost.
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    files = open_receivers(server, PANES, "z")
    d = start_daemon(uv_spawner, state, server)
    before = await_control_client(server, d)
    total = add_burst(state, list(files), "frozen", 25, 0.2)  # due over 5 s
    time.sleep(0.5 + 0.3)  # the first ones in flight
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        time.sleep(TMUX_TIMEOUT_S + 2)
        assert d.proc.poll() is None
    finally:
        os.kill(server.pid, signal.SIGCONT)
    settled = wait_until(lambda: all_final(state, total), timeout=60, step=0.1)
    after = control_clients(server, d)
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=15) == 0
    ledger = reconcile(state, files)
    tb = tracebacks(uv_spawner)
    chaos_report(
        f"tmux SIGSTOPped {TMUX_TIMEOUT_S + 2:g} s, control client attached",
        1,
        duplicates=ledger.duplicates,
        lost=ledger.missing,
        tracebacks=tb,
        checkins=total,
        delivered=ledger.delivered,
        interrupted=ledger.interrupted,
        control_kept=after == [before],
        states=states(state),
    )
    assert settled, ledger.states
    assert ledger.bad == 0 and tb == 0, ledger
    assert ledger.delivered == total, ledger
