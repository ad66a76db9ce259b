"""At ``add``/``next`` time: what does a target name on the tmux server the daemon delivers to?

Best effort, bounded, and only ever informative: sessions come and go, so a target that names no
pane now is stored anyway, with a one-line warning (and the window it probably meant: the old
Tmux-Orchestrator called its windows ``Developer``, ``Project-Manager``, ... and its scripts were
given ``session:developer``). ``asched next`` keys its one pending check-in on the pane id this
finds, so ``%5``, ``orch:0`` and ``orch:0.0`` are one pane, not three.

The server asked is the running daemon's (announced in its lock file), else ``ASCHED_TMUX_SOCKET``,
else the server of the tmux the command runs in (``$TMUX``), else tmux's default.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from asched.core.errors import UsageError
from asched.daemon.lock import LOCK_NAME, is_held, read_holder
from asched.tmux import client_env, client_prefix
from asched.tmux.errors import (
    ServerMissing,
    TargetAmbiguous,
    TargetMissing,
    TmuxError,
    TmuxMissing,
    TmuxTimeout,
    server_missing,
)
from asched.tmux.panes import PaneInfo, pane_format, parse_panes, select_pane
from asched.tmux.targets import parse_target

TIMEOUT_S = 1.0  # a frozen or slow server must not hold up the command for longer
TMUX = "tmux"


class Found(NamedTuple):
    """What the server said about a target."""

    reachable: bool  # a server answered
    pane_id: str | None = None  # the pane the target names now
    near: tuple[str, ...] = ()  # targets it probably meant (a window name in another case)
    ambiguous: bool = False  # it names several windows
    # What `asched next` keys on: the pane when the target names one for sure (a pane id, a pane
    # index, or the only pane of its window), else the window ("work:0"): the active pane of a
    # window with several changes when someone clicks, and one check-in must stay one.
    key: str | None = None


def tmux_socket(state: Path, env: Mapping[str, str]) -> str | None:
    """The socket of the server the daemon of ``state`` delivers to (see the module's doc)."""
    try:
        holder = read_holder(state / LOCK_NAME) if is_held(state / LOCK_NAME) else None
    except OSError:
        holder = None
    if holder is not None and holder.tmux is not None:
        return holder.tmux
    if env.get("ASCHED_TMUX_SOCKET"):
        return env["ASCHED_TMUX_SOCKET"]
    inside = env.get("TMUX", "").split(",")[0]
    return inside or None


class Listing:
    """One ``list-panes -a`` of the server on ``socket`` (None: tmux's default), under way from
    its creation until :meth:`panes` reads its answer; a context manager that ends the client.

    ``add`` starts it before storing and reads it afterwards, so that the tmux client runs while
    the check-in is stored. It is one blocking client started with :mod:`subprocess` rather than
    :class:`asched.tmux.client.TmuxClient`, whose event loop and thread pool (asyncio: about
    25 ms of imports) would cost more than the question. The client's rules hold: ``-N`` (never
    start a server), no ``$TMUX`` inherited, a bounded wait (:data:`TIMEOUT_S`).
    """

    def __init__(self, socket: str | None) -> None:
        self.socket = socket
        fmt, self._marker = pane_format()
        argv = client_prefix(TMUX, socket)
        env = client_env()  # the server asked is `socket`'s, not the one we may run in
        self._deadline = time.monotonic() + TIMEOUT_S
        self._proc: subprocess.Popen[bytes] | None = None
        self._missing: str | None = None
        try:
            self._proc = subprocess.Popen(
                [*argv, "list-panes", "-a", "-F", fmt],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            self._missing = f"cannot run {TMUX!r}: {exc.strerror or exc}"

    def panes(self) -> list[PaneInfo]:
        """Every pane of the server. Raises :class:`TmuxMissing`, :class:`ServerMissing`,
        :class:`TmuxTimeout` or :class:`TmuxError`."""
        if self._proc is None:
            raise TmuxMissing(self._missing or "tmux did not start")
        try:
            out, err_bytes = self._proc.communicate(
                timeout=max(self._deadline - time.monotonic(), 0.0)
            )
        except subprocess.TimeoutExpired:
            self.close()
            raise TmuxTimeout(f"tmux list-panes took more than {TIMEOUT_S:g} s") from None
        if self._proc.returncode != 0:
            err = " ".join(err_bytes.decode("utf-8", "replace").split())
            if server_missing(err):
                raise ServerMissing(err)
            raise TmuxError(f"list-panes: {err or f'exit {self._proc.returncode}'}")
        return parse_panes(out.decode("utf-8", "replace"), self._marker)

    def close(self) -> None:
        """End the client if it still runs, and reap it."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            self._proc.communicate()

    def __enter__(self) -> Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def look_up(target: str, socket: str | None, listing: Listing | None = None) -> Found:
    """Ask the server on ``socket`` (None: the default) which pane ``target`` names; from
    ``listing`` when one was started already."""
    wanted = parse_target(target)
    try:
        if listing is not None:
            panes = listing.panes()
        else:
            with Listing(socket) as own:
                panes = own.panes()
    except TmuxError:  # no server, no tmux, a timeout
        return Found(False)
    try:
        pane = select_pane(wanted, panes)
    except TargetAmbiguous:
        return Found(True, ambiguous=True)
    except TargetMissing:
        return Found(True, near=_near(panes, target))
    key = pane.pane_id
    if wanted.pane_id is None and wanted.pane is None:
        mates = [
            p for p in panes if (p.session, p.window_index) == (pane.session, pane.window_index)
        ]
        if len(mates) > 1:
            key = str(parse_target(f"{pane.session}:{pane.window_index}"))
    return Found(True, pane.pane_id, key=key)


def panes_named(targets: Iterable[str], socket: str | None) -> dict[str, str] | None:
    """The pane each of ``targets`` names now, from one listing of the server on ``socket``;
    a target that names no pane (or several windows) is left out. None: no server answered."""
    try:
        with Listing(socket) as listing:
            panes = listing.panes()
    except TmuxError:  # no server, no tmux, a timeout
        return None
    named: dict[str, str] = {}
    for target in targets:
        try:
            named[target] = select_pane(parse_target(target), panes).pane_id
        except (TargetMissing, UsageError):  # TargetAmbiguous is a TargetMissing
            continue
    return named


def _near(panes: list[PaneInfo], target: str) -> tuple[str, ...]:
    """Windows whose name equals the target's but for case (``orch:developer`` for a window
    named ``Developer``), as targets."""
    wanted = parse_target(target)
    if not isinstance(wanted.window, str) or wanted.session is None:
        return ()
    names = {
        p.window_name
        for p in panes
        if p.session == wanted.session and p.window_name.casefold() == wanted.window.casefold()
    }
    suffix = "" if wanted.pane is None else f".{wanted.pane}"
    found = []
    for name in sorted(names):
        spelled = f"{wanted.session}:{name}{suffix}"
        try:
            if parse_target(spelled).window == name:  # "Dev.2" would read as window Dev, pane 2
                found.append(spelled)
        except UsageError:
            continue
    return tuple(found)


def warning(target: str, found: Found, socket: str | None) -> str | None:
    """The one-line warning for a target that names no pane on a server that answered."""
    if not found.reachable or found.pane_id is not None:
        return None
    server = socket or "the default tmux server"
    if found.ambiguous:
        return (
            f"warning: {target} names more than one window on {server}; stored anyway, and it "
            "fails when due unless one window has that name by then (or use session:INDEX)"
        )
    hint = f"; did you mean {' or '.join(found.near)}?" if found.near else ""
    return (
        f"warning: {target} names no pane on {server} now; stored anyway, and delivered if it "
        f"names one when due{hint}"
    )


def environ() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ
