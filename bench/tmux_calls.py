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
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable

import uvloop

from asched.tmux.client import TmuxClient
from asched.tmux.targets import parse_target

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
    tmp = tempfile.mkdtemp(prefix="asched-b-")
    sock = os.path.join(tmp, "sock")
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}

    def tmux(*a: str) -> str:
        return subprocess.run(
            ["tmux", "-S", sock, "-f", "/dev/null", *a],
            check=True,
            capture_output=True,
            text=True,
            timeout=5,
            env=env,
        ).stdout.strip()

    pane = tmux(
        "new-session", "-d", "-s", "bench", "-x", "200", "-y", "50", "-P", "-F", "#{pane_id}",
        "exec cat > /dev/null",
    )  # fmt: skip
    server_pid = int(tmux("display-message", "-p", "#{pid}"))
    try:
        print(f"{subprocess.getoutput('tmux -V')}, n={args.n}")
        print(f"{'variant':34} {'loop':8} {'median ms':>10} {'p90 ms':>8}")
        for loop_name, factory in (
            ("asyncio", asyncio.new_event_loop),
            ("uvloop", uvloop.new_event_loop),
        ):
            with asyncio.Runner(loop_factory=factory) as runner:
                res = runner.run(bench(args.n, sock, pane))
            for name, times in res.items():
                p90 = statistics.quantiles(times, n=10)[-1]
                print(f"{name:34} {loop_name:8} {statistics.median(times):10.2f} {p90:8.2f}")
    finally:
        with contextlib.suppress(Exception):
            tmux("kill-server")
        with contextlib.suppress(ProcessLookupError):
            os.kill(server_pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
