"""The daemon's scheduling service: control socket + scheduler loop + delivery engine.

This is the composition the daemon runs as one named service; each part is tested on its own
(scheduler.py with an injected clock, delivery.py against a real tmux server).
"""

from __future__ import annotations

import asyncio
import os

from asched.control import ControlServer
from asched.daemon import DaemonContext
from asched.delivery import DeliveryEngine, DeliverySettings
from asched.logs import get_logger
from asched.paths import SPOOL_NAME, runtime_socket
from asched.scheduler import Scheduler
from asched.tmux import TmuxClient

log = get_logger()


def tmux_client(socket_path: str | None, settings: DeliverySettings) -> TmuxClient:
    """A client for ``--tmux-socket`` (or ASCHED_TMUX_SOCKET), else tmux's default server."""
    return TmuxClient(
        socket_path or os.environ.get("ASCHED_TMUX_SOCKET") or None,
        max_calls=settings.max_parallel,
    )


async def scheduling(ctx: DaemonContext, started: asyncio.Event) -> None:
    """Recover in-flight deliveries, serve the control socket, run the loop until stopping."""
    settings = DeliverySettings()
    engine = DeliveryEngine(
        ctx.store,
        tmux_client(ctx.options.tmux_socket, settings),
        settings,
        spool=ctx.options.state_dir / SPOOL_NAME,
    )
    scheduler = Scheduler(ctx.store, engine.submit)
    control = ControlServer(
        runtime_socket(ctx.options.state_dir), {"wake": scheduler.wake, "reload": ctx.reload}
    )
    recovered = await engine.recover()
    if recovered:
        log.info("delivery.recovered", rows=recovered)
    await control.start()
    ctx.announce(socket=str(control.path))
    try:
        started.set()
        await scheduler.run(ctx.stopping)
        # Stop taking work, let what is in flight finish; the daemon cancels us at its drain
        # timeout, and then cancel_all below ends the rest (rows stay in the journal).
        log.info("scheduler.stopped", in_flight=engine.in_flight)
        await engine.drain()
    finally:
        await engine.cancel_all()
        await control.close()
