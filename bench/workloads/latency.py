"""Workload 1: due -> pasted of single check-ins (one at a time, rotating over 10 panes).

asched, APScheduler and the floor (the bench making the paste call itself at the due time) take
turns in blocks; the systemd timers run in the box afterwards. In the full run four timers with
the default accuracy are armed later (:func:`arm_default`, before the idle workload, whose
figures they cannot touch) and collected at the end of the run (:func:`finish`): armed first, they
fired during the blocks, and each firing starts processes that took the CPU from the check-in
being measured (the single p99 of the run at c274af2 was one such sample).
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from bench.common import Cleanup
from bench.peers.apscheduler import ApsPeer
from bench.peers.asched import AschedPeer
from bench.peers.tmux_argv import paste_args, prefix
from bench.receivers import body
from bench.workloads.context import Ctx, Row, ms, sleep_until
from tests.support.stats import summary

SPACING_S = 0.2  # between due times; each pane gets one every 2 s, well past asched's gap
LEAD_S = 1.0  # the first due time of a block, after the items were handed over
ROTATE = 10
HOST_PEERS = ("asched", "apscheduler", "floor")


def _block(kind: str, peer: AschedPeer | ApsPeer | None, ctx: Ctx, k: int, tag: str) -> list[float]:
    """``k`` single check-ins through one peer, due ``SPACING_S`` apart; due -> pasted each.

    ``floor`` is a perfect scheduler: the bench itself makes the one paste call at each due time.
    """
    recv = ctx.recv()
    # On a whole millisecond, as a person's times are (whole seconds or minutes): asched keeps
    # due times to the millisecond, and a due time between two would add a random offset of up
    # to 0.5 ms, the same for every item of a block (they are 0.2 s apart).
    start = round(time.time() + (0.2 if peer is None else LEAD_S), 3)
    due = [round(start + SPACING_S * i, 3) for i in range(k)]
    toks = [f"m-l{tag}-{i}" for i in range(k)]
    if isinstance(peer, AschedPeer):
        peer.schedule([(recv.targets[i % ROTATE], toks[i], due[i]) for i in range(k)])
    elif isinstance(peer, ApsPeer):
        peer.schedule(
            [(f"l{tag}-{i}", recv.pane_ids[i % ROTATE], toks[i], due[i]) for i in range(k)]
        )
    else:
        for i in range(k):
            sleep_until(due[i])
            subprocess.run(
                [*prefix(recv.sock), *paste_args(recv.pane_ids[i % ROTATE], f"lf{tag}-{i}")],
                input=body(toks[i]).encode(),
                capture_output=True,
                timeout=10,
                check=True,
            )
    got = recv.wait_for(set(toks), SPACING_S * k + 15, range(ROTATE))
    return [got.pasted[t] - d for t, d in zip(toks, due, strict=True) if t in got.pasted]


def _host(ctx: Ctx, n: int, blocks: int) -> dict[str, list[float]]:
    """asched, APScheduler and the floor in alternating blocks, so that whatever else the
    machine does at the time weighs on each alike; both schedulers run (idle) throughout."""
    peers: dict[str, AschedPeer | ApsPeer | None] = {}
    with Cleanup() as cu:
        sock = ctx.recv().sock
        peers["asched"] = AschedPeer(cu, sock, name="lat-asched")
        if ctx.aps():
            peers["apscheduler"] = ApsPeer(cu, sock, name="lat-aps")
        peers["floor"] = None
        for p in peers.values():
            if p is not None:
                p.wait_ready()
        kinds = list(peers)
        for kind in kinds:  # warm-up: first tmux client, first store write; not counted
            _block(kind, peers[kind], ctx, 1, f"{kind[:2]}w")
        out: dict[str, list[float]] = {k: [] for k in kinds}
        per_block = max(1, n // blocks)
        for b in range(blocks):
            for kind in kinds[b % len(kinds) :] + kinds[: b % len(kinds)]:
                out[kind] += _block(kind, peers[kind], ctx, per_block, f"{kind[:2]}{b}")
    return out


def _systemd(ctx: Ctx, n: int) -> list[float]:
    """``n`` transient timers with AccuracySec=1us, one per due time."""
    box = ctx.box()
    if box is None:
        return []
    panes = box.start_receivers(ROTATE)
    start = time.time() + LEAD_S + 0.05 * n  # arming takes ~20 ms a timer
    armed = []
    for i in range(n + 1):
        tok = f"m-ls{i}"
        due = start + SPACING_S * i
        armed.append((tok, box.arm(panes[i % ROTATE], tok, on_active_s=due - time.time())))
    got = box.wait_for({t for t, _ in armed}, SPACING_S * n + 20)
    return [got.pasted[t] - due for t, due in armed[1:] if t in got.pasted]


def arm_default(ctx: Ctx, results: dict[str, Any]) -> None:
    """Arm the timers with the default AccuracySec=1min for the latency workload's results (once;
    none in ``--quick``), due at phases spread over a minute. The bench calls it when a minute or
    two of firings cannot weigh on a measured figure (the idle workload counts only asched's own
    wake-ups), or after the last workload.

    systemd fires such a timer at a host-specific point of the minute after its due time, so its
    lateness depends on the due time's phase: spreading the due times samples that range.
    """
    lat = results["workloads"].get("latency") or {}
    k = ctx.n(0, 4)
    if "systemd_default" not in lat or "armed" in lat["systemd_default"] or k == 0:
        return
    box = ctx.box()
    if box is None:
        return
    panes = box.start_receivers(ROTATE + k)[ROTATE:]
    lat["systemd_default"]["armed"] = [
        (f"m-sd{i}", box.arm(pane, f"m-sd{i}", on_active_s=1.0 + 60.0 * i / k, accuracy=None))
        for i, pane in enumerate(panes)
    ]


def _default_row(samples: list[float], note: str) -> dict[str, Any]:
    s = summary(samples)
    return Row(
        "1 latency",
        "single check-in, systemd default AccuracySec=1min, p50 / max",
        "ms",
        None,
        None,
        s.get("p50"),
        note=note + (f"; max {s['max']:,.0f} ms" if s.get("n") else ""),
    ).as_dict()


def finish(ctx: Ctx, results: dict[str, Any]) -> None:
    """Collect the default-accuracy timers armed by :func:`arm_default` (arming them now when no
    workload did) and add their row."""
    arm_default(ctx, results)
    lat = results["workloads"].get("latency") or {}
    armed = [tuple(a) for a in (lat.get("systemd_default") or {}).get("armed", [])]
    box = ctx.box() if armed else None
    if box is None:
        return
    last_due = max(due for _, due in armed)
    got = box.wait_for({t for t, _ in armed}, max(0.0, last_due + 62 - time.time()))
    samples = [(got.pasted[t] - due) * 1000 for t, due in armed if t in got.pasted]
    lat["systemd_default"].update(summary=summary(samples), samples=samples)
    note = f"{len(samples)} of {len(armed)} timers, due times spread over a minute"
    results["rows"] = [
        _default_row(samples, note) if "AccuracySec=1min" in r["measure"] else r
        for r in results["rows"]
    ]


def run(ctx: Ctx) -> dict[str, Any]:
    """Single check-ins for each peer; samples and summaries in ms, and the table rows."""
    n = ctx.n(15, 60)
    host = _host(ctx, n, ctx.n(3, 6))
    a, p, f = (ms(host.get(k, [])) for k in HOST_PEERS)
    s = ms(_systemd(ctx, ctx.n(10, 30)))
    res = {
        "n": n,
        "asched": {"summary": summary(a), "samples": a},
        "apscheduler": {"summary": summary(p), "samples": p},
        "systemd_1us": {"summary": summary(s), "samples": s},
        "systemd_default": {},
        "floor": {"summary": summary(f), "samples": f},
    }
    rows = []
    for stat in ("p50", "p99", "max"):
        rows.append(
            Row(
                "1 latency",
                f"single check-in, due -> pasted, {stat}",
                "ms",
                summary(a).get(stat),
                summary(p).get(stat),
                summary(s).get(stat),
                summary(f).get(stat),
                "one tmux call made at the due time",
                note="systemd: AccuracySec=1us",
            ).as_dict()
        )
    rows.append(_default_row([], "not measured in --quick; it fires up to 60,000 ms late"))
    res["rows"] = rows
    return res
