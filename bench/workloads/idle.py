"""Workload 4: idle cost with 10,000 stored check-ins: CPU, wake-ups, memory.

asched and APScheduler, each on its own store of 10,000 hourly check-ins (the first due an hour
ahead), are started, left to settle for 1 s, then watched over the same windows side by side:
CPU seconds (user + system, every thread) and wake-ups (voluntary context switches of every
thread, from /proc) per minute, and RSS at the end. The figure is the median over the windows.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import Cleanup, wakeups
from bench.peers.apscheduler import ApsPeer, build_store
from bench.peers.asched import AschedPeer
from bench.scale import build_store as build_asched_store
from bench.workloads.context import Ctx, Row, median

MB = 1024 * 1024
N = 10_000


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` in ns (/proc schedstat: psutil's ticks are 10 ms)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def _sample(pid: int) -> tuple[float, int]:
    return cpu_ns(pid) / 1e9, wakeups(pid)


def run(ctx: Ctx) -> dict[str, Any]:
    """Side-by-side idle windows; per-minute rates and RSS."""
    windows, window_s = ctx.n(2, 4), ctx.n(5.0, 15.0)
    with Cleanup() as cu:
        _, state, _ = build_asched_store(cu, N)
        procs = {"asched": AschedPeer(cu, None, state=state, name="idle-asched").proc}
        if ctx.aps():
            db, _ = build_store(cu.tempdir("asched-aps-"), N)
            procs["apscheduler"] = ApsPeer(cu, "/nonexistent", db=db, name="idle-aps").proc
        for p in procs.values():
            p.wait_ready()
        time.sleep(1.0)
        per_min: dict[str, dict[str, list[float]]] = {
            k: {"cpu_ms": [], "wakeups": []} for k in procs
        }
        for _ in range(windows):
            before = {k: _sample(p.pid) for k, p in procs.items()}
            t0 = time.monotonic()
            time.sleep(window_s)
            took = time.monotonic() - t0
            for k, p in procs.items():
                cpu, wake = _sample(p.pid)
                per_min[k]["cpu_ms"].append((cpu - before[k][0]) * 1000 * 60 / took)
                per_min[k]["wakeups"].append((wake - before[k][1]) * 60 / took)
        rss = {k: psutil.Process(p.pid).memory_info().rss / MB for k, p in procs.items()}
        threads = {k: psutil.Process(p.pid).num_threads() for k, p in procs.items()}
    res: dict[str, Any] = {
        "checkins": N,
        "windows": windows,
        "window_s": window_s,
        "per_minute": per_min,
        "rss_mb": rss,
        "threads": threads,
    }

    def med(peer: str, key: str) -> float | None:
        return median(per_min[peer][key]) if peer in per_min else None

    res["rows"] = [
        Row("4 idle", "10,000 stored: CPU time per minute", "ms", med("asched", "cpu_ms"),
            med("apscheduler", "cpu_ms"),
            note=f"median of {windows} windows of {window_s:g} s").as_dict(),
        Row("4 idle", "10,000 stored: wake-ups per minute", "count", med("asched", "wakeups"),
            med("apscheduler", "wakeups")).as_dict(),
        Row("4 idle", "10,000 stored: RSS", "MB", rss["asched"], rss.get("apscheduler")).as_dict(),
    ]  # fmt: skip
    return res
