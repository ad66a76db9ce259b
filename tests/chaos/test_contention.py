"""Chaos: 50 CLI processes adding 20 check-ins each while the daemon delivers."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.chaos.conftest import tracebacks
from tests.chaos.ledger import all_final, reconcile
from tests.chaos.receivers import open_receivers, start_daemon
from tests.cliharness import run_process
from tests.support.daemons import PYTHON, Spawner, wait_until
from tests.support.stats import percentile
from tests.support.tmux import Server

CLIS = 50
ADDS = 20
PANES = 25


@pytest.mark.timeout(600)
def test_fifty_clis_adding_while_the_daemon_delivers(
    uv_spawner: Spawner, short_tmp: Path, server: Server, chaos_report: Callable[..., object]
) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    files = open_receivers(server, PANES)
    targets = list(files)
    d = start_daemon(uv_spawner, state, server)
    env = uv_spawner.base_env()
    walls: list[float] = []
    failures: list[str] = []
    locked = 0

    def cli(worker: int) -> None:
        nonlocal locked
        for i in range(ADDS):
            n = worker * ADDS + i
            argv = [PYTHON, "-m", "asched", "add", "--state-dir", str(state)]
            # Due 1-3 s out: the first ones are being typed while later CLIs still add.
            argv += [targets[n % PANES], f"cli-{worker:02d}-{i:02d}", "--in", f"{1 + n % 3}s"]
            t0 = time.monotonic()
            r = run_process(argv, env=env, timeout=60)
            walls.append(time.monotonic() - t0)
            err = r.stderr
            locked += "locked" in err
            if r.returncode != 0 or err.strip():
                failures.append(f"{worker}/{i}: exit {r.returncode}: {err.strip()[:200]}")

    with ThreadPoolExecutor(CLIS) as pool:
        list(pool.map(cli, range(CLIS)))
    total = CLIS * ADDS
    settled = wait_until(lambda: all_final(state, total), timeout=240, step=0.5)
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=15) == 0
    ledger = reconcile(state, files)
    tb = tracebacks(uv_spawner)
    locked += sum("locked" in line for line in d.log_lines())
    walls.sort()
    chaos_report(
        "50 CLIs x 20 adds while delivering",
        CLIS,
        duplicates=ledger.duplicates,
        lost=ledger.missing + (total - ledger.checkins),
        tracebacks=tb,
        adds=total,
        stored=ledger.checkins,
        delivered=ledger.delivered,
        failed_adds=len(failures),
        database_locked=locked,
        add_p50_ms=round(percentile(walls, 50) * 1000),
        add_max_ms=round(walls[-1] * 1000),
    )
    assert not failures, failures[:5]
    assert locked == 0
    assert settled, ledger.states
    assert ledger.checkins == total and ledger.bad == 0 and tb == 0, ledger
    assert ledger.delivered == total, ledger
