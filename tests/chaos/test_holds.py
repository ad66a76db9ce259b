"""Chaos: deliveries held up (a frozen tmux server, a rate budget far below the due rate), a pause
and a stop in the middle of the hold, and a reload of the rate settings.

Recurring check-ins are counted per check-in: the lines its pane received (``L``) against its
journal rows that reached the pane for sure (``verified``, ``V``) and those that may have
(``unverified``, ``U``). ``V <= L <= V + U`` must hold: fewer lines is a lost check-in, more is a
duplicate, and a line that is not exactly one message is torn.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asched.core.models import CatchUp, Delivery, Every, NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.core.states import DeliveryState
from asched.daemon.control import send as control_send
from asched.store.store import Store
from tests.chaos.conftest import tracebacks
from tests.chaos.ledger import all_final, reconcile, seen_lines
from tests.chaos.receivers import open_receivers, start_daemon
from tests.cliharness import asched_process
from tests.support.daemons import Spawner, wait_until
from tests.support.tmux import Server

S = DeliveryState
DRAIN_S = 5.0  # the default [daemon] drain_timeout_s


@dataclass
class Tally:
    """Recurring check-ins: their panes' lines against their journal rows."""

    duplicates: int = 0
    lost: int = 0
    torn: list[str] = field(default_factory=list)
    states: Counter[str] = field(default_factory=Counter)
    lines: int = 0


def tally(state: Path, files: dict[str, Path]) -> Tally:
    """``V <= L <= V + U`` per check-in (see the module's docstring)."""
    with Store.open(state / DB_NAME) as store:
        checkins = store.list_checkins()
        rows = store.history(limit=100_000)
    by_target = {c.target: c for c in checkins}
    out = Tally()
    for r in rows:
        out.states[f"{r.state}:{r.reason}" if r.reason else str(r.state)] += 1
    for target, got in seen_lines(files).items():
        c = by_target[target]
        mine = [r for r in rows if r.checkin_id == c.id]
        v = sum(r.state is S.VERIFIED for r in mine)
        u = sum(r.state is S.UNVERIFIED for r in mine)
        whole = [line for line in got if line == c.message]
        out.torn += [line for line in got if line != c.message]
        out.lines += len(whole)
        out.lost += max(0, v - len(whole))
        out.duplicates += max(0, len(whole) - v - u)
    return out


def add_every(state: Path, targets: list[str], prefix: str, **kw: object) -> dict[str, int]:
    """A 1 s check-in per target (half of them catch up once, half skip); target -> id."""
    first = datetime.now(UTC) + timedelta(seconds=1)
    with Store.open(state / DB_NAME) as store:
        store.add_many(
            NewCheckIn(
                target=t,
                message=f"{prefix}-{n}",
                rule=Every(1, first),
                next_due=first,
                catch_up=CatchUp.ONCE if n % 2 else CatchUp.SKIP,
                **kw,  # type: ignore[arg-type]
            )
            for n, t in enumerate(targets)
        )
        added = [c for c in store.list_checkins() if c.message.startswith(f"{prefix}-")]
    control_send(state, "wake")
    return {c.target: c.id for c in added}


def freeze(server: Server) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)


def thaw(server: Server) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGCONT)


def reached_after(rows: list[Delivery], thawed: datetime) -> Counter[int]:
    """Per check-in: occurrences due before the thaw (held up) that reached the pane after it."""
    late: Counter[int] = Counter()
    for r in rows:
        if (
            r.state in (S.VERIFIED, S.UNVERIFIED)
            and r.finished_at is not None
            and r.finished_at > thawed
            and r.due_at < thawed - timedelta(seconds=1)
        ):
            late[r.checkin_id] += 1
    return late


@pytest.mark.timeout(300)
def test_tmux_frozen_for_20_s_under_1_s_checkins(
    uv_spawner: Spawner, short_tmp: Path, server: Server, chaos_report: Callable[..., object]
) -> None:
    # The server is SIGSTOPped for 20 s under 1 s check-ins: when it wakes, each pane gets at most
    # one late copy (not 20), nothing is lost, torn or doubled. Then: SIGTERM while the server is
    # frozen ends the daemon within its drain limit (+2 s), and a daemon started while it is
    # frozen says READY at once.
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    files = open_receivers(server, 6, "f")
    d = start_daemon(uv_spawner, state, server)
    add_every(state, list(files), "frozen")
    time.sleep(4)
    freeze(server)
    time.sleep(20)
    thaw(server)
    thawed = datetime.now(UTC)
    time.sleep(6)
    with Store.open(state / DB_NAME) as store:
        late = reached_after(store.history(limit=10_000), thawed)
    floods = sum(1 for n in late.values() if n > 1)
    # SIGTERM while frozen.
    freeze(server)
    time.sleep(1.5)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    try:
        rc: int | None = d.wait(timeout=DRAIN_S + 10)
    except subprocess.TimeoutExpired:
        rc = None
    stop_s = time.monotonic() - t0
    # A start while frozen: READY does not wait on tmux.
    t1 = time.monotonic()
    d2 = uv_spawner.spawn(state, extra=["--tmux-socket", server.sock], lock_timeout=5)
    d2.notify.wait_for("READY", "1", timeout=30)
    ready_s = time.monotonic() - t1
    thaw(server)
    time.sleep(6)
    d2.signal(signal.SIGTERM)
    assert d2.wait(timeout=DRAIN_S + 5) == 0
    got = tally(state, files)
    tb = tracebacks(uv_spawner)
    chaos_report(
        "tmux frozen 20 s, 1 s check-ins",
        len(files),
        duplicates=got.duplicates,
        lost=got.lost + len(got.torn),
        tracebacks=tb,
        floods=floods,
        late_copies_per_pane=dict(sorted(Counter(late.values()).items())),
        lines=got.lines,
        sigterm_while_frozen_exit_s=round(stop_s, 2),
        ready_while_frozen_s=round(ready_s, 2),
        states=dict(got.states),
    )
    assert rc == 0, "SIGTERM while tmux was frozen did not end the daemon"
    assert stop_s <= DRAIN_S + 2, stop_s
    assert ready_s < 5, ready_s  # 5 s: the tmux timeout, which READY waited for before
    assert floods == 0, late
    assert got.duplicates == got.lost == 0 and not got.torn, got
    assert tb == 0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("hold", ["frozen", "budget"])
def test_pause_during_a_hold_types_nothing_after_it(
    uv_spawner: Spawner,
    short_tmp: Path,
    server: Server,
    chaos_report: Callable[..., object],
    hold: str,
) -> None:
    # Deliveries held up (a frozen server, where they wait after typing began; a rate budget of
    # one paste in 5 s, where they wait before); `asched pause` lands during the hold. Nothing is
    # typed after the pause (only an occurrence already committed to its pane may finish),
    # neither by this daemon when the hold ends nor by the next one after a restart.
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    if hold == "budget":
        uv_spawner.write_config("[delivery]\nrate_per_s = 0.2\nburst = 1\n")
    files = open_receivers(server, 6, "p")
    d = start_daemon(uv_spawner, state, server)
    ids = add_every(state, list(files), "paused")
    time.sleep(3)
    if hold == "frozen":
        freeze(server)
    time.sleep(2)
    for target in files:
        asched_process("pause", "--target", target, state=state, check=True)
    paused_at = datetime.now(UTC)
    at_pause = {t: len(lines) for t, lines in seen_lines(files).items()}
    with Store.open(state / DB_NAME) as store:
        committed = Counter(
            r.checkin_id for r in store.in_flight() if r.state in (S.TYPING, S.TYPED, S.SUBMITTED)
        )
    time.sleep(3)
    # Across a restart: stopped during the hold, the next daemon starts after it.
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=DRAIN_S + 5) == 0
    if hold == "frozen":
        thaw(server)
    d2 = start_daemon(uv_spawner, state, server)
    time.sleep(6)
    after = {t: len(lines) for t, lines in seen_lines(files).items()}
    typed_after = sum(max(0, after[t] - at_pause[t] - committed[ids[t]]) for t in files)
    with Store.open(state / DB_NAME) as store:
        rows = store.history(limit=10_000)
    claimed_after = sum(1 for r in rows if r.started_at > paused_at)
    stopped = Counter(r.reason for r in rows if r.state is S.SKIPPED and r.reason == "paused")
    d2.signal(signal.SIGTERM)
    assert d2.wait(timeout=DRAIN_S + 5) == 0
    got = tally(state, files)
    tb = tracebacks(uv_spawner)
    chaos_report(
        f"pause during a hold ({hold}), and a restart",
        len(files),
        duplicates=got.duplicates,
        lost=got.lost + len(got.torn),
        tracebacks=tb,
        typed_after_pause=typed_after,
        claimed_after_pause=claimed_after,
        committed_at_pause=sum(committed.values()),
        skipped_paused=stopped["paused"],
        states=dict(got.states),
    )
    assert typed_after == 0 and claimed_after == 0, (after, at_pause, committed)
    if hold == "budget":
        assert stopped["paused"] > 0, got.states  # held before typing: skipped, not typed
    assert got.duplicates == got.lost == 0 and not got.torn, got
    assert tb == 0


def overlaps(rows: list[Delivery]) -> int:
    """The most occurrences of one check-in that were in flight at the same time."""
    worst = 0
    by: dict[int, list[Delivery]] = {}
    for r in rows:
        by.setdefault(r.checkin_id, []).append(r)
    for mine in by.values():
        events = sorted(
            [(r.started_at, 1) for r in mine]
            + [(r.finished_at, -1) for r in mine if r.finished_at is not None]
        )
        n = 0
        for _, step in events:
            n += step
            worst = max(worst, n)
    return worst


@pytest.mark.timeout(300)
def test_a_rate_budget_far_below_the_due_rate_does_not_pile_up(
    uv_spawner: Spawner, short_tmp: Path, server: Server, chaos_report: Callable[..., object]
) -> None:
    # 10 check-ins every second against a budget of 2 pastes a second: at most one occurrence per
    # check-in in flight, the rest journaled skipped(missed) (grace 2 s), and after `asched rm`
    # nothing more arrives than what was already committed.
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    uv_spawner.write_config("[delivery]\nrate_per_s = 2\nburst = 1\n")
    files = open_receivers(server, 10, "b")
    d = start_daemon(uv_spawner, state, server)
    ids = add_every(state, list(files), "budget", grace_s=2.0)
    time.sleep(15)
    # Each check-in's pane and its row in flight, taken just before its own `asched rm`: the
    # others go on delivering meanwhile.
    committed: Counter[int] = Counter()
    at_rm: dict[str, int] = {}
    for target, checkin_id in ids.items():
        with Store.open(state / DB_NAME) as store:
            committed[checkin_id] = sum(
                1
                for r in store.in_flight()
                if r.checkin_id == checkin_id and r.state in (S.TYPING, S.TYPED, S.SUBMITTED)
            )
        at_rm[target] = len(seen_lines({target: files[target]})[target])
        asched_process("rm", str(checkin_id), state=state, check=True)
    removed_at = time.monotonic()
    settled = wait_until(
        lambda: all_final(state, 1) and not _in_flight(state), timeout=30, step=0.25
    )
    time.sleep(3)
    after = {t: len(lines) for t, lines in seen_lines(files).items()}
    typed_after = sum(max(0, after[t] - at_rm[t] - committed[ids[t]]) for t in files)
    with Store.open(state / DB_NAME) as store:
        rows = store.history(limit=100_000)
    pile = overlaps(rows)
    missed = sum(1 for r in rows if r.state is S.SKIPPED and r.reason == "missed")
    delivered = sum(1 for r in rows if r.state is S.VERIFIED)
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=DRAIN_S + 5) == 0
    lines = sum(after.values())
    tb = tracebacks(uv_spawner)
    # The rows of removed check-ins stay in the journal: count them against the panes directly.
    verified = Counter(r.target for r in rows if r.state is S.VERIFIED)
    unverified = Counter(r.target for r in rows if r.state is S.UNVERIFIED)
    lost = sum(max(0, verified[t] - after[t]) for t in files)
    dups = sum(max(0, after[t] - verified[t] - unverified[t]) for t in files)
    chaos_report(
        "rate budget 2/s under 10 check-ins/s",
        len(files),
        duplicates=dups,
        lost=lost,
        tracebacks=tb,
        max_in_flight_per_checkin=pile,
        delivered=delivered,
        skipped_missed=missed,
        lines=lines,
        pastes_per_s=round(delivered / 15, 2),
        typed_after_rm=typed_after,
        rm_settled_s=round(time.monotonic() - removed_at, 1),
    )
    assert settled
    assert pile <= 1, pile
    assert missed > 0
    assert typed_after == 0
    assert lost == dups == 0
    assert tb == 0


def _in_flight(state: Path) -> bool:
    with Store.open(state / DB_NAME) as store:
        return bool(store.in_flight())


@pytest.mark.timeout(300)
def test_a_reload_applies_new_rate_settings(
    uv_spawner: Spawner, short_tmp: Path, server: Server, chaos_report: Callable[..., object]
) -> None:
    # 6 one-shots due at once under 0.5 pastes a second spread over ~10 s; after a reload to
    # 100 a second (SIGHUP), 6 more due at once arrive together.
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    uv_spawner.write_config("[delivery]\nrate_per_s = 0.5\nburst = 1\n")
    files = open_receivers(server, 6, "q")
    d = start_daemon(uv_spawner, state, server)

    def burst(prefix: str) -> float:
        due = datetime.now(UTC) + timedelta(seconds=1)
        with Store.open(state / DB_NAME) as store:
            store.add_many(
                NewCheckIn(target=t, message=f"{prefix}-{n}", rule=Once(due), next_due=due)
                for n, t in enumerate(files)
            )
            added = [c for c in store.list_checkins() if c.message.startswith(f"{prefix}-")]
        control_send(state, "wake")

        def finished() -> list[Delivery] | None:
            with Store.open(state / DB_NAME) as store:
                rows = [r for c in added for r in store.history(checkin_id=c.id)]
            return rows if len(rows) == len(added) and all(r.state.final for r in rows) else None

        assert wait_until(lambda: finished() is not None, timeout=60, step=0.1)
        mine = finished() or []
        ends = sorted(r.finished_at for r in mine if r.finished_at is not None)
        return (ends[-1] - ends[0]).total_seconds()

    before = burst("slow")
    uv_spawner.write_config("[delivery]\nrate_per_s = 100\nburst = 100\n")
    d.signal(signal.SIGHUP)
    d.notify.wait_for("RELOADING", "1", timeout=10)
    # The reload reads the file in a task; READY=1 follows once the new budget is in force.
    assert wait_until(lambda: len(d.notify.all("READY")) >= 2, timeout=10), "no READY after reload"
    after = burst("fast")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=DRAIN_S + 5) == 0
    ledger = reconcile(state, files)
    tb = tracebacks(uv_spawner)
    chaos_report(
        "reload of rate settings",
        2,
        duplicates=ledger.duplicates,
        lost=ledger.missing,
        tracebacks=tb,
        spread_at_0_5_per_s_s=round(before, 2),
        spread_after_reload_s=round(after, 2),
        delivered=ledger.delivered,
    )
    assert before >= 8, before
    assert after <= 2, after
    assert ledger.bad == 0 and ledger.delivered == 12, ledger
    assert tb == 0
