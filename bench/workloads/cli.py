"""The command line agents call: spawn -> exit of ``asched`` commands beside ``python -c pass``.

Issue 18's targets, as ratios to a bare ``python -c pass`` of the same interpreter, measured in
the same run and the same rounds: ``asched --version`` <= 1.6x; ``asched next``, ``add`` and
``ls --json`` <= 3x. The commands run as an agent runs them: a daemon serves the state directory
(so a write wakes it), ``next`` from inside a pane (``$TMUX_PANE``), ``add`` aimed at a window of
the receivers' tmux server (so its target is looked up there), ``ls --json`` over 20 check-ins.
``add`` and ``next`` replace one check-in each (``--key``), so the store does not grow.

Every process gets a private bytecode cache (PYTHONPYCACHEPREFIX, filled by the warm-up rounds):
an installed asched has its bytecode compiled at install time, and a checkout run with
PYTHONDONTWRITEBYTECODE=1 would compile every module at every start. The commands take turns,
round after round, so that a change in the machine's load reaches all of them alike. Where the
time goes is kept out of here: tests/cli/test_imports.py holds the import budget.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import ASCHED, PYTHON, bench_env, run_timed, spawn_daemon
from bench.workloads.context import Ctx, Row, ms
from tests.support.stats import summary

FLOOR = "python -c pass"
# label -> the ratio to the floor that issue 18 asks for
TARGETS = {"--version": 1.6, "next": 3.0, "add": 3.0, "ls --json": 3.0}
SEEDED = 20


def run(ctx: Ctx) -> dict[str, Any]:
    """Medians of spawn -> exit (wall and CPU), each with its ratio to ``python -c pass``."""
    recv = ctx.recv()
    tmp = ctx.cu.tempdir("asched-cli-")
    state = tmp / "state"
    state.mkdir(mode=0o700)
    daemon = spawn_daemon(ctx.cu, tmp, state, tmux_socket=recv.sock, name="cli")
    daemon.wait_ready()
    env = bench_env(tmp)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    env["ASCHED_STATE_DIR"] = str(state)
    # `next` from inside the agent's pane: tmux sets TMUX_PANE there (bench_env drops TMUX).
    pane_env = {**env, "TMUX_PANE": recv.pane_ids[0]}
    for i in range(SEEDED):
        run_timed([ASCHED, "add", recv.targets[i], f"seed {i}", "--in", f"{i + 1}h"], env, tmp)
    add = [ASCHED, "add", recv.targets[1], "check the build", "--in", "1h", "--key", "bench-cli"]
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        FLOOR: ([PYTHON, "-c", "pass"], env),
        "--version": ([ASCHED, "--version"], env),
        "next": ([ASCHED, "next", "30m", "status report please"], pane_env),
        "add": (add, env),
        "ls --json": ([ASCHED, "ls", "--json"], env),
    }
    n = ctx.n(9, 21)
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(2 + n):  # two warm-up rounds: the bytecode cache, the page cache
        for name, (argv, cmd_env) in commands.items():
            timed = run_timed(argv, cmd_env, tmp)
            if i >= 2:
                wall[name].append(timed.wall)
                cpu[name].append(timed.cpu)
    daemon.stop()
    floor_wall = statistics.median(wall[FLOOR])
    floor_cpu = statistics.median(cpu[FLOOR])
    out: dict[str, Any] = {"n": n, "commands": {}}
    rows = []
    for name in commands:
        wall_p50, cpu_p50 = statistics.median(wall[name]), statistics.median(cpu[name])
        out["commands"][name] = {
            "argv": commands[name][0][1:],
            "wall_ms": summary(ms(wall[name])),
            "cpu_ms": summary(ms(cpu[name])),
            "ratio_wall": wall_p50 / floor_wall,
            "ratio_cpu": cpu_p50 / floor_cpu,
            "target_ratio": TARGETS.get(name),
        }
        if name == FLOOR:
            continue
        rows.append(
            Row(
                "cli",
                f"spawn -> exit: asched {name}",
                "ms",
                wall_p50 * 1000,
                floor=floor_wall * 1000,
                floor_what=FLOOR,
                note=f"{wall_p50 / floor_wall:.2f}x the floor (target <= {TARGETS[name]:g}x),"
                f" CPU {cpu_p50 / floor_cpu:.2f}x; median of {n} rounds",
            ).as_dict()
        )
    out["rows"] = rows
    return out
