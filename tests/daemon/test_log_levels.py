"""Log levels that mean something, read off a real daemon's JSON lines (issue 17, item 3).

``journalctl -p warning`` must show a failed delivery; a check-in skipped again and again for one
reason (a pane left at a shell prompt) is said once at info, not on every occurrence.
"""

from __future__ import annotations

import shutil
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asched.core.models import Every, NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.core.states import DeliveryState
from asched.daemon.control import send as control_send
from asched.store.store import Store
from tests.support.daemons import Spawner, wait_until
from tests.support.tmux import Server

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


@pytest.fixture
def loop_name() -> str:
    """Daemons on one event loop: the levels do not depend on it."""
    return "asyncio"


def test_failed_is_a_warning_and_a_recurring_skip_is_said_once(
    spawner: Spawner, short_tmp: Path, server: Server
) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    server.new_session("sh", "/bin/sh")  # a shell prompt: every occurrence is skipped(shell)
    now = datetime.now(UTC)
    with Store.open(state / DB_NAME) as store:
        shell = store.add_checkin(
            NewCheckIn(
                target="sh:0",
                message="are you there?",
                rule=Every(1, now + timedelta(seconds=1)),
                next_due=now + timedelta(seconds=1),
            )
        )
        gone = store.add_checkin(
            NewCheckIn(
                target="nosuch:0", message="to nobody", rule=Once(now), next_due=now, grace_s=1.0
            )
        )
    d = spawner.spawn(state, extra=["--tmux-socket", server.sock], lock_timeout=5)
    d.notify.wait_for("READY", "1", timeout=15)
    assert control_send(state, "wake")

    def rows(checkin_id: int) -> list[tuple[DeliveryState, str | None]]:
        with Store.open(state / DB_NAME) as store:
            return [(r.state, r.reason) for r in store.history(checkin_id) if r.state.final]

    skipped = (DeliveryState.SKIPPED, "shell")
    assert wait_until(lambda: rows(shell.id).count(skipped) >= 4, timeout=20, step=0.1)
    assert wait_until(lambda: bool(rows(gone.id)), timeout=20, step=0.1)
    assert rows(gone.id) == [(DeliveryState.FAILED, "target-missing")]
    d.signal(signal.SIGTERM)
    assert d.wait() == 0

    events = d.events()
    failed = [
        e for e in events if e.get("checkin_id") == gone.id and e["event"] == "checkin.outcome"
    ]
    assert [(e["level"], e["state"], e["reason"]) for e in failed] == [
        ("warning", "failed", "target-missing")
    ]
    # Four skips and more, one line: the first; its claims after that one are debug too.
    mine = [e for e in events if e.get("checkin_id") == shell.id]
    outcomes = [
        (e["level"], e["state"], e["reason"]) for e in mine if e["event"] == "checkin.outcome"
    ]
    assert outcomes == [("info", "skipped", "shell")], mine
    claims = [e for e in mine if e["event"] == "checkin.claimed"]
    assert len(claims) == 1, mine
    # Nothing about it at warning or above: a shell prompt is no failure.
    assert all(e["level"] == "info" for e in mine), mine
