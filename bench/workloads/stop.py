"""Workload 6: SIGTERM -> exit, idle and with deliveries in flight.

Idle: a freshly started peer with nothing due. In flight: 10 check-ins due at one instant in 10
panes, SIGTERM 0.15 s after the due time (every text pasted, every Enter still to come), then the
exit time and how many of the 10 were completed with their Enter. asched drains what it started
(up to its 5 s drain timeout); APScheduler's shutdown cancels running asyncio jobs.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Cleanup
from bench.peers.apscheduler import ApsPeer
from bench.peers.asched import AschedPeer
from bench.workloads.context import Ctx, Row, median, ms, sleep_until
from tests.support.stats import summary

IN_FLIGHT = 10
AFTER_DUE_S = 0.15


def _start(cu: Cleanup, ctx: Ctx, peer: str, name: str) -> AschedPeer | ApsPeer:
    sock = ctx.recv().sock
    p: AschedPeer | ApsPeer = (
        AschedPeer(cu, sock, name=name) if peer == "asched" else ApsPeer(cu, sock, name=name)
    )
    p.wait_ready()
    return p


def _in_flight(cu: Cleanup, ctx: Ctx, peer: str, r: int) -> tuple[float, int, int]:
    """One round: (seconds to exit, texts pasted, Enters pressed) of the 10."""
    recv = ctx.recv()
    p = _start(cu, ctx, peer, f"stopf-{peer}-{r}")
    panes = range(10, 10 + IN_FLIGHT)  # panes no other workload of the run types into now
    due = time.time() + 1.5
    tokens = [f"m-st{peer[:2]}{r}-{i}" for i in panes]
    if isinstance(p, AschedPeer):
        p.schedule([(recv.targets[i], t, due) for i, t in zip(panes, tokens, strict=True)])
    else:
        p.schedule(
            [(f"st{r}-{i}", recv.pane_ids[i], t, due) for i, t in zip(panes, tokens, strict=True)]
        )
    sleep_until(due + AFTER_DUE_S)
    took = p.stop()
    time.sleep(0.5)  # anything still arriving
    got = recv.arrivals()
    pasted = sum(1 for t in tokens if t in got.pasted)
    entered = sum(
        1 for i in panes if any(e > due for e in got.enters.get(recv.targets[i].split(":")[0], []))
    )
    return took, pasted, entered


def run(ctx: Ctx) -> dict[str, Any]:
    """Idle stops and in-flight stops of each peer."""
    peers = ["asched", "apscheduler"] if ctx.aps() else ["asched"]
    idle: dict[str, list[float]] = {k: [] for k in peers}
    flight: dict[str, list[tuple[float, int, int]]] = {k: [] for k in peers}
    with Cleanup() as cu:
        for i in range(ctx.n(3, 7)):
            for peer in peers:
                idle[peer].append(_start(cu, ctx, peer, f"stopi-{peer}-{i}").stop())
        for r in range(ctx.n(1, 3)):
            for peer in peers:
                flight[peer].append(_in_flight(cu, ctx, peer, r))
    res: dict[str, Any] = {
        "idle_ms": {k: summary(ms(v)) for k, v in idle.items()},
        "in_flight": {
            k: [{"exit_ms": t * 1000, "pasted": p, "entered": e} for t, p, e in v]
            for k, v in flight.items()
        },
    }

    def med(peer: str, idx: int) -> float | None:
        if peer not in flight:
            return None
        m = median([f[idx] for f in flight[peer]])
        return None if m is None else m * (1000 if idx == 0 else 1)

    res["rows"] = [
        Row("6 stop", "SIGTERM -> exit, idle", "ms", res["idle_ms"]["asched"].get("p50"),
            res["idle_ms"].get("apscheduler", {}).get("p50")).as_dict(),
        Row("6 stop", f"SIGTERM -> exit, {IN_FLIGHT} deliveries in flight", "ms", med("asched", 0),
            med("apscheduler", 0), note="asched finishes them first").as_dict(),
        Row("6 stop", f"... of those {IN_FLIGHT}, completed with their Enter", "count",
            med("asched", 2), med("apscheduler", 2), better="higher").as_dict(),
    ]  # fmt: skip
    return res
