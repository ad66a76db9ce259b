"""Running tmux client processes off the event loop, and packing commands into their argv.

Every tmux call is one client process with an argv list (never a shell) and a timeout, in its
own session so that a timeout can kill it (and anything it started) by process group, and it is
always reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from asched.tmux.errors import TmuxMissing, TmuxTimeout

# tmux sends a client's command line to the server in one message of at most 16 KiB.
_ARGV_BUDGET = 12_000
# A worker looks for its cancellation this often while a client runs; a killed client is given
# this long to be collected (see _reap).
SLICE_S = 0.1
REAP_S = 0.5


@dataclass(frozen=True, slots=True)
class CompletedCall:
    """The outcome of one tmux client invocation."""

    args: tuple[str, ...]
    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        """stdout as text (UTF-8, undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        """stderr as one line of text."""
        return " ".join(self.stderr.decode("utf-8", "replace").split())


# tmux clients are started from a small pool of threads with the stdlib's subprocess (vfork /
# posix_spawn) rather than with the loop's create_subprocess_exec: under uvloop, which forks,
# a tmux call cost 2.9 ms at the median against 1.3 ms this way (and 1.5 ms on the stdlib loop),
# and the due-to-pasted path of a delivery is one such call. The pool bounds concurrent clients.
async def run_in_thread(
    pool: ThreadPoolExecutor,
    argv: tuple[str, ...],
    input: bytes | None,
    limit: float,
    env: dict[str, str],
    tmux_bin: str,
    what: str = "",
) -> tuple[int, bytes, bytes]:
    """Run one client in the pool; on timeout or cancellation its process group is killed.

    Every wait is bounded: the worker returns within ``limit`` plus :data:`REAP_S`, and within
    :data:`SLICE_S` plus :data:`REAP_S` of a cancellation, whatever the server does.
    """
    started: list[subprocess.Popen[bytes]] = []
    cancelled = threading.Event()

    def work() -> tuple[int, bytes, bytes]:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            # Its own session: a Ctrl-C at the daemon's terminal does not cut a paste in half,
            # and a timeout can kill the whole group.
            start_new_session=True,
        )
        started.append(proc)
        deadline = time.monotonic() + limit
        feed = input
        while True:
            # In slices, so that a cancellation is noticed soon; a call that answers (nearly
            # all of them, in milliseconds) returns at once from the first slice. The input is
            # given once: a repeated communicate() goes on writing what is left of it.
            left = deadline - time.monotonic()
            try:
                out, err = proc.communicate(feed, timeout=max(min(left, SLICE_S), 0.0))
            except subprocess.TimeoutExpired:
                feed = None
                if left > SLICE_S and not cancelled.is_set():
                    continue
                _kill_group(proc)
                _reap(proc)
                raise
            return proc.returncode, out, err

    done = pool.submit(work)
    try:
        return await asyncio.wrap_future(done)
    except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
        raise TmuxMissing(f"cannot run {tmux_bin!r}: {e.strerror or e}") from None
    except subprocess.TimeoutExpired:
        raise TmuxTimeout(
            f"tmux {what or ' '.join(argv[1:4])} took more than {limit:g} s"
        ) from None
    except asyncio.CancelledError:
        # Do not leave a client (or a zombie) behind: kill the group, let the worker reap it.
        cancelled.set()
        if started:
            _kill_group(started[0])
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)), SLICE_S + REAP_S)
        raise


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the client's process group (it leads its own session)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.kill()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Collect a killed client without waiting on its pipes' end for long.

    A tmux client hands its stdin and stdout to the server, so the pipes reach their end only when
    the server closes its copies: a frozen (SIGSTOPped) server never does. Waiting for that end
    kept a SIGTERMed daemon alive for as long as the freeze (1,236 s once). Our ends are closed
    instead, and the killed process itself is reaped.
    """
    try:
        proc.communicate(timeout=REAP_S / 2)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=REAP_S / 2)


def pack_groups(groups: Sequence[list[str]]) -> list[list[int]]:
    """The indices of ``groups``, packed into clients whose command line fits the 16 KiB limit."""
    packs: list[list[int]] = [[]]
    size = 0
    for n, group in enumerate(groups):
        cost = sum(len(a) + 1 for a in group) + 2
        if packs[-1] and size + cost > _ARGV_BUDGET:
            packs.append([])
            size = 0
        packs[-1].append(n)
        size += cost
    return [p for p in packs if p]


def join_groups(groups: Sequence[list[str]], pack: list[int]) -> list[str]:
    """One client's argv: the groups of ``pack`` joined by ``;``."""
    argv: list[str] = []
    for n in pack:
        argv += ([";"] if argv else []) + groups[n]
    return argv
