"""The APScheduler 3.x peer process: the scheduler most Python users would reach for.

    python -m bench.peers.apscheduler_peer serve --db PATH --tmux-socket SOCK
    python -m bench.peers.apscheduler_peer build --db PATH -n N
    python -m bench.peers.apscheduler_peer add --db PATH

Setup, pinned by the ``bench`` extra (apscheduler==3.11.*, SQLAlchemy==2.0.*): an
``AsyncIOScheduler`` on the stdlib asyncio loop with one ``SQLAlchemyJobStore(url="sqlite:///PATH")``
and every other setting at its default (``misfire_grace_time`` 1 s, ``coalesce`` True,
``max_instances`` 1, the ``AsyncIOExecutor``). Each job is ``date``-triggered and runs
:func:`bench.peers.apsched_job.deliver`: asched's own tmux calls, through asyncio subprocesses.

``serve`` sends ``READY=1`` to ``$NOTIFY_SOCKET`` once the scheduler has started and processed its
store (the point asched sends its own READY=1), reads commands as JSON lines on stdin
(``{"add": [[job_id, pane_id, text, due_epoch], ...]}``, answered by an ``added`` event), writes
one JSON line per job event (``executed``, ``missed``, ``error``) to stderr, and on SIGTERM shuts
the scheduler down with its default ``wait=True`` and exits. ``build`` writes N hourly jobs into a
new store in one transaction (the rows ``add_job`` would write, far faster than N commits).
``add`` adds one job from a separate process, the only way APScheduler 3 offers without writing
an RPC service; the running scheduler is not told and finds it at its next wake-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import signal
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

JOB_REF = "bench.peers.apsched_job:deliver"


def _emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), file=sys.stderr, flush=True)


def _notify(message: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if path:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode(), path)


def _store(db: str) -> Any:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    return SQLAlchemyJobStore(url=f"sqlite:///{db}")


async def serve(db: str, tmux_socket: str) -> None:
    """Run the scheduler until SIGTERM (see the module docstring)."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bench.peers import apsched_job

    apsched_job.configure(tmux_socket)
    loop = asyncio.get_running_loop()
    scheduler = AsyncIOScheduler(jobstores={"default": _store(db)})
    names = {EVENT_JOB_EXECUTED: "executed", EVENT_JOB_MISSED: "missed", EVENT_JOB_ERROR: "error"}

    def on_event(ev: Any) -> None:
        run_at = ev.scheduled_run_time.timestamp() if ev.scheduled_run_time else None
        _emit(names[ev.code], id=ev.job_id, scheduled=run_at)

    scheduler.add_listener(on_event, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    scheduler.start()
    # start() queued the first pass over the store (call_soon_threadsafe): READY after it.
    loop.call_soon(_notify, "READY=1")

    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def commands() -> None:
        from bench.peers.apsched_job import deliver

        while line := await reader.readline():
            jobs = json.loads(line)["add"]
            for job_id, pane_id, text, due in jobs:
                scheduler.add_job(
                    deliver,
                    "date",
                    run_date=datetime.fromtimestamp(due, UTC),
                    args=[pane_id, text, f"aps-{job_id}"],
                    id=job_id,
                )
            _emit("added", n=len(jobs))

    reading = asyncio.ensure_future(commands())
    await stop.wait()
    reading.cancel()
    scheduler.shutdown()
    await asyncio.sleep(0)  # shutdown() runs in the loop (call_soon_threadsafe)
    _emit("stopped")


def build(db: str, n: int, targets: int = 100) -> None:
    """Write ``n`` hourly jobs, first runs spread over 1 h .. 7 h from now, in one transaction."""
    from apscheduler.job import Job
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    store = _store(db)
    scheduler = BackgroundScheduler(jobstores={"default": store})
    store.start(scheduler, "default")  # creates the table
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    step = 6 * 3600 / max(n, 1)
    rows = []
    for i in range(n):
        due = first + timedelta(seconds=round(i * step, 3))
        job = Job(
            scheduler,
            id=f"s{i}",
            func=JOB_REF,
            trigger=IntervalTrigger(hours=1, start_date=due, timezone=UTC),
            executor="default",
            args=(f"%{i % targets}", f"hourly check-in number {i}: status report please", f"s{i}"),
            kwargs={},
            name="deliver",
            misfire_grace_time=1,  # the scheduler defaults add_job would fill in
            coalesce=True,
            max_instances=1,
            next_run_time=due,
        )
        state = pickle.dumps(job.__getstate__(), store.pickle_protocol)
        rows.append({"id": job.id, "next_run_time": due.timestamp(), "job_state": state})
    with store.engine.begin() as conn:
        conn.execute(store.jobs_t.insert(), rows)


def add(db: str) -> None:
    """Add one job an hour ahead to the store, as a script outside the scheduler would."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from bench.peers.apsched_job import deliver

    scheduler = BackgroundScheduler(jobstores={"default": _store(db)})
    scheduler.start(paused=True)  # only a started scheduler writes to its store
    due = datetime.now(UTC) + timedelta(hours=1)
    scheduler.add_job(deliver, "date", run_date=due, args=["%0", "later", f"add{time.time_ns()}"])
    scheduler.shutdown(wait=False)


def main() -> int:
    """Parse the subcommand and run it."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--db", required=True)
    p.add_argument("--tmux-socket", required=True)
    p = sub.add_parser("build")
    p.add_argument("--db", required=True)
    p.add_argument("-n", type=int, required=True)
    p = sub.add_parser("add")
    p.add_argument("--db", required=True)
    args = ap.parse_args()
    if args.cmd == "serve":
        asyncio.run(serve(args.db, args.tmux_socket))
    elif args.cmd == "build":
        build(args.db, args.n)
    else:
        add(args.db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
