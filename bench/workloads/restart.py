"""Workload 3: ``systemctl restart`` -> READY=1 of asched's own unit under a real systemd.

Measured as PID 1 stamped it: from the unit leaving "active" (the "Stopping" of the restart) to
its entering "active" again, which a Type=notify unit does once the new process sent READY=1; no
client overhead is in it. Idle, and while 5 check-ins fire every second into the user's tmux
server (then the old daemon first finishes what it had started). The floor is the same restart
of a Type=notify unit that is a bare Python sending READY=1 at once; beside it, the same unit
with every other setting of asched@USER.service (its user, directories and sandbox), which is
what systemd's side of asched's restart costs, and that unit importing the libraries the daemon
cannot start without (the floor of any daemon built as asched is); idle, the four are restarted
in turns. asched only among the peers: APScheduler and systemd timers have no handoff of their
own. The reference scheduler's unit sleeps 3 s before it starts (3,000 ms on top of its own
start).
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench.peers.systemd_box import LIBRARIES, SystemdBox, restart_unit, start_floor_unit
from bench.workloads.context import Ctx, Row, ms
from tests.support.stats import summary
from tests.support.systemd import TMUX_SOCKET, TMUX_UNIT, UNIT

REFERENCE_S = 3.0
LOADED_CHECKINS = 5


def _restarts(box: SystemdBox, unit: str, n: int, pause: tuple[float, float]) -> list[float]:
    """``n`` restarts, ``pause`` (random, so that restarts land at every phase of the
    deliveries' 1 s rhythm) between them; seconds to READY each."""
    rng = random.Random(20261130)
    logged = []
    for _ in range(n):
        logged.append(restart_unit(box, unit)[0])
        time.sleep(rng.uniform(*pause))
    return logged


def _in_turns(box: SystemdBox, units: dict[str, str], n: int) -> dict[str, list[float]]:
    """``n`` rounds in which each of ``units`` is restarted once, in a random order, so that
    whatever the machine does meanwhile weighs on each alike; seconds to READY each."""
    rng = random.Random(20261207)
    logged: dict[str, list[float]] = {name: [] for name in units}
    for _ in range(n):
        for name in rng.sample(list(units), len(units)):
            logged[name].append(restart_unit(box, units[name])[0])
            time.sleep(rng.uniform(0.05, 0.1))
    return logged


def _p50(stats: dict[str, float]) -> str:
    return f"{stats['p50']:.0f}" if "p50" in stats else "-"


def _install(box: SystemdBox) -> str:
    """How asched is installed in the box, for the row's note."""
    return "its wheel" if box.install == "wheel" else "the dev environment (the wheel failed)"


def run(ctx: Ctx) -> dict[str, Any]:
    """Idle and loaded restarts of asched@.service, and of the floor unit."""
    box = ctx.box()
    if box is None:
        return {"rows": []}
    n, n_loaded = ctx.n(5, 20), ctx.n(3, 10)
    svc = box.asched_service()
    turns = _in_turns(
        box,
        {
            "idle": UNIT,
            "floor": start_floor_unit(box),
            "sandboxed": start_floor_unit(box, sandboxed=True),
            "libraries": start_floor_unit(box, sandboxed=True, libraries=True),
        },
        n,
    )
    idle, floor, sandboxed, libraries = (
        turns[k] for k in ("idle", "floor", "sandboxed", "libraries")
    )
    # Loaded: the user's own tmux server (a unit of its own), check-ins every second.
    targets = svc.start_tmux(LOADED_CHECKINS)
    svc.dropin("tmux", f"[Service]\nEnvironment=ASCHED_TMUX_SOCKET={TMUX_SOCKET}\n")
    svc.systemctl("restart", UNIT)
    for i, target in enumerate(targets):
        svc.cli("add", target, f"msg-{i}", "--every", "1s")
    time.sleep(1.5)
    loaded = _restarts(box, UNIT, n_loaded, (0.1, 0.6))
    delivered = sum(len(svc.received(i)) for i in range(LOADED_CHECKINS))
    box.box.run(["systemctl", "stop", UNIT, TMUX_UNIT], check=False, timeout=60)
    res: dict[str, Any] = {
        "systemd": box.version,
        "install": box.install,
        "idle_ms": summary(ms(idle)),
        "loaded_ms": summary(ms(loaded)),
        "loaded_lines_typed": delivered,
        "floor_ms": summary(ms(floor)),
        "sandboxed_floor_ms": summary(ms(sandboxed)),
        "libraries_floor_ms": summary(ms(libraries)),
        "reference_ms": REFERENCE_S * 1000,
        "samples": {
            "idle_ms": ms(idle),
            "loaded_ms": ms(loaded),
            "floor_ms": ms(floor),
            "sandboxed_floor_ms": ms(sandboxed),
            "libraries_floor_ms": ms(libraries),
        },
    }
    fl = res["floor_ms"].get("p50")
    res["rows"] = [
        Row("3 restart", "systemctl restart -> READY=1, idle (as PID 1 stamped it)", "ms",
            res["idle_ms"].get("p50"), floor=fl, floor_what="bare Python Type=notify unit",
            note=f"median of {n}; asched installed from {_install(box)}; the bare unit with"
            f" asched@'s user, directories and sandbox: {_p50(res['sandboxed_floor_ms'])} ms,"
            f" importing {', '.join(LIBRARIES)} first: {_p50(res['libraries_floor_ms'])} ms;"
            " reference scheduler: a 3,000 ms sleep alone").as_dict(),
        Row("3 restart", f"systemctl restart -> READY=1, {LOADED_CHECKINS} check-ins every second",
            "ms", res["loaded_ms"].get("p50"), floor=fl, floor_what="bare Python Type=notify unit",
            note=f"median of {n_loaded}; in-flight deliveries finish first").as_dict(),
    ]  # fmt: skip
    return res
