"""asched against the tools people would otherwise use, on the same work, in one run.

    python -m bench [--quick] [--only W [W ...]] [--out DIR]

Peers: APScheduler 3.x (AsyncIOScheduler, SQLAlchemy SQLite job store, default settings) in a
process of its own, and transient systemd timers inside a real systemd (a throw-away nspawn box,
root only), each typing through asched's own tmux calls into the same receiver panes. Workloads:

  floor    the physical floor: tmux client calls, a bare Python start (always run first)
  latency  1. due -> pasted of single check-ins: p50, p99, max
  fanout   2. 100 due at once across 100 panes: due -> last pasted; 300 at once: how many dropped
  restart  3. `systemctl restart` -> READY=1 of asched's unit (asched only)
  idle     4. 10,000 stored: CPU seconds and wake-ups per minute, RSS
  scale    5. 100,000 stored: start -> READY, adding one from another process, RSS
  stop     6. SIGTERM -> exit, idle and with 10 deliveries in flight
  cli      spawn -> exit of asched --version, next, add and ls --json beside python -c pass

Prints the table, writes DIR/results.json and DIR/latency.png (with ``-quick`` in both names under
--quick); ``python -m bench.report DIR/results.json`` prints the markdown. --quick takes under
two minutes on 2 cores; the full run about five. Everything started is ended by pid,
``kill-server`` or the box's halt, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_VENV_PY = _ROOT / ".venv" / "bin" / "python"

try:
    import psutil  # noqa: F401

    import asched  # noqa: F401
except ImportError:
    # `python -m bench` from a Python without the project (a pyenv shim): use the venv's.
    if _VENV_PY.exists() and Path(sys.prefix).resolve() != _VENV_PY.parent.parent.resolve():
        os.execv(str(_VENV_PY), [str(_VENV_PY), "-m", "bench", *sys.argv[1:]])
    raise

import argparse  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from importlib import metadata  # noqa: E402
from typing import Any  # noqa: E402

from bench import plot, report  # noqa: E402
from bench.common import Cleanup, git_state, print_table, write_json  # noqa: E402
from bench.peers import apscheduler  # noqa: E402
from bench.workloads import cli, fanout, floor, idle, latency, restart, scale, stop  # noqa: E402
from bench.workloads.context import Ctx  # noqa: E402

WORKLOADS: dict[str, Callable[[Ctx], dict[str, Any]]] = {
    "floor": floor.run,
    "latency": latency.run,
    "fanout": fanout.run,
    "restart": restart.run,
    "idle": idle.run,
    "scale": scale.run,
    "stop": stop.run,
    "cli": cli.run,
}


def _first_line(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "missing"
    return (r.stdout or r.stderr).split("\n")[0].strip()


def _machine() -> dict[str, Any]:
    import psutil

    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    os_name = "Linux"
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip('"')
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": psutil.virtual_memory().total / 2**30,
        "os": os_name,
        "kernel": platform.release(),
    }


def _versions() -> dict[str, str]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "missing"

    return {
        "asched": version("asched"),
        **apscheduler.versions(),
        "matplotlib": version("matplotlib"),
        "tmux": _first_line(["tmux", "-V"]),
        "systemd": _first_line(["systemctl", "--version"]),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the chosen workloads; print the table; write the JSON and the plot."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer runs: under two minutes")
    ap.add_argument("--only", nargs="+", choices=list(WORKLOADS), metavar="W",
                    help=f"a subset of: {' '.join(WORKLOADS)} (floor always runs)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=_ROOT / "docs" / "bench", help="output directory")
    args = ap.parse_args(argv)
    chosen = [
        "floor",
        *[w for w in WORKLOADS if w != "floor" and (not args.only or w in args.only)],
    ]
    suffix = "-quick" if args.quick else ""
    t0 = time.monotonic()
    meta: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick,
        "workloads": chosen,
        "python": platform.python_version(),
        "machine": _machine(),
        "versions": _versions(),
        "git": git_state(),
        "loadavg_start": os.getloadavg(),
    }
    print(
        f"asched bench ({'quick' if args.quick else 'full'}): {meta['when']}, "
        f"{meta['machine']['cpus']} CPUs, load {meta['loadavg_start'][0]:.2f}, "
        f"git {meta['git']['head']}; workloads: {' '.join(chosen)}",
        flush=True,
    )
    results: dict[str, Any] = {
        "meta": meta,
        "workloads": {},
        "rows": [],
        "skipped": {},
        "errors": {},
    }
    with Cleanup() as cu:
        ctx = Ctx(cu, args.quick)
        for name in chosen:
            if name == "idle":  # a quiet window for the slow timers: see latency.arm_default
                latency.arm_default(ctx, results)
            w0 = time.monotonic()
            print(f"  {name} ...", end="", flush=True)
            try:
                res = WORKLOADS[name](ctx)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one broken workload must not cost the others
                traceback.print_exc()
                res = {"error": f"{type(exc).__name__}: {exc}"}
                results["errors"][name] = res["error"]
            results["rows"] += res.pop("rows", [])
            res["seconds"] = time.monotonic() - w0
            results["workloads"][name] = res
            print(f" {res['seconds']:.1f} s", flush=True)
        if "latency" in results["workloads"]:
            latency.finish(ctx, results)
        meta["versions"]["systemd_box"] = ctx.box_version()
        results["skipped"] = ctx.skipped
    meta["seconds"] = time.monotonic() - t0
    meta["loadavg_end"] = os.getloadavg()
    print_table(
        "asched vs its peers (ratios: asched ÷ peer, from this run)",
        report.HEADERS,
        report.table_rows(results["rows"]),
    )
    if "floor" in results["workloads"]:
        print_table("floors, ms", ["floor", "n", "p50", "p99", "max"],
                    report.floor_rows(results["workloads"]["floor"]))  # fmt: skip
    for peer, why in results["skipped"].items():
        print(f"not measured: {peer}: {why}")
    for name, why in results["errors"].items():
        print(f"FAILED: {name}: {why}")
    args.out.mkdir(parents=True, exist_ok=True)
    out_json = args.out / f"results{suffix}.json"
    write_json(out_json, results)
    png = args.out / f"latency{suffix}.png"
    drawn = plot.draw(results, png)
    print(f"\ntotal {meta['seconds']:.0f} s; wrote {out_json}" + (f" and {png}" if drawn else ""))
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
