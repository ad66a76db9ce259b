"""The physical floor: what the tmux calls and a Python start cost, with no scheduler at all."""

from __future__ import annotations

import contextlib
import os
import pty
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import ASCHED, PYTHON, bench_env, run_timed
from bench.peers.tmux_argv import enter_args, paste_args, prefix
from bench.peers.tmux_control import RawControl
from bench.receivers import Arrivals, body, receiver_argv
from bench.workloads.context import PANES, Ctx, ms
from tests.support.stats import summary


def _call(argv: list[str], body: bytes | None = None) -> None:
    subprocess.run(argv, input=body, capture_output=True, check=True, timeout=10)


def run(ctx: Ctx) -> dict[str, Any]:
    """Floors, each a summary in ms; also stored in ``ctx.floors`` for the other workloads."""
    recv = ctx.recv()
    n = ctx.n(10, 30)
    tmux = prefix(recv.sock)
    pane, last = recv.pane_ids[-1], len(recv.pane_ids) - 1
    one, two, bare = [], [], []
    for i in range(n + 1):  # run 0 warms the page cache
        tok = f"m-floor1-{i}"
        t0 = time.time()
        _call([*tmux, *paste_args(pane, f"f1-{i}")], body(tok).encode())
        got = recv.wait_for({tok}, 5)
        if i and tok in got.pasted:
            one.append(got.pasted[tok] - t0)
        tok = f"m-floor2-{i}"
        t0 = time.monotonic()
        _call([*tmux, *paste_args(pane, f"f2-{i}")], body(tok).encode())
        _call([*tmux, *enter_args(pane)])
        if i:
            two.append(time.monotonic() - t0)
        t0 = time.monotonic()
        _call([*tmux, "display-message", "-p", "#{pid}"])
        if i:
            bare.append(time.monotonic() - t0)
        time.sleep(0.02)
    fan = []
    for r in range(ctx.n(3, 5)):
        # 100 pastes chained in one client: the least any scheduler could do for a fan-out.
        argv = list(tmux)
        toks = set()
        for k, pane_k in enumerate(recv.pane_ids):
            tok = f"m-floorf{r}-{k}"
            toks.add(tok)
            argv += [*([";"] if k else []), "set-buffer", "-b", f"ff{k}", body(tok)]
            argv += [";", "paste-buffer", "-p", "-d", "-b", f"ff{k}", "-t", pane_k]
        t0 = time.time()
        _call(argv)
        got = recv.wait_for(toks, 10)
        if toks <= got.pasted.keys():
            fan.append(max(got.pasted[t] for t in toks) - t0)
        time.sleep(0.1)
    ctl_one, ctl_fan, ctl_cold, ctl_bare = _control_floors(ctx, tmux)
    direct = _direct_floor(ctx)
    env = bench_env(recv.root)
    starts: dict[str, list[float]] = {}
    for name, cmd in (
        ("python -c pass", [PYTHON, "-c", "pass"]),
        ("asched --version", [ASCHED, "--version"]),
    ):
        run_timed(cmd, env, recv.root)  # warm-up
        starts[name] = [run_timed(cmd, env, recv.root).wall for _ in range(ctx.n(5, 15))]
    out = {
        "tmux_paste_one_call": summary(ms(one)),
        "tmux_paste_and_enter_two_calls": summary(ms(two)),
        "tmux_bare_client": summary(ms(bare)),
        "tmux_100_pastes_one_call": summary(ms(fan)),
        "tmux_control_paste": summary(ms(ctl_one)),
        "tmux_control_100_pastes": summary(ms(ctl_fan)),
        "tmux_control_paste_cold": summary(ms(ctl_cold)),
        "tmux_control_100_bare": summary(ms(ctl_bare)),
        "receivers_100_direct": summary(ms(direct)),
        "python_start": summary(ms(starts["python -c pass"])),
        "asched_version": summary(ms(starts["asched --version"])),
        "pane": last,
    }
    ctx.floors.update({k: v for k, v in out.items() if isinstance(v, dict)})
    return out


def _guarded(pane_id: str, buffer: str) -> str:
    """The paste as asched makes it, guarded by ``#{pane_dead}`` in the same command (one line
    of a control client; ids and names need no quoting)."""
    return (
        f"if-shell -F -t {pane_id} '#{{pane_dead}}' "
        f"'delete-buffer -b {buffer} ; display-message -p asched:pane-dead' "
        f"'paste-buffer -p -d -b {buffer} -t {pane_id}'"
    )


def _control_floors(
    ctx: Ctx, tmux: list[str]
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Through an attached control client: one staged, guarded paste -> readable, with tmux
    just used (warm) and after 0.2 s idle (cold: a scheduler stages ahead of the due time,
    asched 0.2 s); 100 of them (one per pane) in one line -> the last readable; and 100 bare,
    unguarded pastes in one line. Staging (set-buffer) is untimed, as asched stages ahead."""
    recv = ctx.recv()
    ctl = RawControl(tmux, recv.pane_ids[0])
    one: list[float] = []
    cold: list[float] = []
    fan: list[float] = []
    bare: list[float] = []
    try:
        pane = recv.pane_ids[-1]
        for i in range(ctx.n(10, 30) + 1):
            for idle, out, kind in ((0.0, one, "w"), (0.2, cold, "c")):
                tok = f"m-floorc{kind}-{i}"
                ctl.send(f"set-buffer -b fc{i} '{body(tok)}'")
                time.sleep(idle)
                t0 = time.time()
                ctl.send(_guarded(pane, f"fc{i}"))
                got = recv.wait_for({tok}, 5)
                if i and tok in got.pasted:
                    out.append(got.pasted[tok] - t0)
                time.sleep(0.02)
        for r in range(ctx.n(3, 5)):
            for kind, out in (("g", fan), ("b", bare)):
                toks = {f"m-floorc{kind}{r}-{k}": k for k in range(len(recv.pane_ids))}
                ctl.send(
                    " ; ".join(f"set-buffer -b fc{kind}{k} '{body(t)}'" for t, k in toks.items())
                )
                if kind == "g":
                    line = " ; ".join(_guarded(p, f"fcg{k}") for k, p in enumerate(recv.pane_ids))
                else:
                    line = " ; ".join(
                        f"paste-buffer -p -d -b fcb{k} -t {p}" for k, p in enumerate(recv.pane_ids)
                    )
                t0 = time.time()
                ctl.send(line)
                got = recv.wait_for(set(toks), 10)
                if set(toks) <= got.pasted.keys():
                    out.append(max(got.pasted[t] for t in toks) - t0)
                time.sleep(0.1)
    finally:
        ctl.close()
    return one, fan, cold, bare


def _direct_floor(ctx: Ctx) -> list[float]:
    """100 receivers on terminals of the bench's own (no tmux), each written one token by the
    bench in one loop -> the last readable: what 100 programs waking on two cores cost."""
    root = ctx.cu.tempdir("asched-direct-")
    masters: list[int] = []
    procs: list[subprocess.Popen[bytes]] = []

    def end() -> None:
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.kill()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for fd in masters:
            with contextlib.suppress(OSError):
                os.close(fd)

    ctx.cu.push(end)
    files = [root / f"d{k}.txt" for k in range(PANES)]
    for k, path in enumerate(files):
        master, slave = pty.openpty()
        masters.append(master)
        try:
            procs.append(
                subprocess.Popen(
                    receiver_argv(PYTHON, str(path), f"d{k}"),
                    stdin=slave,
                    stdout=slave,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        finally:
            os.close(slave)
    deadline = time.monotonic() + 30
    while Arrivals.parse(_lines(files)).ready != {f"d{k}" for k in range(PANES)}:
        if time.monotonic() > deadline:
            raise RuntimeError("direct receivers did not start")
        time.sleep(0.05)
    out = []
    for r in range(ctx.n(3, 5)):
        time.sleep(0.2)  # idle, as before a due time
        toks = [f"m-floord{r}-{k}" for k in range(PANES)]
        t0 = time.time()
        for fd, tok in zip(masters, toks, strict=True):
            os.write(fd, body(tok).encode())
        deadline = time.monotonic() + 10
        while True:
            got = Arrivals.parse(_lines(files))
            if set(toks) <= got.pasted.keys() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if set(toks) <= got.pasted.keys():
            out.append(max(got.pasted[t] for t in toks) - t0)
    end()
    return out


def _lines(files: list[Path]) -> list[str]:
    lines: list[str] = []
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            lines += path.read_text(errors="replace").splitlines()
    return lines
