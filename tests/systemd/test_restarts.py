"""`systemctl restart`, idle and while check-ins fire every second: always back, nothing doubled.

Restart-to-READY is measured twice: as systemd logged it (from "Stopping" to "Started", which
Type=notify logs once the new process sent READY=1), and as the wall time of ``systemctl
restart`` run from the host through nsenter (the first plus the client's own start-up). The
limit applies to the first.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from datetime import datetime

import pytest

from tests.support.systemd import (
    TMUX_SOCKET,
    TMUX_UNIT,
    UNIT,
    Svc,
    assert_exactly_once,
    latency_summary,
    quiesce,
)

pytestmark = pytest.mark.systemd


@pytest.mark.timeout(60)
def test_idle_restart_to_ready(svc: Svc) -> None:
    svc.systemctl("start", UNIT)
    since = time.monotonic()
    client = []
    for _ in range(20):
        rc, out, took = svc.systemctl("restart", UNIT)
        assert rc == 0, out
        client.append(took)
    assert svc.show("ActiveState", "NRestarts") == {"ActiveState": "active", "NRestarts": "0"}
    logged = svc.restart_times(since, 20)
    print(
        f"\nidle restart-to-READY, as systemd logged it: {latency_summary(logged)}"
        f"\nidle `systemctl restart` wall time: {latency_summary(client)}"
    )
    # A guard against a regression to seconds (the old scheduler's unit slept 3 s first), not a
    # speed target: the figure belongs to the benchmark (python -m bench --only restart). At
    # 0.3 s this failed on main too (p50 0.304 s, 2026-12-07) while the machine was slower.
    assert statistics.median(logged) <= 1.0


@pytest.mark.timeout(150)
def test_fifty_restarts_while_ten_checkins_fire_every_second(svc: Svc) -> None:
    targets = svc.start_tmux(10)
    tmux_pid = svc.show("MainPID", unit=TMUX_UNIT)["MainPID"]
    svc.dropin("tmux", f"[Service]\nEnvironment=ASCHED_TMUX_SOCKET={TMUX_SOCKET}\n")
    svc.systemctl("start", UNIT)
    messages = {}
    for i, target in enumerate(targets):
        out = svc.cli("add", target, f"msg-{i}", "--every", "1s", "--json")
        messages[int(json.loads(out)["id"])] = (i, f"msg-{i}")
    time.sleep(2.0)

    rng = random.Random(20261130)
    since = time.monotonic()
    times = []
    for n in range(50):
        rc, out, took = svc.systemctl("restart", UNIT)
        assert rc == 0, f"restart {n}: {out}"
        times.append(took)
        time.sleep(rng.uniform(0.1, 0.6))  # restarts land at every phase of the 1 s rhythm
    assert svc.show("ActiveState", "NRestarts") == {"ActiveState": "active", "NRestarts": "0"}
    failed = [
        line
        for line in svc.journal_lines("_PID=1", f"UNIT={UNIT}")
        if "Failed" in line or "failed" in line
    ]
    assert not failed, failed

    # The tmux server is not the unit's: every session survived every restart.
    assert svc.show("ActiveState", "MainPID", unit=TMUX_UNIT) == {
        "ActiveState": "active",
        "MainPID": tmux_pid,
    }
    assert svc.sessions() == sorted(f"p{i}" for i in range(10))

    logged = svc.restart_times(since, 50)
    quiesce(svc, list(messages))
    states = assert_exactly_once(svc, messages)

    rows = svc.history()
    slots = 0
    for checkin_id in messages:
        due = sorted(
            datetime.fromisoformat(r["due_at"].replace("Z", "+00:00"))
            for r in rows
            if r["checkin_id"] == checkin_id
        )
        slots += round((due[-1] - due[0]).total_seconds()) + 1
    typed = sum(len(svc.received(i)) for i in range(10))
    late = [
        (
            datetime.fromisoformat(r["started_at"].replace("Z", "+00:00"))
            - datetime.fromisoformat(r["due_at"].replace("Z", "+00:00"))
        ).total_seconds()
        for r in rows
    ]
    print(
        "\nrestart-to-READY under load (50 restarts, 10 check-ins/s), as systemd logged it:"
        f" {latency_summary(logged)}"
        f"\n`systemctl restart` wall time under load: {latency_summary(times)}"
        f"\noccurrences journaled: {len(rows)} of {slots} one-second slots"
        f" ({slots - len(rows)} jumped while no daemon ran); states {dict(states)};"
        f" lines typed {typed}; claimed after due: p50 {statistics.median(late):.2f}s"
        f" max {max(late):.2f}s"
    )
    assert states["verified"] >= 200
