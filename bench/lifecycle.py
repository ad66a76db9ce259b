"""The daemon's lifecycle in figures: start, stop, and the lock changing hands.

  python bench/lifecycle.py [--runs N] [--loop uvloop|asyncio] [--json PATH]

start       spawn -> READY=1
stop        SIGTERM -> exit (idle daemon)
sigkill     holder SIGKILLed -> the waiting daemon's READY=1
handoff     holder SIGTERMed -> its exit -> the waiting daemon's READY=1 (gap after the exit)
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Cleanup, print_table, spawn_daemon, write_json
from tests.support.stats import summary


def _wait_exit(pid: int, timeout: float) -> float:
    """Monotonic time at which ``pid`` (a child) exited."""
    fd = os.pidfd_open(pid)
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise TimeoutError(f"pid {pid} still running after {timeout} s")
        return time.monotonic()
    finally:
        os.close(fd)


def _waiting(d: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while "lock.waiting" not in d.stderr_path.read_text():  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError("second daemon never waited for the lock")
        time.sleep(0.005)


def run(runs: int, loop: str) -> dict[str, list[float]]:
    """Each measurement ``runs`` times; milliseconds."""
    out: dict[str, list[float]] = {"start": [], "stop": [], "sigkill": [], "handoff": []}
    with Cleanup() as cleanup:
        for n in range(runs):
            tmp = cleanup.tempdir()
            state = tmp / "state"
            a = spawn_daemon(cleanup, tmp, state, loop=loop, name=f"a{n}")
            out["start"].append(a.wait_ready() * 1000)
            out["stop"].append(a.stop() * 1000)
            a = spawn_daemon(cleanup, tmp, state, loop=loop, name=f"b{n}")
            a.wait_ready()
            b = spawn_daemon(cleanup, tmp, state, loop=loop, name=f"c{n}")
            _waiting(b)
            killed = time.monotonic()
            os.kill(a.pid, signal.SIGKILL)
            out["sigkill"].append((b.notify.wait_for("READY", "1", 10).at - killed) * 1000)
            c = spawn_daemon(cleanup, tmp, state, loop=loop, name=f"d{n}")
            _waiting(c)
            os.kill(b.pid, signal.SIGTERM)
            exited = _wait_exit(b.pid, 10)
            out["handoff"].append((c.notify.wait_for("READY", "1", 10).at - exited) * 1000)
            c.stop()
    return out


def main() -> int:
    """Run, print a table, optionally write JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    results = run(args.runs, args.loop)
    rows = []
    for name, values in results.items():
        s = summary(values)
        rows.append([name, s["n"], s["p50"], s["p99"], s["max"]])
    print_table(f"lifecycle ({args.loop}), ms", ["measure", "n", "p50", "p99", "max"], rows)
    if args.json:
        write_json(Path(args.json), {k: summary(v) for k, v in results.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
