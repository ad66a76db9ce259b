"""The engine's outcome lines on a real tmux server, read as JSON (issue 17, item 3): a recurring
skip is said once, then summarised (``checkin.skipped_again``); levels match the outcome."""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog.testing

from asched.core.logs import configure
from asched.core.models import Every, NewCheckIn
from asched.core.states import DeliveryState
from asched.delivery.engine import DeliveryEngine
from asched.delivery.outcomelog import OutcomeLog
from asched.store.async_store import AsyncStore
from asched.tmux.client import TmuxClient
from tests.support.delivery import FAST
from tests.support.tmux import Server

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


class Clock:
    """The run's monotonic clock, moved by the test (no sleeping through a summary interval)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_recurring_skip_is_said_once_then_summarised(
    store: AsyncStore, server: Server
) -> None:
    out = server.root / "out"
    server.new_session("w", "/bin/sh")  # a shell prompt: skipped(shell)
    engine = DeliveryEngine(store, TmuxClient(server.sock), FAST, spool=server.root / "spool")
    clock = Clock()
    engine.outcomes = OutcomeLog(summary_s=600, mono=clock)
    start = datetime.now(UTC) - timedelta(seconds=30)
    checkin = await store.add_checkin(
        NewCheckIn(target="w:0", message="ping", rule=Every(1, start), next_due=start, grace_s=60)
    )
    stream = io.StringIO()
    configure("info", stream=stream, force_json=True)

    async def occurrence(n: int) -> None:
        due = start + timedelta(seconds=n)
        delivery = await store.claim(checkin.id, due, due + timedelta(seconds=1))
        assert delivery is not None
        await engine.deliver(checkin, delivery)

    for n in range(3):  # the first is said; the next two are not
        await occurrence(n)
        clock.now += 2
    clock.now += 600  # ten minutes on: the next skip brings a summary
    await occurrence(3)
    await occurrence(4)  # counted for the next line
    # The pane's program changes: the next occurrence is typed, and the run ends.
    server.tmux("respawn-pane", "-k", "-t", "=w:0", f"cat > {out}")
    await occurrence(5)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [e for e in lines if e.get("checkin_id") == checkin.id]
    said = [
        (e["level"], e["event"], e.get("state"), e.get("count"), e.get("total"), e.get("ended"))
        for e in mine
    ]
    assert said == [
        ("info", "checkin.outcome", "skipped", None, None, None),
        ("info", "checkin.skipped_again", None, 3, 4, False),
        ("info", "checkin.delivered", "verified", None, None, None),
        ("info", "checkin.skipped_again", None, 1, 5, True),
    ], mine
    assert mine[1]["reason"] == "shell" and mine[1]["target"] == "w:0"
    assert not engine.outcomes.repeating(checkin.id)


def _checkin_levels(logs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["log_level"], e["event"]) for e in logs]


def test_levels_of_each_outcome_and_a_stale_run() -> None:
    clock = Clock()
    outcomes = OutcomeLog(summary_s=600, stale_s=3600, mono=clock)
    with structlog.testing.capture_logs() as logs:
        outcomes.record(1, "w:0", DeliveryState.UNVERIFIED, None)
        outcomes.record(2, "w:1", DeliveryState.FAILED, "pane-dead")
        outcomes.record(3, "w:2", DeliveryState.SKIPPED, "busy")
        outcomes.record(3, "w:2", DeliveryState.SKIPPED, "busy")
        assert outcomes.repeating(3)
        outcomes.record(3, "w:2", DeliveryState.SKIPPED, "copy-mode")  # another reason: said
        outcomes.record(3, "w:2", DeliveryState.SKIPPED, "copy-mode")
        clock.now += 3600  # an hour without a skip of 3: its run is closed by the next line
        outcomes.record(4, "w:3", DeliveryState.VERIFIED, None)
    assert _checkin_levels(logs) == [
        ("warning", "checkin.outcome"),
        ("warning", "checkin.outcome"),
        ("info", "checkin.outcome"),
        ("debug", "checkin.outcome"),
        ("info", "checkin.outcome"),
        ("info", "checkin.skipped_again"),  # the busy run, ended by copy-mode
        ("debug", "checkin.outcome"),
        ("info", "checkin.skipped_again"),  # the copy-mode run, closed as stale
        ("info", "checkin.delivered"),
    ]
    assert [(e["reason"], e["count"], e["ended"]) for e in (logs[5], logs[7])] == [
        ("busy", 1, True),
        ("copy-mode", 1, True),
    ]
    assert not outcomes.repeating(3)
