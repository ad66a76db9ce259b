"""The daemon's scheduling service: control socket + scheduler loop + delivery engine + fleet.

This is the composition the daemon runs as one named service; each part is tested on its own
(scheduler.py with an injected clock, the delivery package against a real tmux server, fleet.py with
a real tmux server and store).

The service serves the control socket before READY and builds everything else after it: READY is
what ``systemctl start`` and ``restart`` wait for, and the delivery engine, the tmux client, the
shell guard (psutil), the scheduler and the fleet cost about 20 ms of imports that nothing before
READY needs (measured, docs/ARCHITECTURE.md "What READY promises"). The control socket's commands
that come meanwhile are kept and served once they have somewhere to go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from asched.core.errors import StoreReplaced
from asched.core.logs import get_logger
from asched.core.paths import SPOOL_NAME, runtime_socket
from asched.daemon import config
from asched.daemon.control import ControlServer
from asched.daemon.process import DaemonContext

# After READY (see the module's docstring): imported in run_scheduling and the helpers below.
if TYPE_CHECKING:
    from asched.delivery.engine import DeliveryEngine
    from asched.delivery.settings import DeliverySettings
    from asched.tmux.client import TmuxClient

log = get_logger()

EARLY_HOOKS_MAX = 1000  # hook events kept while the engine is being built (a few ms)


def delivery_settings(cfg: config.Config) -> DeliverySettings:
    """The engine's settings from the ``[delivery]`` table."""
    from asched.delivery.settings import DeliverySettings  # after READY: psutil, profiles
    from asched.tmux.shellguard import DEFAULT_SHELLS

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


def tmux_client(
    socket_path: str | None, settings: DeliverySettings, *, control: bool = True
) -> TmuxClient:
    """A client for ``--tmux-socket`` (or ASCHED_TMUX_SOCKET), else tmux's default server; with
    a persistent control-mode client unless ``control`` is off (``[delivery] control_client``)."""
    from asched.tmux.client import TmuxClient  # after READY (see the module's docstring)

    return TmuxClient(
        socket_path or os.environ.get("ASCHED_TMUX_SOCKET") or None,
        max_calls=settings.max_parallel,
        control=control,
    )


def tmux_socket(socket_path: str | None) -> str:
    """The socket of the server :func:`tmux_client` talks to, without building the client.

    Written into the lock file before READY (``asched add``/``next`` look their target up on the
    server the daemon delivers to); tests/daemon/test_wiring.py keeps it equal to
    ``TmuxClient.socket``.
    """
    from asched.tmux import default_socket  # light: no asyncio, no TmuxClient

    return socket_path or os.environ.get("ASCHED_TMUX_SOCKET") or default_socket(os.environ)


class Switchboard:
    """What the control socket's commands call; bound to the scheduler and the engine once
    they are built (after READY). Until then a ``wake`` needs nothing (the scheduler's first
    pass reads the store anyway) and hook events are kept, to be handed over in order."""

    def __init__(self) -> None:
        self._wake: Callable[[], None] | None = None
        self._hook: Callable[[str], str | None] | None = None
        self._early: list[str] = []

    def wake(self) -> None:
        """The ``wake`` command."""
        if self._wake is not None:
            self._wake()

    def hook(self, payload: str) -> str | None:
        """The ``hook`` command: the engine's answer, or None while it is being built."""
        if self._hook is not None:
            return self._hook(payload)
        if len(self._early) < EARLY_HOOKS_MAX:
            self._early.append(payload)
        return None

    def connect(self, wake: Callable[[], None], hook: Callable[[str], str | None]) -> None:
        """Route the commands to the built parts; hand over the hook events kept so far."""
        self._wake, self._hook = wake, hook
        early, self._early = self._early, []
        for payload in early:
            hook(payload)


async def scheduling(ctx: DaemonContext, started: asyncio.Event) -> None:
    """Serve the control socket, then (after READY) recover in-flight deliveries and run the
    loop until stopping."""
    board = Switchboard()
    control = ControlServer(
        runtime_socket(ctx.options.state_dir),
        {"wake": board.wake, "reload": ctx.reload},
        {"hook": board.hook},
    )
    await control.start()
    try:
        # The tmux server too: `asched add`/`next` look their target up on the server we
        # deliver to. One write, before READY: the lock file is never rewritten while a CLI
        # may be reading it for the socket's path.
        ctx.announce(socket=str(control.path), tmux=tmux_socket(ctx.options.tmux_socket))
        started.set()
        await ctx.ready.wait()
        if not ctx.stopping.is_set():  # stopped before READY: nothing to build, nothing to run
            await run_scheduling(ctx, board)
    finally:
        await control.close()


async def run_scheduling(ctx: DaemonContext, board: Switchboard) -> None:
    """The service once READY: build the engine and the scheduler, connect them to the control
    socket, recover, run the loop and the fleet until stopping, drain."""
    # After READY (see the module's docstring). What talks to tmux comes after READY anyway: a
    # frozen tmux server must not hold up the start (systemd would time it out).
    from asched.daemon.fleet import run_fleet
    from asched.daemon.scheduler import Scheduler
    from asched.delivery.engine import DeliveryEngine

    settings = delivery_settings(ctx.config)
    tmux = tmux_client(
        ctx.options.tmux_socket, settings, control=ctx.config.delivery.control_client
    )
    spool = ctx.options.state_dir / SPOOL_NAME
    clear_spool(spool)
    engine = DeliveryEngine(ctx.store, tmux, settings, spool=spool)
    scheduler = Scheduler(
        ctx.store,
        engine.submit,
        catching_up=engine.catching_up,
        repeating=engine.outcomes.repeating,
        hold=engine.hold,
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
    board.connect(scheduler.wake, lambda payload: take_hook(engine, tmux, payload))
    # The control client attaches in the background (one process start, after READY); calls
    # take one-shot clients until it is attached.
    tmux.attach_control()
    fleet: asyncio.Task[None] | None = None
    try:
        # The scheduler starts after the recovery; a check-in with a row still in flight is not
        # claimed again anyway (Store.due_checkins).
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
        # Its stdin closed, the control client detaches at once; shielded, as the drain may be
        # ending by cancellation.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.shield(tmux.aclose())


def take_hook(engine: DeliveryEngine, tmux: TmuxClient, payload: str) -> str | None:
    """An agent's hook event from the control socket, for the engine; the error, or None."""
    from asched.delivery.hookbook import HookEvent  # after READY (see the module's docstring)

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
