"""Workload 2: 100 check-ins due at the same instant across 100 panes, and 300 at once.

Fan-out: due -> the last of the 100 pasted (median over rounds), due -> each one pasted (for the
plot), and how many never arrived. Drops: 300 one-shots due at one instant, 3 per pane; a message
that never reaches its pane is dropped. APScheduler drops every job whose coroutine starts more
than ``misfire_grace_time`` (1 s by default) after its run time, with a log warning only; its
scheduler commits the removal of each due job to the SQLite store before any of them runs.
asched has no such limit below its 300 s grace, and spaces the messages to one pane by 0.5 s.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench.common import Cleanup
from bench.peers.apscheduler import ApsPeer
from bench.peers.asched import AschedPeer
from bench.receivers import Arrivals
from bench.workloads.context import PANES, Ctx, Row, median, sleep_until
from tests.support.stats import summary

LEAD_S = 1.0  # asched: from hand-over to the due time
APS_MARGIN_S = 0.05  # APScheduler: its add_job calls must have returned this long before due


def _round(got: Arrivals, tokens: list[str], due: float) -> dict[str, Any]:
    """One round: how many arrived, due -> each (ms), due -> the last that arrived (ms)."""
    each = sorted(round((got.pasted[t] - due) * 1000, 3) for t in tokens if t in got.pasted)
    return {
        "n": len(tokens),
        "dropped": len(tokens) - len(each),
        "last_ms": each[-1] if each else None,
        "each_ms": each,
    }


def _asched(cu: Cleanup, ctx: Ctx, per_pane: list[int]) -> list[dict[str, Any]]:
    recv = ctx.recv()
    peer = AschedPeer(cu, recv.sock, name="fan-asched")
    peer.wait_ready()
    out = []
    for r, k in enumerate(per_pane):
        due = round(time.time() + LEAD_S, 3)  # a whole millisecond (see latency.py)
        items = [(recv.targets[i % PANES], f"m-fa{r}-{i}", due) for i in range(PANES * k)]
        before = len(peer.outcomes())
        peer.schedule(items)
        tokens = [t for _, t, _ in items]
        got = recv.wait_for(set(tokens), 30 + 2 * k)
        out.append(_round(got, tokens, due))
        deadline = time.monotonic() + 30
        while len(peer.outcomes()) - before < len(items) and time.monotonic() < deadline:
            time.sleep(0.05)  # every Enter and check done before the next round
    peer.stop()
    return out


def _aps(cu: Cleanup, ctx: Ctx, per_pane: list[int]) -> list[dict[str, Any]]:
    recv = ctx.recv()
    peer = ApsPeer(cu, recv.sock, name="fan-aps")
    peer.wait_ready()
    out = []
    for r, k in enumerate(per_pane):
        n = PANES * k
        # add_job commits each job on its own: the due time leaves room for that, and is
        # checked afterwards, so that every job is in the store before it is due.
        due = time.time() + 0.6 + 0.006 * n
        jobs = [(f"fp{r}-{i}", recv.pane_ids[i % PANES], f"m-fp{r}-{i}", due) for i in range(n)]
        t_add = time.time()
        added = peer.schedule(jobs)
        if added > due - APS_MARGIN_S:
            raise RuntimeError(f"APScheduler took {added - t_add:.2f} s to add {n} jobs")
        sleep_until(due)
        # Every job ends in an event: "executed" (after its Enter) or "missed".
        deadline = time.monotonic() + 30
        ended: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            ended = [
                e
                for e in peer.proc.events(strict=False)
                if e.get("event") in ("executed", "missed", "error")
                and str(e.get("id", "")).startswith(f"fp{r}-")
            ]
            if len(ended) >= n:
                break
            time.sleep(0.1)
        time.sleep(0.1)
        res = _round(recv.arrivals(), [t for _, _, t, _ in jobs], due)
        res["missed_events"] = sum(1 for e in ended if e["event"] == "missed")
        res["add_jobs_s"] = added - t_add
        out.append(res)
    peer.stop()
    return out


def _systemd(ctx: Ctx, rounds: int) -> list[dict[str, Any]]:
    box = ctx.box()
    if box is None or rounds == 0:
        return []
    panes = box.start_receivers(PANES)
    out = []
    for r in range(rounds):
        # One --on-calendar instant for all 100 (--on-active would give each its own start).
        t0 = time.time()
        at = math.ceil(t0 + 0.03 * PANES + 1.0)
        tokens = [f"m-fs{r}-{i}" for i in range(PANES)]
        for tok, pane in zip(tokens, panes, strict=True):
            box.arm(pane, tok, at_epoch=at)
        armed = time.time() - t0
        if armed > at - t0:
            raise RuntimeError(f"arming 100 timers took {armed:.2f} s")
        res = _round(box.wait_for(set(tokens), at - time.time() + 20), tokens, at)
        res["arm_100_timers_s"] = armed
        out.append(res)
        time.sleep(0.7)  # the Enters
    return out


def run(ctx: Ctx) -> dict[str, Any]:
    """Fan-out and drops for each peer; the table rows."""
    per_pane = [1] * ctx.n(2, 5) + [3] * ctx.n(1, 3)
    with Cleanup() as cu:
        peers = {"asched": _asched(cu, ctx, per_pane)}
        if ctx.aps():
            peers["apscheduler"] = _aps(cu, ctx, per_pane)
    peers["systemd"] = _systemd(ctx, ctx.n(1, 3))
    rows_of = {k: {n: [r for r in v if r["n"] == n] for n in (100, 300)} for k, v in peers.items()}

    def stat(peer: str, n: int, key: str) -> float | None:
        return median([r[key] for r in rows_of[peer][n] if r[key] is not None])

    def p50_all(peer: str) -> float | None:
        return summary([x for r in rows_of[peer][100] for x in r["each_ms"]]).get("p50")

    def row(measure: str, unit: str, fn: Any, *args: Any, **kw: Any) -> dict[str, Any]:
        a, p, s = (
            fn(k, *args) if k in peers else None for k in ("asched", "apscheduler", "systemd")
        )
        return Row("2 fan-out", measure, unit, a, p, s, **kw).as_dict()

    r100, r300 = len(rows_of["asched"][100]), len(rows_of["asched"][300])
    rows = [
        row("100 due at once in 100 panes: due -> last pasted", "ms", stat, 100, "last_ms",
            floor=ctx.floor("tmux_control_100_pastes"),
            floor_what="100 guarded pastes, one control-client line",
            note=f"median of {r100} rounds"),
        row("100 due at once: due -> pasted, p50 of all messages", "ms", p50_all),
        row("100 due at once: never delivered", "count", stat, 100, "dropped",
            note=f"median of {r100} rounds"),
        row("300 due at once (3 per pane): never delivered", "count", stat, 300, "dropped",
            note=f"median of {r300} rounds; APScheduler: misfire_grace_time 1 s"),
        row("300 due at once: due -> last pasted", "ms", stat, 300, "last_ms",
            note="asched spaces one pane's messages by 0.5 s; APScheduler: of those it ran"),
    ]  # fmt: skip
    return {"rounds": peers, "rows": rows}
