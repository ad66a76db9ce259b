"""Due-to-pasted latency of the real daemon, and the floor of raw tmux calls beside it.

    python bench/latency.py [--quick] [--loop uvloop|asyncio] [--json PATH]

Receivers are panes running a small raw-mode reader that stamps the wall time at which each
message's first byte arrives, so "pasted" means "readable by the program in the pane".
Workloads:
  single   one check-in at a time: due -> pasted, p50 / p99 / max
  fanout   100 check-ins due at the same instant in 100 panes: due -> last one pasted
  floor    the same measurement for a bare one-call paste and for a two-call send (text, Enter)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

# `python bench/latency.py` puts bench/ on the path; tests.support lives at the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asched.core.models import NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.daemon.control import send as control_send
from asched.store.store import Store
from tests.support.daemons import DaemonProc, daemon_env, spawn
from tests.support.stats import percentile
from tests.support.tmux import Server

READER = (
    "import os, sys, time, tty\n"
    "tty.setraw(0)\n"
    "out = open(sys.argv[1], 'a', buffering=1)\n"
    "while True:\n"
    "    b = os.read(0, 65536)\n"
    "    if not b:\n"
    "        break\n"
    "    t = time.time()\n"
    "    for tok in b.decode(errors='replace').split():\n"
    "        if tok.startswith('m-'):\n"
    "            out.write(f'{tok} {t:.6f}\\n')\n"
)


class Bench:
    """A private tmux server with reader panes, and a daemon on a private state dir."""

    def __init__(self, root: Path, panes: int, loop: str) -> None:
        self.root = root
        self.server = Server(root)
        self.state = root / "state"
        self.state.mkdir(mode=0o700)
        self.loop = loop
        self.daemon: DaemonProc | None = None
        for n in range(panes):
            argv = [sys.executable, "-c", READER, str(self.out(n))]
            self.server.new_session(f"b{n}", argv, size=(80, 10))
        time.sleep(0.5)  # let every reader reach its read()

    def out(self, n: int) -> Path:
        return self.root / f"r{n}.txt"

    def start_daemon(self) -> None:
        argv = [sys.executable, "-m", "asched", "daemon", "--state-dir", str(self.state)]
        argv += ["--tmux-socket", self.server.sock, "--loop", self.loop, "--log-level", "warning"]
        self.daemon = spawn(argv, self.root, "daemon", env=daemon_env(self.root))
        self.daemon.wait_ready(15)

    def schedule(self, items: list[tuple[int, str, datetime]]) -> None:
        with Store.open(self.state / DB_NAME) as store:
            store.add_many(
                NewCheckIn(target=f"b{n}:0", message=msg, rule=Once(due), next_due=due)
                for n, msg, due in items
            )
        control_send(self.state, "wake")

    def arrivals(self, panes: int) -> dict[str, float]:
        got: dict[str, float] = {}
        for n in range(panes):
            with contextlib.suppress(FileNotFoundError):
                for line in self.out(n).read_text().splitlines():
                    tok, _, t = line.partition(" ")
                    got.setdefault(tok, float(t))
        return got

    def wait_for(self, names: set[str], panes: int, timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.arrivals(panes)
            if names <= got.keys() or time.monotonic() > deadline:
                return got
            time.sleep(0.02)

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        self.server.kill()


@contextlib.contextmanager
def bench(panes: int, loop: str) -> Iterator[Bench]:
    """A Bench that is always torn down."""
    root = Path(tempfile.mkdtemp(prefix="asched-lat-"))
    b = Bench(root, panes, loop)
    try:
        yield b
    finally:
        b.close()
        shutil.rmtree(root, ignore_errors=True)


def single(runs: int, loop: str) -> list[float]:
    """Due -> pasted (ms) of single check-ins, rotating over 10 panes."""
    with bench(10, loop) as b:
        b.start_daemon()
        # A whole millisecond, as asched keeps due times (see bench/workloads/latency.py).
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        items = [(i % 10, f"m-s{i}", start + timedelta(seconds=0.25 * i)) for i in range(runs)]
        b.schedule(items)
        got = b.wait_for({m for _, m, _ in items}, 10, timeout=0.25 * runs + 15)
        return [(got[m] - due.timestamp()) * 1000 for _, m, due in items if m in got]


def fanout(rounds: int, loop: str) -> list[float]:
    """Due -> last pasted (ms) of 100 check-ins due at one instant in 100 panes."""
    out = []
    with bench(100, loop) as b:
        b.start_daemon()
        for r in range(rounds):
            due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
            items = [(n, f"m-f{r}-{n}", due) for n in range(100)]
            b.schedule(items)
            got = b.wait_for({m for _, m, _ in items}, 100, timeout=20)
            arrived = [got[m] for _, m, _ in items if m in got]
            if len(arrived) == 100:
                out.append((max(arrived) - due.timestamp()) * 1000)
            time.sleep(1.2)  # past the per-pane gap before the next round
    return out


def floor(runs: int) -> dict[str, list[float]]:
    """The physical floor: a bare one-call paste, and send-keys text then Enter (two calls)."""
    res: dict[str, list[float]] = {"one call": [], "two calls": []}
    with bench(1, "uvloop") as b:
        for i in range(runs):
            for kind in res:
                tok = f"m-{kind[:3]}{i}"
                t0 = time.time()
                if kind == "one call":
                    b.server.tmux("load-buffer", "-b", "f", "-", ";", "paste-buffer", "-p", "-d",
                                  "-b", "f", "-t", "=b0:0", input=tok + " ")  # fmt: skip
                else:
                    b.server.tmux("send-keys", "-t", "=b0:0", "-l", tok + " ")
                    b.server.tmux("send-keys", "-t", "=b0:0", "Enter")
                got = b.wait_for({tok}, 1, timeout=5)
                if tok in got:
                    res[kind].append((got[tok] - t0) * 1000)
    return res


def row(name: str, values: list[float]) -> dict[str, float | str | int]:
    """One table row."""
    return {
        "workload": name,
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2) if values else float("nan"),
        "p99_ms": round(percentile(values, 99), 2) if values else float("nan"),
        "max_ms": round(max(values), 2) if values else float("nan"),
    }


def main() -> int:
    """Run the workloads, print a table, optionally write JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer runs (under a minute)")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is not installed", file=sys.stderr)
        return 1
    n_single, n_fan, n_floor = (20, 3, 20) if args.quick else (60, 7, 60)
    rows = [row(f"single due->pasted ({args.loop})", single(n_single, args.loop))]
    rows.append(row(f"100 panes due->last pasted ({args.loop})", fanout(n_fan, args.loop)))
    for kind, values in floor(n_floor).items():
        rows.append(row(f"floor: {kind}, call->pasted", values))
    print(f"{'workload':<44} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in rows:
        print(f"{r['workload']:<44} {r['n']:>4} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
