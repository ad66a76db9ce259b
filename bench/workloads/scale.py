"""Workload 5: 100,000 stored check-ins: start -> READY, adding one more, memory.

Start: spawn -> READY=1 (asched: store opened, schedule loaded; APScheduler: scheduler started
and its store processed), RSS at READY; asched and APScheduler alternate. Add: with the daemon
running on that store, the wall time of ``asched add TARGET MSG --in 1h`` (the real CLI: a Python
process that stores the check-in and wakes the daemon), and of a Python process that adds one
job to APScheduler's store (a paused scheduler, ``add_job``, ``shutdown``: the only way
APScheduler 3 offers from outside, and the running scheduler is not told about it). Floors: a
bare ``python -c pass`` and ``asched --version``.
"""

from __future__ import annotations

from typing import Any

from bench.common import ASCHED, Cleanup, bench_env, run_timed
from bench.peers.apscheduler import ApsPeer, add_cmd, build_store, peer_env
from bench.peers.asched import AschedPeer
from bench.scale import build_store as build_asched_store
from bench.workloads.context import Ctx, Row, ms
from tests.support.stats import summary

MB = 1024 * 1024
N = 100_000


def run(ctx: Ctx) -> dict[str, Any]:
    """Starts and adds on 100,000-item stores."""
    starts, adds = ctx.n(3, 7), ctx.n(5, 15)
    aps = ctx.aps()
    ready: dict[str, list[float]] = {"asched": [], "apscheduler": []}
    rss: dict[str, list[float]] = {"asched": [], "apscheduler": []}
    add_s: dict[str, list[float]] = {"asched": [], "apscheduler": []}
    with Cleanup() as cu:
        tmp, state, build_a = build_asched_store(cu, N)
        aps_tmp = cu.tempdir("asched-aps-")
        db, build_p = build_store(aps_tmp, N) if aps else (None, None)

        def start(peer: str, name: str) -> Any:
            p = (
                AschedPeer(cu, None, state=state, name=name).proc
                if peer == "asched"
                else ApsPeer(cu, "/nonexistent", db=db, name=name).proc
            )
            ready[peer].append(p.wait_ready())
            rss[peer].append(p.ps().memory_info().rss / MB)
            return p

        for peer in ("asched", "apscheduler")[: 2 if aps else 1]:  # warm the page cache
            start(peer, f"warm-{peer}").stop()
            ready[peer].clear()
            rss[peer].clear()
        for i in range(starts):
            for peer in ("asched", "apscheduler")[: 2 if aps else 1]:
                p = start(peer, f"s{i}-{peer}")
                if i < starts - 1:
                    p.stop()
                    continue
                # The last start of each stays up for the adds.
                if peer == "asched":
                    env = bench_env(tmp)
                    cmd = [ASCHED, "add", "b0:0", "later", "--in", "1h", "--state-dir", str(state)]
                else:
                    env, cmd = peer_env(aps_tmp), add_cmd(db)  # type: ignore[arg-type]
                run_timed(cmd, env, tmp)  # warm-up
                add_s[peer] = [run_timed(cmd, env, tmp).wall for _ in range(adds)]
                rss[peer].append(p.ps().memory_info().rss / MB)
                p.stop()
    res: dict[str, Any] = {
        "checkins": N,
        "build_s": {"asched": build_a, "apscheduler": build_p},
        "ready_ms": {k: summary(ms(v)) for k, v in ready.items()},
        "rss_mb": {k: summary(v) for k, v in rss.items()},
        "add_ms": {k: summary(ms(v)) for k, v in add_s.items()},
    }

    def p50(key: str, peer: str) -> float | None:
        value = res[key][peer].get("p50")
        return None if value is None else float(value)

    res["rows"] = [
        Row("5 scale", "100,000 stored: start -> READY", "ms", p50("ready_ms", "asched"),
            p50("ready_ms", "apscheduler"), floor=ctx.floor("python_start"),
            floor_what="python -c pass", note=f"median of {starts} starts").as_dict(),
        Row("5 scale", "100,000 stored: add one (separate process), wall", "ms",
            p50("add_ms", "asched"), p50("add_ms", "apscheduler"),
            floor=ctx.floor("asched_version"), floor_what="asched --version",
            note="APScheduler: the running scheduler is not told").as_dict(),
        Row("5 scale", "100,000 stored: RSS", "MB", p50("rss_mb", "asched"),
            p50("rss_mb", "apscheduler")).as_dict(),
    ]  # fmt: skip
    return res
