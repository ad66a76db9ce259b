"""The tmux client calls of one delivery, exactly as asched makes them (asched/tmux.py).

Every peer types with these: a paste (``load-buffer`` from stdin chained with a guarded
``paste-buffer -p -d`` in one client) and, a settle delay later, a guarded ``send-keys Enter``.
Standard library only: the APScheduler peer process and the systemd box use it too.
"""

from __future__ import annotations

SETTLE_S = 0.5  # asched's default settle delay between the paste and the Enter


def prefix(sock: str) -> list[str]:
    """``tmux -N -u -S SOCK``: never start a server, UTF-8 names, this server."""
    return ["tmux", "-N", "-u", "-S", sock]


def paste_args(pane_id: str, buffer: str) -> list[str]:
    """The paste command list; the body goes on the client's stdin."""
    return [
        "load-buffer", "-b", buffer, "-",
        ";",
        "if-shell", "-F", "-t", pane_id, "#{pane_dead}",
        f"delete-buffer -b {buffer} ; display-message -p asched:pane-dead",
        f"paste-buffer -p -d -b {buffer} -t {pane_id}",
    ]  # fmt: skip


def enter_args(pane_id: str) -> list[str]:
    """Press Enter in the pane unless it is dead."""
    return [
        "if-shell", "-F", "-t", pane_id, "#{pane_dead}",
        "display-message -p asched:pane-dead",
        f"send-keys -t {pane_id} Enter",
    ]  # fmt: skip
