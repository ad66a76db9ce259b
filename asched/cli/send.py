"""``asched send TARGET MESSAGE``: deliver now through the daemon's engine, no daemon needed.

The message is journaled like any occurrence (a one-off check-in born claimed), so ``history``
shows it and a running daemon can never deliver it a second time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from asched.cli.daemondb import refuse_foreign_db
from asched.core.models import Delivery, NewCheckIn, Once
from asched.core.paths import DB_NAME, SPOOL_NAME, ensure_state_dir
from asched.daemon.wiring import tmux_client
from asched.delivery.engine import DeliveryEngine
from asched.delivery.settings import DeliverySettings
from asched.store.async_store import AsyncStore
from asched.tmux.targets import check_body, parse_target


async def send_now(
    state_dir: Path,
    target: str,
    message: str,
    *,
    tmux_socket: str | None = None,
    grace_s: float = 10.0,
    settings: DeliverySettings | None = None,
) -> Delivery:
    """Deliver ``message`` to ``target`` now; returns the journal row with its outcome.

    Bad input raises UsageError before anything is written.
    """
    parse_target(target)
    check_body(message)
    ensure_state_dir(state_dir)
    refuse_foreign_db(state_dir)
    async with await AsyncStore.open(state_dir / DB_NAME) as store:
        now = datetime.now(UTC)
        new = NewCheckIn(
            target=target,
            message=message,
            rule=Once(now),
            next_due=now,
            grace_s=grace_s,
            origin="send",
        )
        checkin, delivery = await store.add_claimed(new, now)
        settings = settings or DeliverySettings()
        engine = DeliveryEngine(
            store,
            tmux_client(tmux_socket, settings, control=False),
            settings,
            spool=state_dir / SPOOL_NAME,
        )
        # The caller prints the outcome: a log line on stderr (a warning for a failure) would
        # say it a second time.
        engine.outcomes.quiet = True
        await engine.deliver(checkin, delivery)
        final = await store.get_delivery(delivery.id)
    assert final is not None
    return final


def run_send(
    state_dir: Path,
    target: str,
    message: str,
    tmux_socket: str | None,
    grace_s: float,
    settings: DeliverySettings | None = None,
) -> Delivery:
    """Synchronous wrapper for the CLI (``settings`` from the daemon's config file)."""
    return asyncio.run(
        send_now(
            state_dir, target, message, tmux_socket=tmux_socket, grace_s=grace_s, settings=settings
        )
    )
