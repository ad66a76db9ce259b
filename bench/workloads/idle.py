"""Workload 4: idle with 10,000 stored check-ins: wake-ups besides the watchdog, CPU, memory.

asched runs as its systemd units run it, with a watchdog (the units' ``WatchdogSec=``, as
``WATCHDOG_USEC``: a ping every half of it) and the run's tmux server to deliver to, on a store of
10,000 hourly check-ins (the first due an hour ahead); APScheduler on its own such store beside
it. Both are watched over one window of the same time (full run: 10 minutes; ``--quick``: 30 s),
which starts 1 s after one of asched's pings and lasts a whole number of ping intervals, so that
no ping sits on its edge.

A wake-up is a voluntary context switch (``/proc/PID/task/*/status``, every thread): a thread that
went to sleep and was woken. Each watchdog ping (a ``WATCHDOG=1`` datagram that arrived in the
window) is one wake-up of the event loop; what remains is the figure that should be 0: nothing
else wakes an idle daemon. Involuntary switches (a running thread preempted) and CPU time (every
thread, ``schedstat``) are reported beside it, and RSS at the end.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any

import psutil

from asched.install.units import render
from bench.common import PYTHON, Cleanup
from bench.peers.apscheduler import ApsPeer, build_store
from bench.peers.asched import AschedPeer
from bench.scale import build_store as build_asched_store
from bench.workloads.context import Ctx, Row
from tests.support.daemons import DaemonProc

MB = 1024 * 1024
N = 10_000


def watchdog_s() -> float:
    """``WatchdogSec=`` of the shipped unit, in seconds."""
    unit = render("asched@.service", PYTHON)
    found = re.search(r"^WatchdogSec=(\d+)s$", unit, re.MULTILINE)
    if found is None:
        raise RuntimeError("asched@.service has no WatchdogSec=Ns")
    return float(found.group(1))


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` in ns (/proc schedstat: psutil's ticks are 10 ms)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of every thread of ``pid``."""
    vol = invol = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol += int(line.split()[1])
    return vol, invol


def _sample(pid: int) -> tuple[int, int, int]:
    return (cpu_ns(pid), *switches(pid))


def _after_next_ping(d: DaemonProc, ping_s: float) -> None:
    """Return 1 s after asched's next watchdog ping (so that the window's edges sit between
    pings)."""
    seen = len(d.notify.all("WATCHDOG"))
    deadline = time.monotonic() + ping_s + 10
    while len(d.notify.all("WATCHDOG")) <= seen:
        if time.monotonic() > deadline:
            raise RuntimeError("no watchdog ping from the idle daemon")
        time.sleep(0.05)
    time.sleep(1.0)


def run(ctx: Ctx) -> dict[str, Any]:
    """One idle window side by side: wake-ups besides the watchdog, rates per minute, RSS."""
    wd_s = watchdog_s()
    ping_s = wd_s / 2
    pings_per_window = ctx.n(2, 40)  # --quick: 30 s; full: 10 minutes
    window_s = pings_per_window * ping_s
    with Cleanup() as cu:
        _, state, _ = build_asched_store(cu, N)
        asched = AschedPeer(
            cu,
            ctx.recv().sock,
            state=state,
            name="idle-asched",
            extra_env={"WATCHDOG_USEC": str(int(wd_s * 1_000_000))},
        ).proc
        procs = {"asched": asched}
        if ctx.aps():
            db, _ = build_store(cu.tempdir("asched-aps-"), N)
            procs["apscheduler"] = ApsPeer(cu, "/nonexistent", db=db, name="idle-aps").proc
        for p in procs.values():
            p.wait_ready()
        _after_next_ping(asched, ping_s)
        before = {k: _sample(p.pid) for k, p in procs.items()}
        t0 = time.monotonic()
        time.sleep(window_s)
        t1 = time.monotonic()
        after = {k: _sample(p.pid) for k, p in procs.items()}
        pings = sum(1 for m in asched.notify.all("WATCHDOG") if t0 <= m.at <= t1)
        rss = {k: psutil.Process(p.pid).memory_info().rss / MB for k, p in procs.items()}
        threads = {k: psutil.Process(p.pid).num_threads() for k, p in procs.items()}
    took = t1 - t0
    per_min: dict[str, dict[str, float]] = {}
    for k in procs:
        cpu, vol, invol = (b - a for a, b in zip(before[k], after[k], strict=True))
        per_min[k] = {
            "cpu_ms": cpu / 1e6 * 60 / took,
            "wakeups": vol * 60 / took,
            "involuntary": invol * 60 / took,
        }
    vol_asched = after["asched"][1] - before["asched"][1]
    besides = vol_asched - pings
    res: dict[str, Any] = {
        "checkins": N,
        "window_s": round(took, 3),
        "watchdog_s": wd_s,
        "watchdog_pings": pings,
        "wakeups": {k: after[k][1] - before[k][1] for k in procs},
        "involuntary": {k: after[k][2] - before[k][2] for k in procs},
        "wakeups_besides_watchdog": besides,
        "per_minute": per_min,
        "rss_mb": rss,
        "threads": threads,
    }
    aps = per_min.get("apscheduler", {})
    window = f"one window of {took / 60:.3g} min" if took >= 60 else f"one window of {took:.0f} s"
    res["rows"] = [
        Row("4 idle", f"10,000 stored: wake-ups besides the watchdog, in {took / 60:.3g} min",
            "count", besides,
            note=f"{vol_asched} wake-ups, {pings} of them watchdog pings"
                 f" (WatchdogSec={wd_s:g}s)").as_dict(),
        Row("4 idle", "10,000 stored: wake-ups per minute, watchdog pings included", "count",
            per_min["asched"]["wakeups"], aps.get("wakeups"), note=window).as_dict(),
        Row("4 idle", "10,000 stored: CPU time per minute", "ms", per_min["asched"]["cpu_ms"],
            aps.get("cpu_ms")).as_dict(),
        Row("4 idle", "10,000 stored: RSS", "MB", rss["asched"], rss.get("apscheduler")).as_dict(),
    ]  # fmt: skip
    return res
