"""The server-side guard of a paste or an Enter, and what its refusing branch printed.

``paste-buffer`` and ``send-keys -l`` into a dead pane (remain-on-exit) crash the whole tmux
3.3a server, taking every session with it. Pastes and Enter therefore go through
``if-shell -F -t %N '#{pane_dead}' ...`` in the same command list: the server runs a command
list without returning to its event loop, so the pane cannot die between check and paste. The
same condition refuses a pane that runs another program, or that its target no longer names.

The branches of ``if-shell`` are command strings parsed by tmux: the builders here are safe only
because their callers have checked pane ids against ``%[0-9]+`` and buffer names against
``[A-Za-z0-9_.-]``. Marks are quoted: an unquoted { opens a command block in tmux's parser.
"""

from __future__ import annotations

import re
import secrets

from asched.tmux.errors import PaneDead, PaneInMode, PaneReplaced
from asched.tmux.targets import Target

# Printed by the dead-pane branch of the guarded commands; tmux itself never prints it.
_DEAD_MARK = "asched:pane-dead"
# The whole mark of a guard's refusing branch: dead, in a mode, and the program's pid (all empty
# for a pane that is gone).
MARK = _DEAD_MARK + "-#{pane_dead}-#{pane_in_mode}-#{pane_pid}"
_MARK_SEEN = re.compile(re.escape(_DEAD_MARK) + r"-(\d?)-(\d?)-(\d*)")

# What the branches of a :class:`Tagged` item print, read back. "gone" alone: the pane itself is
# gone (see raise_for_mark): a replaced pane.
PASTED = {"ok": "pasted", "gone1": "dead", "gone0": "replaced", "gone": "replaced"}
# In a mode ("m"): nothing sent, and no outcome: "missing" makes the caller ask once more alone,
# where the answer is exact (in a mode, or replaced as well).
ENTERED = {
    "ok": "entered",
    "gone1": "dead",
    "gone1m": "dead",
    "gone0": "replaced",
    "gone": "replaced",
}


def not_ours(pane_pid: int | None, target: Target | None = None) -> str:
    """An if-shell -F condition, true when the pane is dead, runs another program, or is no
    longer what ``target`` names (its window renamed or moved, another pane made active)."""
    conds = ["#{pane_dead}"]
    if pane_pid is not None and pane_pid > 0:
        conds.append(f"#{{!=:#{{pane_pid}},{int(pane_pid)}}}")
    if target is not None and target.pane_id is None:
        if isinstance(target.window, int):
            conds.append(f"#{{!=:#{{window_index}},{target.window}}}")
        elif isinstance(target.window, str) and "#" not in target.window:
            # Escaped for the format: "#," is a comma and "#}" a brace there. A name with a "#"
            # is left out: tmux expands formats inside such a name when it prints it.
            name = target.window.replace(",", "#,").replace("}", "#}")
            conds.append(f"#{{!=:#{{window_name}},{name}}}")
        if target.pane is not None:
            conds.append(f"#{{!=:#{{pane_index}},{target.pane}}}")
        else:
            conds.append("#{?pane_active,0,1}")
    expr = conds[0]
    for cond in conds[1:]:
        expr = f"#{{||:{expr},{cond}}}"
    return expr


def raise_for_mark(pane_id: str, pane_pid: int | None, out: str, *, in_mode: bool = False) -> None:
    """Raise for the guard's branch that did nothing (see :func:`not_ours`).

    A pane that is gone makes the guard's condition true (an empty ``#{pane_pid}`` is not
    ``pane_pid``) and its ``display-message -t`` print the mark with empty values, with exit
    status 0 (tmux 3.3a): nothing was pasted or pressed. It counts as a replaced pane: the
    program that was typed into is gone, and the target may name a new pane. ``in_mode``: the
    guard refused a pane in a mode too (the Enter's).
    """
    seen = _MARK_SEEN.search(out)
    if seen is None:
        return
    dead, mode, pid = seen.groups()
    if dead == "1":
        raise PaneDead(f"{pane_id}: the pane is dead (its program exited)")
    if dead == "":
        raise PaneReplaced(f"{pane_id}: the pane is gone")
    if pane_pid is not None and pid != str(pane_pid):
        raise PaneReplaced(f"{pane_id}: the pane runs another program than pid {pane_pid}")
    if in_mode and mode == "1":
        raise PaneInMode(f"{pane_id}: the pane is in a mode")
    raise PaneReplaced(f"{pane_id}: the target no longer names this pane")


def _not_ours_or_in_mode(pane_pid: int | None) -> str:
    """:func:`not_ours`, or the pane is in a mode (an Enter would go to the mode)."""
    return f"#{{||:{not_ours(pane_pid)},#{{pane_in_mode}}}}"


def paste_command(
    pane_id: str, buffer_name: str, pane_pid: int | None, target: Target | None
) -> list[str]:
    """``paste-buffer -p -d`` of a loaded buffer into the pane, unless :func:`not_ours`: then the
    buffer is deleted and :data:`MARK` printed (read by :func:`raise_for_mark`)."""
    return [
        "if-shell", "-F", "-t", pane_id, not_ours(pane_pid, target),
        f"delete-buffer -b {buffer_name} ; "
        f"display-message -p -t {pane_id} '{MARK}'",
        f"paste-buffer -p -d -b {buffer_name} -t {pane_id}",
    ]  # fmt: skip


def enter_command(pane_id: str, pane_pid: int | None) -> list[str]:
    """``send-keys Enter`` into the pane, unless :func:`not_ours` or in a mode: then
    :data:`MARK` is printed (read by :func:`raise_for_mark` with ``in_mode``)."""
    return [
        "if-shell", "-F", "-t", pane_id, _not_ours_or_in_mode(pane_pid),
        f"display-message -p -t {pane_id} '{MARK}'",
        f"send-keys -t {pane_id} Enter",
    ]  # fmt: skip


class Tagged:
    """Guarded commands for many panes in few clients, and what they printed.

    Each item's branches print ``TAG-WORD-N`` (a random tag per batch, N the item's index), so
    that whatever tmux does after a failing command (a missing pane stops the rest of a client's
    list), the lines say exactly which items were done.
    """

    def __init__(self) -> None:
        self.tag = secrets.token_hex(4)

    def paste(
        self, n: int, pane_id: str, buffer_name: str, pane_pid: int | None, target: Target | None
    ) -> list[str]:
        """Item ``n``: :func:`paste_command` that prints a word of :data:`PASTED`."""
        return [
            "if-shell", "-F", "-t", pane_id, not_ours(pane_pid, target),
            f"delete-buffer -b {buffer_name} ; "
            f"display-message -p -t {pane_id} '{self.tag}-gone#{{pane_dead}}-{n}'",
            f"paste-buffer -p -d -b {buffer_name} -t {pane_id} ; "
            f"display-message -p {self.tag}-ok-{n}",
        ]  # fmt: skip

    def enter(self, n: int, pane_id: str, pane_pid: int | None) -> list[str]:
        """Item ``n``: :func:`enter_command` that prints a word of :data:`ENTERED`."""
        return [
            "if-shell", "-F", "-t", pane_id, _not_ours_or_in_mode(pane_pid),
            f"display-message -p -t {pane_id} "
            f"'{self.tag}-gone#{{pane_dead}}#{{?pane_in_mode,m,}}-{n}'",
            f"send-keys -t {pane_id} Enter ; display-message -p {self.tag}-ok-{n}",
        ]  # fmt: skip

    def read(self, out: str, words: dict[str, str], done: dict[int, str]) -> None:
        """Put into ``done`` the outcome (``words[WORD]``) of each item that printed its line."""
        outcome = {f"{self.tag}-{word}": what for word, what in words.items()}
        for line in out.split():
            head, _, index = line.rpartition("-")
            if head in outcome and index.isdigit():
                done[int(index)] = outcome[head]
