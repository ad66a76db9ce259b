"""The daemon process: lock, store, services, signals, readiness and an ordered, bounded stop.

This is the only module that touches signals, the instance lock and sd_notify. The sequence:

1. ``daemon.starting``; signal handlers go in first, so a SIGTERM at any point is honoured; the
   config file is read (a bad one: exit 2);
2. the lock, polled without blocking the loop (``lock.waiting`` / ``lock.acquired`` /
   ``lock.timeout`` -> exit 75);
3. the store is opened and migrated;
4. the services run as named tasks in one TaskGroup; READY=1 is sent once each says it serves
   (the scheduling service: its control socket listens), then ``ctx.ready`` is set, and services
   build what READY does not need (docs/ARCHITECTURE.md, "What READY promises");
5. SIGTERM/SIGINT: STOPPING=1, services stop taking work, in-flight work gets ``drain_timeout_s``,
   the rest is cancelled, the store is closed, the lock released, exit 0. Repeated signals only log.
   :func:`run` then ends the process without the interpreter's teardown (:func:`exit_now`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from asched import __version__
from asched.core.errors import EXIT_LOCKED, EXIT_OK, EXIT_RUNTIME, AschedError, LockTimeout
from asched.core.logs import configure as configure_logs
from asched.core.logs import get_logger
from asched.core.paths import DB_NAME, ensure_state_dir
from asched.daemon import config, published
from asched.daemon.config import Config
from asched.daemon.lock import LOCK_NAME, HolderInfo, InstanceLock
from asched.daemon.notify import Notifier
from asched.daemon.options import DaemonOptions

__all__ = ["Daemon", "DaemonContext", "DaemonOptions", "RunState", "Service", "exit_now", "run"]

log = get_logger()

# A service runs until ctx.stopping is set, then finishes its in-flight work and returns. It sets
# ``started`` once it serves: READY=1 waits for every service's.
Service = Callable[["DaemonContext", asyncio.Event], Coroutine[Any, Any, None]]


class RunState(enum.StrEnum):
    """Where the daemon is in its life; each transition is logged as ``daemon.state``."""

    STARTING = "starting"
    WAITING_FOR_LOCK = "waiting-for-lock"
    RUNNING = "running"
    RELOADING = "reloading"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(slots=True)
class DaemonContext:
    """What the services share: options, the live config, the store and the stop signal."""

    options: DaemonOptions
    config: Config
    store: Any
    stopping: asyncio.Event
    notifier: Notifier
    announce: Callable[..., None]
    reload: Callable[[], None]
    # Stop the daemon with this exit code (a service found it cannot go on, e.g. its database
    # was replaced); the usual stop follows: drain, then exit.
    fail: Callable[[int, str], None]
    # Set once READY=1 is sent: a service builds here what READY does not need (wiring.py).
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Called with the new config after a successful reload (services adopt it).
    reload_hooks: list[Callable[[Config], None]] = field(default_factory=list)
    # Called at every reload request (SIGHUP, ``asched reload``), before the file is read and
    # whether or not it turns out valid: the scheduler re-reads the store then.
    reload_requests: list[Callable[[], None]] = field(default_factory=list)


class Daemon:
    """One run of the daemon; :meth:`run` returns the process exit code."""

    def __init__(
        self,
        options: DaemonOptions,
        services: dict[str, Service] | None = None,
        *,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.options = options
        self.services = dict(services or {})
        self._on_ready = on_ready  # called once, right after READY=1
        self.notifier = Notifier()
        self.state = RunState.STARTING
        self._stop = asyncio.Event()
        self._stop_signal: str | None = None
        self._lock_task: asyncio.Task[InstanceLock] | None = None
        self._started_mono = time.monotonic()
        self._ctx: DaemonContext | None = None
        self._lock_info: dict[str, Any] = {}
        self._exit_code = EXIT_OK
        self._reload_task: asyncio.Task[None] | None = None
        self._reload_again = False
        self._pointer: Path | None = None

    # -- state and signals -------------------------------------------------------------------

    def _set_state(self, state: RunState) -> None:
        self.state = state
        log.debug("daemon.state", state=str(state))

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_stop_signal, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)

    def _on_stop_signal(self, name: str) -> None:
        if self._stop.is_set():
            # A second SIGTERM (systemd, an impatient user) must not cut the drain short.
            log.info("signal.ignored", signal=name, reason="already stopping")
            return
        log.info("signal.received", signal=name)
        self._stop_signal = name
        self._stop.set()
        if self._lock_task is not None and not self._lock_task.done():
            self._lock_task.cancel()

    def request_stop(self, reason: str = "request") -> None:
        """Stop as if signalled (the demo, tests); safe to call more than once."""
        self._on_stop_signal(reason)

    def fail(self, code: int, reason: str) -> None:
        """Stop, and exit with ``code`` once stopped (see :attr:`DaemonContext.fail`)."""
        if not self._stop.is_set():
            self._exit_code = code
        self._on_stop_signal(reason)

    def _on_reload_signal(self) -> None:
        log.info("signal.received", signal="SIGHUP")
        self.reload()

    def reload(self) -> None:
        """Re-read the config file (in a task: the file is read off the loop); on any error
        keep the running configuration. A reload asked for while one runs runs again after it,
        so the last edit is always the one read."""
        ctx = self._ctx
        for request in ctx.reload_requests if ctx is not None else ():
            request()
        if self.state is RunState.RELOADING:
            self._reload_again = True
            return
        if ctx is None or self.state is not RunState.RUNNING:
            # Before READY the config is still to be read; while stopping, READY=1 would lie.
            log.info("config.reload_ignored", state=str(self.state))
            return
        self._set_state(RunState.RELOADING)
        self.notifier.reloading()
        self._reload_task = asyncio.get_running_loop().create_task(self._reload(ctx), name="reload")

    async def _reload(self, ctx: DaemonContext) -> None:
        again = True
        try:
            while again and not self._stop.is_set():
                self._reload_again = False
                await self._reload_once(ctx)
                again = self._reload_again
        except Exception as exc:  # a bug in a reload hook: logged, and the daemon runs on
            log.error("config.reload_crashed", error=repr(exc), exc_info=exc)
        finally:
            # Back to running (READY=1), unless a stop came meanwhile: READY would lie then.
            if self.state is RunState.RELOADING and not self._stop.is_set():
                self._set_state(RunState.RUNNING)
                self.notifier.ready(self._status_line())

    async def _reload_once(self, ctx: DaemonContext) -> None:
        try:
            new = await config.aload(self.options.config_path)
        except AschedError as exc:
            log.error("config.invalid", path=str(self.options.config_path), error=str(exc))
            return
        if self._stop.is_set():
            return  # stopping meanwhile: the services no longer take a new config
        ctx.config = new
        configure_logs(effective_level(self.options, new))
        for hook in ctx.reload_hooks:
            hook(new)
        log.info("config.reloaded", path=str(self.options.config_path))

    def _status_line(self) -> str:
        return f"running, pid {os.getpid()}, state dir {self.options.state_dir}"

    # -- the sequence --------------------------------------------------------------------------

    async def run(self) -> int:
        """Start, serve until a stop signal, stop; returns the exit code."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        log.info(
            "daemon.starting",
            pid=os.getpid(),
            version=__version__,
            state_dir=str(self.options.state_dir),
            loop=type(loop).__module__.split(".")[0],
            python=sys.version.split()[0],
        )
        try:
            # Read on the loop, not through aiofiles as a reload is: nothing else runs yet (no
            # delivery, no watchdog ping) that the read could hold up, and aiofiles and a worker
            # thread cost the start about 5 ms before READY (docs/ARCHITECTURE.md).
            cfg = config.load(self.options.config_path)
            configure_logs(effective_level(self.options, cfg))
            ensure_state_dir(self.options.state_dir)
            lock = await self._acquire_lock()
        except LockTimeout as exc:
            log.error(
                "lock.timeout", path=exc.path, holder_pid=exc.holder_pid, timeout_s=exc.timeout_s
            )
            self._finish(reason="lock-timeout")
            return EXIT_LOCKED
        except asyncio.CancelledError:
            self._finish(reason="stopped-while-waiting-for-lock")
            return EXIT_OK
        except AschedError as exc:
            log.error("daemon.failed", error=str(exc))
            self._finish(reason="error")
            return exc.exit_code
        try:
            return await self._serve(lock, cfg)
        except AschedError as exc:  # the store refused: damaged, foreign, newer, no space
            log.error("daemon.failed", error=str(exc))
            return exc.exit_code
        finally:
            published.withdraw(self._pointer, self.options.state_dir)
            lock.release()
            self._finish(reason=self._stop_signal or "error")

    async def _acquire_lock(self) -> InstanceLock:
        self._set_state(RunState.WAITING_FOR_LOCK)
        path = self.options.state_dir / LOCK_NAME

        def waiting(holder: HolderInfo) -> None:
            log.info("lock.waiting", path=str(path), holder_pid=holder.pid)

        self._lock_task = asyncio.create_task(
            InstanceLock.acquire(
                path, self.options.lock_timeout_s, self.options.lock_poll_s, on_wait=waiting
            ),
            name="lock",
        )
        if self._stop.is_set():
            self._lock_task.cancel()
        lock = await self._lock_task
        self._lock_task = None
        self._lock_info = {
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "version": __version__,
            "argv": list(self.options.argv),
        }
        lock.write_info(self._lock_info)
        log.info("lock.acquired", path=str(path), pid=os.getpid())
        try:  # so that the user's command line finds this daemon (daemon/published.py)
            self._pointer = published.publish(self.options.state_dir)
        except OSError as exc:  # the command line then needs --state-dir; the daemon runs on
            log.warning("state.publish_failed", error=str(exc))
        if self._pointer is not None:
            log.info("state.published", pointer=str(self._pointer))
        return lock

    async def _serve(self, lock: InstanceLock, cfg: config.Config) -> int:
        from asched.store.async_store import AsyncStore

        store = await AsyncStore.open(self.options.state_dir / DB_NAME)
        log.info("store.opened", path=str(self.options.state_dir / DB_NAME))
        info = dict(self._lock_info)

        def announce(**extra: Any) -> None:
            info.update(extra)
            lock.write_info(info)

        ctx = DaemonContext(
            options=self.options,
            config=cfg,
            store=store,
            stopping=self._stop,
            notifier=self.notifier,
            announce=announce,
            reload=self.reload,
            fail=self.fail,
        )
        # The CLI compares this with the file at the path before it opens it (cli/daemondb.py).
        announce(
            db=list(store.identity) if store.identity is not None else None,
            wal=list(store.wal_identity) if store.wal_identity is not None else None,
        )
        self._ctx = ctx
        code = EXIT_OK
        try:
            async with asyncio.TaskGroup() as tg:
                started = {name: asyncio.Event() for name in self.services}
                tasks: list[asyncio.Task[None]] = [
                    tg.create_task(svc(ctx, started[name]), name=name)
                    for name, svc in self.services.items()
                ]
                watchdog = (
                    tg.create_task(self._watchdog(), name="watchdog")
                    if self.notifier.watchdog_interval_s is not None
                    else None
                )
                for event in started.values():
                    await event.wait()
                self._set_state(RunState.RUNNING)
                self.notifier.ready(self._status_line())
                ctx.ready.set()
                if self._on_ready is not None:
                    self._on_ready()
                log.info("daemon.ready", pid=os.getpid(), startup_s=self._elapsed())
                await self._stop.wait()
                await self._stop_services(tasks, ctx)
                if watchdog is not None:
                    watchdog.cancel()
        except* Exception as group:
            for exc in group.exceptions:
                log.error("daemon.crashed", error=repr(exc), exc_info=exc)
            code = EXIT_RUNTIME
        finally:
            await self._end_reload()
            await asyncio.shield(store.aclose())
        return code if code != EXIT_OK else self._exit_code

    async def _end_reload(self) -> None:
        """A reload still reading its file at the stop is not waited for (the file may hang)."""
        task = self._reload_task
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _stop_services(self, tasks: list[asyncio.Task[None]], ctx: DaemonContext) -> None:
        self._set_state(RunState.STOPPING)
        self.notifier.stopping("stopping")
        drain_s = ctx.config.drain_timeout_s
        log.info("daemon.stopping", signal=self._stop_signal, drain_timeout_s=drain_s)
        # Services watch ctx.stopping: they stop taking work and finish what is in flight.
        _done, pending = await asyncio.wait(tasks, timeout=drain_s) if tasks else (set(), set())
        for task in pending:
            log.warning("daemon.task_cancelled", task=task.get_name(), reason="drain timeout")
            task.cancel()

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval_s
        assert interval is not None
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _elapsed(self) -> float:
        return round(time.monotonic() - self._started_mono, 3)

    def _finish(self, reason: str) -> None:
        self._set_state(RunState.STOPPED)
        log.info("daemon.stopped", reason=reason, uptime_s=self._elapsed())
        self.notifier.close()


def run(options: DaemonOptions, services: dict[str, Service]) -> NoReturn:
    """Run the daemon on the chosen event loop with ``services``, then end the process with its
    exit code.

    The caller chooses the services (the command line: the scheduling service of
    :mod:`asched.daemon.wiring`; tests add their own, e.g. a fault to prove the watchdog), so
    the product carries no test-only code paths. The in-process form is :class:`Daemon`.
    """
    os.umask(0o077)  # every file the daemon creates is private to its user
    configure_logs(options.log_level or "info")

    async def main() -> int:
        # The collector, which start.serve turns off for the imports, is on from READY.
        return await Daemon(options, services, on_ready=gc.enable).run()

    if options.loop == "uvloop":
        import uvloop

        code = uvloop.run(main())
    else:
        code = asyncio.run(main())
    exit_now(code)


def exit_now(code: int) -> NoReturn:
    """End the process once the daemon has stopped: wait for every thread as the interpreter
    would, flush, then ``os._exit``.

    By now the store is closed, the lock released and the control socket removed; what the
    interpreter's own exit would add is tearing down every module, which took about 21 ms of each
    ``systemctl restart`` (SIGTERM -> exit 26.6 ms, 5.6 ms this way; median of 8 on 2 cores).
    A thread still running (a tmux client call within its timeout) is waited for, as before.
    """
    import logging
    import threading

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken pipe: nothing to save
            stream.flush()
    os._exit(code)


def effective_level(options: DaemonOptions, cfg: config.Config) -> str:
    """The command line's --log-level wins over the config file's; "info" otherwise."""
    return options.log_level or cfg.log_level or "info"
