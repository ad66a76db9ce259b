"""Chaos: 200 rounds of 4 daemons started at once on one state directory."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from asched.daemon.lock import LOCK_NAME, read_holder
from tests.chaos.conftest import tracebacks
from tests.support.daemons import Spawner, argv_variants
from tests.support.stats import percentile

ROUNDS = 200
LOCK_TIMEOUT_S = 0.3  # the losers give up quickly: the round is about the race, not the wait


@pytest.mark.timeout(900)
def test_two_hundred_rounds_of_four_starts_one_holder_each(
    uv_spawner: Spawner, short_tmp: Path, chaos_report: Callable[..., object]
) -> None:
    spawner = uv_spawner
    state = short_tmp / "state"
    variants = argv_variants(short_tmp, state)
    two_holders = no_holder = bad_exit = loser_ready = 0
    ready_ms: list[float] = []
    for rnd in range(ROUNDS):
        # Half the rounds on each event loop: the lock must not depend on it.
        spawner.loop = "uvloop" if rnd % 2 == 0 else "asyncio"
        procs = []
        t0 = time.monotonic()
        for i in range(4):
            argv, env, cwd = variants[(rnd + i) % len(variants)]
            procs.append(
                spawner.spawn(None, argv=argv, env=env, cwd=cwd, lock_timeout=LOCK_TIMEOUT_S)
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(p.proc.poll() is None for p in procs) > 1:
            time.sleep(0.01)
        alive = [p for p in procs if p.proc.poll() is None]
        if len(alive) != 1:
            two_holders += len(alive) > 1
            no_holder += not alive
            for p in alive:
                p.signal(signal.SIGTERM)
                p.wait()
            continue
        winner = alive[0]
        ready = winner.notify.wait_for("READY", "1", timeout=15)
        ready_ms.append((ready.at - t0) * 1000)
        holder = read_holder(state / LOCK_NAME)
        if holder.pid != winner.pid:
            two_holders += 1
        losers = [p for p in procs if p is not winner]
        bad_exit += sum(p.proc.returncode != 75 for p in losers)
        loser_ready += sum(p.notify.has("READY") for p in losers)
        winner.signal(signal.SIGTERM)
        bad_exit += winner.wait() != 0
        for p in procs:
            p.notify.close()
    tb = tracebacks(spawner)
    ready_ms.sort()
    chaos_report(
        "4 simultaneous starts",
        ROUNDS,
        duplicates=two_holders + loser_ready,
        lost=no_holder,
        tracebacks=tb,
        daemons=len(spawner.procs),
        one_holder_rounds=ROUNDS - two_holders - no_holder,
        bad_exit_codes=bad_exit,
        ready_p50_ms=round(percentile(ready_ms, 50)) if ready_ms else None,
    )
    assert (two_holders, no_holder, loser_ready, bad_exit, tb) == (0, 0, 0, 0, 0)
