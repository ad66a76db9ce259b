"""What tmux says about panes: the one list-panes format, its parsing, and the pane a target names.

Facts this module relies on, all measured on tmux 3.3a:

- ``display-message -t`` "resolves" a missing session, window or pane to the *current* pane and
  exits 0, and ``=session:=3`` still picks window index 3 over a window named ``3``. So targets are
  resolved with ``list-panes -s -t =SESSION:`` (which fails cleanly on a missing session) and the
  window and pane are matched here, exactly: an all-digit window is an index, anything else a name
  that must equal ``#{window_name}``.
- Session and window names reach formats escaped (a tab is ``\\t``), but
  ``#{pane_current_command}`` is the raw argv[0] of the foreground process and may hold tabs and
  newlines. Records are therefore split on a random per-call marker, with the command last.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

from asched.tmux.errors import TargetAmbiguous, TargetMissing, TmuxError
from asched.tmux.targets import PANE_ID, Target

# One format for every pane listing. Names are escaped by tmux; the current command is raw and
# therefore last, so a tab inside it cannot shift the other fields.
_FIELDS = (
    "pane_id",
    "session_name",
    "window_index",
    "window_name",
    "pane_index",
    "pane_active",
    "pane_dead",
    "pane_in_mode",
    "pane_mode",
    "pane_pid",
    "pane_tty",
    "window_activity",
    "pane_current_command",
)


class PaneInfo(NamedTuple):
    """What tmux says about one pane at the time of the call."""

    pane_id: str
    session: str
    window_index: int
    window_name: str
    pane_index: int
    active: bool  # the active pane of its window
    dead: bool  # the program exited and the pane remains (remain-on-exit)
    in_mode: bool  # copy, view, clock or tree mode: typed keys would go to the mode
    mode: str  # e.g. "copy-mode"; "" when in no mode
    pane_pid: int
    tty: str
    activity: int  # #{window_activity}: last output in the window, epoch seconds
    current_command: str  # argv[0] of the tty's foreground process group leader, raw


class Screen(NamedTuple):
    """What a pane shows: its visible rows (top first, trailing spaces removed) and the cursor."""

    rows: tuple[str, ...]
    cursor_y: int
    pane_pid: int | None = None  # the pane's program when it was looked at

    @classmethod
    def parse(cls, text: str, cursor_y: int, pane_pid: int | None = None) -> Screen:
        """From ``capture-pane -p`` output (one row a line), ``#{cursor_y}``, ``#{pane_pid}``."""
        return cls(tuple(r.rstrip(" ") for r in text.split("\n")), cursor_y, pane_pid)

    @property
    def cursor_line(self) -> str:
        """The row the cursor is on ("" when below the captured rows)."""
        return self.rows[self.cursor_y] if self.cursor_y < len(self.rows) else ""


def screen_command(pane_id: str, key: str) -> list[str]:
    """Commands that print ``KEY CURSOR_Y PANE_PID``, then the pane's visible rows, unjoined
    (``capture-pane -p`` without ``-J``), so rows map 1:1 onto ``#{cursor_y}``."""
    return [
        "display-message", "-p", "-t", pane_id, f"{key} #{{cursor_y}} #{{pane_pid}}",
        ";",
        "capture-pane", "-p", "-t", pane_id,
    ]  # fmt: skip


def read_screen(out: str) -> tuple[str, Screen] | None:
    """The key and the screen that :func:`screen_command` printed; None without a cursor row."""
    head, _, screen = out.partition("\n")
    key, y, pid = [*head.split(" "), "", ""][:3]
    if not y.isdigit():
        return None
    return key, Screen.parse(screen, int(y), int(pid) if pid.isdigit() else None)


def parse_panes(out: str, marker: str) -> list[PaneInfo]:
    """The panes of a listing made with :func:`pane_format`'s format and ``marker``."""
    panes: list[PaneInfo] = []
    for record in out.split(marker)[1:]:
        record = record.removesuffix("\n")
        f = record.split("\t", len(_FIELDS) - 1)
        if len(f) != len(_FIELDS):
            raise TmuxError(f"unexpected tmux output: {record[:80]!r}")
        try:
            panes.append(
                PaneInfo(
                    pane_id=f[0],
                    session=f[1],
                    window_index=int(f[2]),
                    window_name=f[3],
                    pane_index=int(f[4]),
                    active=f[5] == "1",
                    dead=f[6] == "1",
                    in_mode=f[7] not in ("", "0"),  # a count: modes can be stacked
                    mode=f[8],
                    pane_pid=int(f[9] or 0),
                    tty=f[10],
                    activity=int(f[11] or 0),
                    current_command=f[12],
                )
            )
        except ValueError:
            raise TmuxError(f"unexpected tmux output: {record[:80]!r}") from None
    return panes


def pane_format() -> tuple[str, str]:
    """A list-panes format and the random marker that starts each of its records.

    The marker is unguessable, so no process name can forge a record boundary.
    """
    # os.urandom is what secrets.token_hex reads; secrets itself would import hmac, hashlib and
    # random into every `asched add` that looks its target up (about 3 ms).
    marker = f"\x1e{os.urandom(8).hex()}\x1e"
    return marker + "\t".join(f"#{{{name}}}" for name in _FIELDS), marker


def select_pane(target: Target, panes: Sequence[PaneInfo]) -> PaneInfo:
    """Pick the pane ``target`` names out of a session's (or window's) panes, exactly."""
    if target.pane_id is not None:
        for p in panes:
            if p.pane_id == target.pane_id:
                return p
        raise TargetMissing(f"{target}: no such pane")
    # tmux was asked for exactly this session; check anyway rather than trust the lookup.
    panes = [p for p in panes if p.session == target.session]
    if not panes:
        raise TargetMissing(f"{target}: no session named {target.session!r}")
    if isinstance(target.window, int):
        in_window = [p for p in panes if p.window_index == target.window]
        what = f"no window with index {target.window}"
    else:
        in_window = [p for p in panes if p.window_name == target.window]
        what = f"no window named {target.window!r}"
    if not in_window:
        raise TargetMissing(f"{target}: {what} in session {target.session!r}")
    indexes = sorted({p.window_index for p in in_window})
    if len(indexes) > 1:
        raise TargetAmbiguous(
            f"{target}: {len(indexes)} windows named {target.window!r} "
            f"(indexes {', '.join(map(str, indexes))}); use an index"
        )
    if target.pane is None:
        chosen = [p for p in in_window if p.active]
    else:
        chosen = [p for p in in_window if p.pane_index == target.pane]
    if len(chosen) != 1 or not PANE_ID.fullmatch(chosen[0].pane_id):
        which = "no active pane" if target.pane is None else f"no pane {target.pane}"
        raise TargetMissing(f"{target}: {which} in window {indexes[0]}")
    return chosen[0]
