"""Cost of one delivery's tmux calls (paste + Enter) under uvloop and the stdlib loop.

    .venv/bin/python bench/tmux_calls.py [-n 200]

Starts a private tmux server (``-S`` in a temp dir) with a ``cat > /dev/null`` pane, measures, and
kills that server. Variants:

- one-call:  ``load-buffer - ; paste-buffer`` chained in one client, then ``send-keys Enter``
  (2 forks, what :meth:`asched.tmux.TmuxClient.paste` does)
- two-call:  ``load-buffer -``, then ``paste-buffer``, then ``send-keys Enter`` (3 forks)
- resolve:   one ``list-panes -s`` lookup
- bare exec: ``tmux -V`` through create_subprocess_exec, with and without start_new_session
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

# `python bench/tmux_calls.py` puts bench/ on the path; tests.support lives at the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asched.tmux.client import TmuxClient
from asched.tmux.targets import parse_target
from tests.support.stats import percentile
from tests.support.tmux import Server

BODY = "Check-in: status? What is blocked; what is next? $(not run) `nor this` 100% #{done}"


async def bench(n: int, sock: str, pane: str) -> dict[str, list[float]]:
    client = TmuxClient(sock)
    results: dict[str, list[float]] = {}
    seq = 0

    async def one_call() -> None:
        nonlocal seq
        seq += 1
        await client.paste(pane, BODY, f"asched-bench-{seq}")
        await client.send_enter(pane)

    async def two_call() -> None:
        nonlocal seq
        seq += 1
        name = f"asched-bench-{seq}"
        call = await client.run("load-buffer", "-b", name, "-", input=BODY.encode())
        assert call.rc == 0, call.err
        call = await client.run("paste-buffer", "-p", "-d", "-b", name, "-t", pane)
        assert call.rc == 0, call.err
        await client.send_enter(pane)

    async def resolve() -> None:
        await client.resolve(parse_target("bench:0"))

    async def bare(new_session: bool) -> None:
        proc = await asyncio.create_subprocess_exec(
            "tmux",
            "-V",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=new_session,
        )
        await proc.communicate()

    variants: dict[str, Callable[[], Awaitable[None]]] = {
        "paste+enter one-call (2 forks)": one_call,
        "paste+enter two-call (3 forks)": two_call,
        "resolve (list-panes -s)": resolve,
        "bare exec, start_new_session": lambda: bare(True),
        "bare exec, same session": lambda: bare(False),
    }
    for name, fn in variants.items():
        for _ in range(10):  # warm-up
            await fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            await fn()
            times.append((time.perf_counter() - t0) * 1000)
        results[name] = times
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=200, help="iterations per variant")
    args = ap.parse_args()
    server = Server(Path(tempfile.mkdtemp(prefix="asched-b-")))
    try:
        pane = server.new_session("bench", "exec cat > /dev/null")
        print(f"{subprocess.getoutput('tmux -V')}, n={args.n}")
        print(f"{'variant':34} {'loop':8} {'median ms':>10} {'p90 ms':>8}")
        for loop_name, factory in (
            ("asyncio", asyncio.new_event_loop),
            ("uvloop", uvloop.new_event_loop),
        ):
            with asyncio.Runner(loop_factory=factory) as runner:
                res = runner.run(bench(args.n, server.sock, pane))
            for name, times in res.items():
                p90 = percentile(times, 90)
                print(f"{name:34} {loop_name:8} {statistics.median(times):10.2f} {p90:8.2f}")
    finally:
        server.kill()
        shutil.rmtree(server.root, ignore_errors=True)


if __name__ == "__main__":
    main()
