"""Chaos: the daemon SIGKILLed at random points of its deliveries, and SIGSTOPped past the grace."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asched.core.models import CatchUp, Every, NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.core.states import DeliveryState
from asched.daemon.control import send as control_send
from asched.store.store import Store
from tests.chaos.conftest import tracebacks
from tests.chaos.ledger import all_final, reconcile, seen_lines
from tests.chaos.receivers import open_receivers, start_daemon
from tests.support.daemons import Spawner, wait_until
from tests.support.tmux import Server

KILLS = 100
PANES = 20
MESSAGES = 400
SPACING_MS = 110  # 400 messages over 44 s: about as long as 100 kill cycles take
SEED = 20261130


def _once(target: str, message: str, due: datetime, **kw: object) -> NewCheckIn:
    return NewCheckIn(target=target, message=message, rule=Once(due), next_due=due, **kw)


@pytest.mark.timeout(600)
def test_a_hundred_sigkills_during_deliveries(
    uv_spawner: Spawner, short_tmp: Path, server: Server, chaos_report: Callable[..., object]
) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    files = open_receivers(server, PANES)
    targets = list(files)
    start = datetime.now(UTC) + timedelta(seconds=2)
    with Store.open(state / DB_NAME) as store:
        store.add_many(
            _once(
                targets[i % PANES], f"chaos-{i:04d}", start + timedelta(milliseconds=SPACING_MS * i)
            )
            for i in range(MESSAGES)
        )
    rng = random.Random(SEED)
    for _ in range(KILLS):
        d = start_daemon(uv_spawner, state, server)
        # Anywhere from "recovering what the last one left" to "deep in a settle delay".
        time.sleep(rng.uniform(0.0, 0.5))
        d.signal(signal.SIGKILL)
        d.wait()
    last = start_daemon(uv_spawner, state, server)
    settled = wait_until(lambda: all_final(state, MESSAGES), timeout=240, step=0.25)
    last.signal(signal.SIGTERM)
    assert last.wait(timeout=15) == 0
    ledger = reconcile(state, files)
    # Where the kills landed: the journal states the next daemon found in flight.
    found: Counter[str] = Counter()
    for d in uv_spawner.procs:
        found.update(str(e["state"]) for e in d.events() if e["event"] == "delivery.recovering")
    tb = tracebacks(uv_spawner)
    chaos_report(
        "SIGKILL during deliveries",
        KILLS,
        duplicates=ledger.duplicates,
        lost=ledger.missing,
        tracebacks=tb,
        checkins=MESSAGES,
        delivered=ledger.delivered,
        interrupted=ledger.interrupted,
        recovered=dict(sorted(found.items())),
    )
    assert settled, f"not all final: {ledger.states}"
    assert ledger.bad == 0 and tb == 0, ledger
    # Each one typed exactly once, whenever the kill came (staged buffers, see paste.Typist).
    assert ledger.delivered == MESSAGES, ledger


STOP_ROUNDS = 3


@pytest.mark.timeout(300)
def test_sigstop_past_the_grace_window_then_sigcont(
    uv_spawner: Spawner, short_tmp: Path, server: Server, chaos_report: Callable[..., object]
) -> None:
    rng = random.Random(SEED)
    wrong: list[str] = []
    detail: Counter[str] = Counter()
    dups = lost = 0
    for rnd in range(STOP_ROUNDS):
        state = short_tmp / f"state{rnd}"
        state.mkdir(mode=0o700)
        once_files = open_receivers(server, 3, prefix=f"o{rnd}-")
        rep_files = open_receivers(server, 2, prefix=f"e{rnd}-")
        a, b, c = list(once_files)
        e_skip, e_once = list(rep_files)
        stop_s = 5.0 + 2 * rnd  # every grace below is 1 s, except the one that should survive it
        d = start_daemon(uv_spawner, state, server)
        due = datetime.now(UTC) + timedelta(seconds=1.5)
        with Store.open(state / DB_NAME) as store:
            skip = store.add_checkin(_once(a, f"skip-{rnd}", due, grace_s=1.0))
            once = store.add_checkin(
                _once(b, f"once-{rnd}", due, grace_s=1.0, catch_up=CatchUp.ONCE)
            )
            kept = store.add_checkin(_once(c, f"kept-{rnd}", due, grace_s=60.0))
            rules = {"rule": Every(2, due), "next_due": due, "grace_s": 1.0}
            rs = store.add_checkin(NewCheckIn(target=e_skip, message=f"every-skip-{rnd}", **rules))
            ro = store.add_checkin(
                NewCheckIn(
                    target=e_once, message=f"every-once-{rnd}", catch_up=CatchUp.ONCE, **rules
                )
            )
        control_send(state, "wake")
        # Stop before the due time, or just after it (deliveries in flight), at random.
        time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + rng.uniform(-0.5, 0.3))
        d.signal(signal.SIGSTOP)
        stopped_at = datetime.now(UTC)
        time.sleep(stop_s)
        resumed_at = datetime.now(UTC)
        d.signal(signal.SIGCONT)
        time.sleep(5.0)
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=15) == 0
        # Occurrences due here were missed by more than their 1 s grace.
        missed_window = (stopped_at, resumed_at - timedelta(seconds=1.0))
        ledger = reconcile(state, once_files, ids={skip.id, once.id, kept.id})
        dups += ledger.duplicates
        lost += ledger.lost + ledger.misreported + len(ledger.garbled)
        with Store.open(state / DB_NAME) as store:
            outcome = {
                name: [(r.state, r.reason) for r in store.history(cid)]
                for name, cid in (("skip", skip.id), ("once", once.id), ("kept", kept.id))
            }
            reps = {
                name: store.history(cid, limit=100)
                for name, cid in (("skip", rs.id), ("once", ro.id))
            }
        seen = seen_lines(once_files)
        # The policies: skip is skipped (unless it was typed before the stop), once and kept land.
        if seen[a]:
            detail["skip-delivered-before-stop"] += 1
        elif outcome["skip"] != [(DeliveryState.SKIPPED, "missed")]:
            wrong.append(f"round {rnd}: skip: {outcome['skip']}")
        if seen[b] != [f"once-{rnd}"] or seen[c] != [f"kept-{rnd}"]:
            wrong.append(f"round {rnd}: once/kept: {seen[b]} {seen[c]} {outcome}")
        # Repeating ones: one row per occurrence, the lines match the rows, and of the occurrences
        # missed while stopped none is typed (skip) or just one (once): no flood after SIGCONT.
        rep_seen = seen_lines(rep_files)
        for name, target in (("skip", e_skip), ("once", e_once)):
            rows = reps[name]
            dues = Counter(r.due_at for r in rows)
            dups += sum(n - 1 for n in dues.values())
            delivered = [r for r in rows if r.state is DeliveryState.VERIFIED]
            dups += max(0, len(rep_seen[target]) - len(delivered))
            lost += max(0, len(delivered) - len(rep_seen[target]))
            missed = [r for r in rows if r.state is DeliveryState.SKIPPED]
            # Typed late: the catch-ups (a slot a catch-up covers is a late skipped(missed) row).
            late = [r for r in rows if r.late and r.state is not DeliveryState.SKIPPED]
            detail[f"every-{name}: skipped"] += len(missed)
            detail[f"every-{name}: late"] += len(late)
            # After SIGCONT: one delivery per 2 s period (plus a catch-up), never the missed ones.
            in_window = [r for r in rows if missed_window[0] <= r.due_at < missed_window[1]]
            typed = [r for r in in_window if r.state is not DeliveryState.SKIPPED]
            if len(typed) > (name == "once"):
                wrong.append(
                    f"round {rnd}: every-{name}: {len(typed)} missed ones typed: "
                    + "; ".join(f"{r.due_at:%S.%f}/{r.state}/{r.started_at:%S.%f}" for r in rows)
                    + f" window {missed_window[0]:%S.%f}-{missed_window[1]:%S.%f}"
                )
            if name == "once" and len(late) > 1:
                wrong.append(
                    f"round {rnd}: every-once caught up {len(late)} times: "
                    + "; ".join(
                        f"{r.due_at:%S.%f}/{r.state}/{r.reason}/late={r.late}/"
                        f"{r.started_at:%S.%f}-{r.finished_at:%S.%f}"
                        for r in rows
                        if r.finished_at is not None
                    )
                    + f" stopped {stopped_at:%S.%f} resumed {resumed_at:%S.%f}"
                )
    tb = tracebacks(uv_spawner)
    chaos_report(
        "SIGSTOP past grace, SIGCONT",
        STOP_ROUNDS,
        duplicates=dups,
        lost=lost,
        tracebacks=tb,
        policy_violations=len(wrong),
        **dict(detail),
    )
    assert (dups, lost, len(wrong), tb) == (0, 0, 0, 0), (wrong, detail)
