"""The daemon's scheduling service: control socket + scheduler loop + delivery engine + fleet.

This is the composition the daemon runs as one named service; each part is tested on its own
(scheduler.py with an injected clock, the delivery package against a real tmux server, fleet.py with
a real tmux server and store).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from asched.core.errors import StoreReplaced
from asched.core.logs import get_logger
from asched.core.paths import SPOOL_NAME, runtime_socket
from asched.daemon import config
from asched.daemon.control import ControlServer
from asched.daemon.fleet import run_fleet
from asched.daemon.process import DaemonContext
from asched.daemon.scheduler import Scheduler
from asched.delivery.engine import DeliveryEngine
from asched.delivery.hookbook import HookEvent
from asched.delivery.settings import DeliverySettings
from asched.tmux.client import TmuxClient
from asched.tmux.shellguard import DEFAULT_SHELLS

log = get_logger()


def delivery_settings(cfg: config.Config) -> DeliverySettings:
    """The engine's settings from the ``[delivery]`` table."""
    d = cfg.delivery
    return DeliverySettings(
        settle_s=d.settle_s,
        settle_by_program=dict(d.settle_by_program),
        profiles=cfg.agents,
        prefix=d.prefix,
        shells=frozenset(d.shells) if d.shells is not None else DEFAULT_SHELLS,
        copy_mode=d.copy_mode,
        min_gap_s=d.min_gap_s,
        rate_per_s=d.rate_per_s,
        burst=d.burst,
    )


def clear_spool(spool: Path) -> None:
    """Remove bodies a killed daemon left in the spool (only the lock holder writes there;
    ``asched send`` pastes one body, through stdin)."""
    if spool.is_dir():
        for leftover in spool.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()


def tmux_client(socket_path: str | None, settings: DeliverySettings) -> TmuxClient:
    """A client for ``--tmux-socket`` (or ASCHED_TMUX_SOCKET), else tmux's default server."""
    return TmuxClient(
        socket_path or os.environ.get("ASCHED_TMUX_SOCKET") or None,
        max_calls=settings.max_parallel,
    )


async def scheduling(ctx: DaemonContext, started: asyncio.Event) -> None:
    """Recover in-flight deliveries, serve the control socket, run the loop until stopping."""
    settings = delivery_settings(ctx.config)
    tmux = tmux_client(ctx.options.tmux_socket, settings)
    spool = ctx.options.state_dir / SPOOL_NAME
    clear_spool(spool)
    engine = DeliveryEngine(ctx.store, tmux, settings, spool=spool)
    scheduler = Scheduler(
        ctx.store,
        engine.submit,
        catching_up=engine.catching_up,
        repeating=engine.outcomes.repeating,
    )
    engine.on_finished = scheduler.wake
    poke_fleet = asyncio.Event()

    def adopt(cfg: config.Config) -> None:
        engine.settings = delivery_settings(cfg)
        poke_fleet.set()

    ctx.reload_hooks.append(adopt)
    # Any reload request re-reads the store, a valid config file or not: it is how a write
    # made without the command line (sqlite3 by hand) reaches a scheduler that sleeps until
    # the next due time (scheduler.py).
    ctx.reload_requests.append(scheduler.wake)
    control = ControlServer(
        runtime_socket(ctx.options.state_dir),
        {"wake": scheduler.wake, "reload": ctx.reload},
        {"hook": lambda payload: take_hook(engine, tmux, payload)},
    )
    await control.start()
    # The tmux server too: `asched add`/`next` look their target up on the server we deliver to.
    ctx.announce(socket=str(control.path), tmux=tmux.socket)
    # READY now: what follows talks to tmux, and a frozen tmux server must not hold up the start
    # (systemd would time it out). The scheduler starts after the recovery, and a check-in with
    # a row still in flight is not claimed again anyway (Store.due_checkins).
    started.set()
    fleet: asyncio.Task[None] | None = None
    try:
        recovered = await engine.recover()
        if recovered:
            log.info("delivery.recovered", rows=recovered)
        fleet = asyncio.create_task(
            run_fleet(
                ctx.store,
                tmux,
                lambda: ctx.config.checkins,
                scheduler.wake,
                ctx.stopping,
                poke_fleet,
            ),
            name="fleet",
        )
        try:
            await scheduler.run(ctx.stopping)
        except StoreReplaced as exc:
            # Running on would split the schedule: the CLI writes the new file, we read the old.
            # Stop (what is in flight finishes into the old file) and let systemd start us again.
            log.error("store.replaced", error=str(exc), exit_code=exc.exit_code)
            ctx.fail(exc.exit_code, "store-replaced")
        # Stop taking work, let what is in flight finish; the daemon cancels us at its drain
        # timeout, and then cancel_all below ends the rest (rows stay in the journal).
        log.info("scheduler.stopped", in_flight=engine.in_flight)
        await engine.drain()
    finally:
        if fleet is not None:
            fleet.cancel()
        await engine.cancel_all()
        await control.close()
        tmux.close()


def take_hook(engine: DeliveryEngine, tmux: TmuxClient, payload: str) -> str | None:
    """An agent's hook event from the control socket, for the engine; the error, or None."""
    try:
        event = HookEvent.parse(payload)
    except ValueError as exc:
        log.warning("hook.refused", error=str(exc))
        return "bad hook event"
    if event.tmux is not None and os.path.realpath(event.tmux) != os.path.realpath(tmux.socket):
        # An agent on another tmux server: its pane ids name other panes on ours.
        log.debug("hook.other_server", pane=event.pane, tmux=event.tmux)
        return None
    engine.on_hook(event)
    return None
