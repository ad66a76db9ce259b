"""Driving a real ``asched daemon`` the way the peers are driven."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asched.core.models import NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.daemon import control
from asched.store.store import Store
from bench.common import Cleanup, spawn_daemon
from bench.receivers import body
from tests.support.daemons import DaemonProc

OUTCOMES = ("checkin.delivered", "checkin.outcome", "delivery.crashed")


class AschedPeer:
    """A daemon with default settings on a private state dir, typing into ``tmux_socket``."""

    def __init__(
        self,
        cu: Cleanup,
        tmux_socket: str | None,
        state: Path | None = None,
        name: str = "asched",
        loop: str = "uvloop",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.tmp = cu.tempdir("asched-d-")
        if state is None:
            state = self.tmp / "state"
            state.mkdir(mode=0o700)
        self.state = state
        self.proc: DaemonProc = spawn_daemon(
            cu, self.tmp, state, loop=loop, tmux_socket=tmux_socket, name=name, extra_env=extra_env
        )

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds from spawn to READY=1."""
        return self.proc.wait_ready(timeout)

    def schedule(self, items: list[tuple[str, str, float]]) -> None:
        """Store ``(target, token, due_epoch)`` one-shots typing ``body(token)`` and wake the
        daemon, as ``asched add`` does (without the CLI process, measured on its own)."""
        with Store.open(self.state / DB_NAME) as store:
            store.add_many(
                NewCheckIn(
                    target=target,
                    message=body(token),
                    rule=Once(datetime.fromtimestamp(due, UTC)),
                    next_due=datetime.fromtimestamp(due, UTC),
                )
                for target, token, due in items
            )
        control.send(self.state, "wake")

    def outcomes(self) -> list[dict[str, Any]]:
        """The end of every delivery so far (state ``verified``, ``skipped``, ...)."""
        return [e for e in self.proc.events(strict=False) if e.get("event") in OUTCOMES]

    def stop(self) -> float:
        """SIGTERM and wait; seconds to exit (in-flight deliveries are drained first)."""
        return self.proc.stop()
