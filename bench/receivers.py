"""Receiver panes: the program in the pane stamps when each message's text and Enter arrive.

Every peer delivers into panes that run :data:`RECEIVER`, a raw-mode reader (no echo, no line
discipline: the bytes reach it as tmux writes them) that appends ``LABEL TOKEN EPOCH`` for each
``m-...`` token and ``LABEL ENTER EPOCH`` for each carriage return to a file. "Pasted" therefore
means "readable by the program in the pane", stamped with the wall clock that also defines the due
times, for every peer alike. The same program runs on the host and inside the systemd box.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import PYTHON, Cleanup
from tests.support.tmux import Server

RECEIVER = (
    "import os, re, sys, time, tty\n"
    "tty.setraw(0)\n"
    "label = sys.argv[2]\n"
    "out = open(sys.argv[1], 'a', buffering=1)\n"
    "out.write(f'{label} READY {time.time():.6f}\\n')\n"
    "while True:\n"
    "    b = os.read(0, 65536)\n"
    "    if not b:\n"
    "        break\n"
    "    t = time.time()\n"
    "    for tok in re.findall(r'm-[A-Za-z0-9-]+\\.|\\r', b.decode(errors='replace')):\n"
    "        tok = 'ENTER' if tok == '\\r' else tok[:-1]\n"
    "        out.write(f'{label} {tok} {t:.6f}\\n')\n"
)


def body(token: str) -> str:
    """The text a peer types for ``token`` (``m-`` and letters, digits, dashes).

    The terminating dot lets the receiver tell tokens apart when two pastes into one pane
    arrive back to back with no Enter between them (APScheduler runs them concurrently).
    """
    return token + "."


def receiver_argv(python: str, out: str, label: str) -> list[str]:
    """The pane command (one argv) of a receiver writing to ``out``."""
    return [python, "-c", RECEIVER, out, label]


@dataclass
class Arrivals:
    """What the receivers saw: first arrival of each token, and the Enters of each pane."""

    pasted: dict[str, float] = field(default_factory=dict)
    enters: dict[str, list[float]] = field(default_factory=dict)
    ready: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> Arrivals:
        """Parse receiver lines (a torn last line is skipped)."""
        got = cls()
        for line in lines:
            parts = line.split(" ")
            if len(parts) != 3:
                continue
            label, tok, t = parts
            try:
                at = float(t)
            except ValueError:
                continue
            if tok == "READY":
                got.ready.add(label)
            elif tok == "ENTER":
                got.enters.setdefault(label, []).append(at)
            else:
                got.pasted.setdefault(tok, at)
        return got


class HostReceivers:
    """A private tmux server on the host with ``n`` receiver panes, sessions ``b0`` .. ``bN-1``."""

    def __init__(self, cu: Cleanup, n: int) -> None:
        self.root = cu.tempdir("asched-rcv-")
        self.server = Server(self.root)
        cu.push(self.server.kill)
        self.sock = self.server.sock
        self.targets = [f"b{i}:0" for i in range(n)]
        self.pane_ids = [
            self.server.new_session(
                f"b{i}", receiver_argv(PYTHON, str(self._file(i)), f"b{i}"), size=(80, 10)
            )
            for i in range(n)
        ]
        deadline = time.monotonic() + 30
        while len(self.arrivals().ready) < n:  # every reader is in its read()
            if time.monotonic() > deadline:
                raise RuntimeError("receiver panes did not start")
            time.sleep(0.05)

    def _file(self, i: int) -> Path:
        return self.root / f"r{i}.txt"

    def arrivals(self, panes: Iterable[int] | None = None) -> Arrivals:
        """Everything the receivers (or those of ``panes``) recorded so far."""
        paths = self.root.glob("r*.txt") if panes is None else (self._file(i) for i in panes)
        lines: list[str] = []
        for path in paths:
            lines += path.read_text(errors="replace").splitlines()
        return Arrivals.parse(lines)

    def wait_for(
        self, tokens: set[str], timeout: float, panes: Iterable[int] | None = None
    ) -> Arrivals:
        """Poll until every token arrived or ``timeout`` passed; returns what arrived.

        The receivers stamp each arrival themselves, so polling slowly costs no precision, only
        CPU that the peer being measured would miss on a small machine.
        """
        which = None if panes is None else list(panes)
        deadline = time.monotonic() + timeout
        while True:
            got = self.arrivals(which)
            if tokens <= got.pasted.keys() or time.monotonic() > deadline:
                return got
            time.sleep(0.1)
