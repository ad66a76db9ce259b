"""The job every APScheduler job runs: one delivery through asched's own tmux calls.

Kept in a module of its own so that the SQLAlchemy job store can pickle it by reference
(``bench.peers.apsched_job:deliver``) from the store builder and resolve it in the peer.
"""

from __future__ import annotations

import asyncio

from bench.peers.tmux_argv import SETTLE_S, enter_args, paste_args, prefix

_SOCKET: list[str] = []


def configure(sock: str) -> None:
    """Set the tmux socket the jobs of this process type into."""
    _SOCKET[:] = [sock]


async def _tmux(args: list[str], body: bytes | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(
        *prefix(_SOCKET[0]),
        *args,
        stdin=asyncio.subprocess.PIPE if body is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await proc.communicate(body)
    if proc.returncode != 0:
        raise RuntimeError(f"tmux {args[0]}: {err.decode(errors='replace').strip()}")


async def deliver(pane_id: str, text: str, buffer: str) -> None:
    """Paste ``text`` into ``pane_id``, wait the settle delay, press Enter (as asched does)."""
    await _tmux(paste_args(pane_id, buffer), text.encode())
    await asyncio.sleep(SETTLE_S)
    await _tmux(enter_args(pane_id))
