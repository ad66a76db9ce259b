"""The errors of the tmux client, and the reading of a failed call's stderr into one of them."""

from __future__ import annotations

from typing import NoReturn

from asched.core.errors import AschedError


class TmuxError(AschedError):
    """A tmux call failed. ``reason`` is a stable machine-readable word, ``detail`` one line.

    Reasons: ``tmux-missing``, ``server-missing``, ``target-missing``, ``target-ambiguous``,
    ``pane-dead``, ``timeout``, ``command-failed``.
    """

    reason = "command-failed"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        self.detail = " ".join(detail.split()) or self.reason
        super().__init__(self.detail)


class TmuxMissing(TmuxError):
    """The tmux binary could not be executed."""

    reason = "tmux-missing"


class ServerMissing(TmuxError):
    """No tmux server answers on the socket ("no server running" / "error connecting to")."""

    reason = "server-missing"


class TargetMissing(TmuxError):
    """The session, window or pane named by a target does not exist."""

    reason = "target-missing"


class TargetAmbiguous(TargetMissing):
    """A window name matches more than one window of the session; name it by index instead."""

    reason = "target-ambiguous"


class PaneDead(TargetMissing):
    """The pane's program has exited and the pane only remains on screen (remain-on-exit)."""

    reason = "pane-dead"


class PaneReplaced(TargetMissing):
    """The pane now runs another program than the one that was typed into (a respawned pane, or
    a pane of a new server that reuses the id): what was typed went away with the old one."""

    reason = "pane-replaced"


class PaneInMode(TmuxError):
    """The pane went into a mode (copy mode: someone scrolls back) after the paste: an Enter
    now would go to the mode, not to the program. Nothing was sent."""

    reason = "copy-mode"


class BufferMissing(TmuxError):
    """The named buffer is not loaded: this call pasted nothing (the buffer was pasted already by
    someone, or was lost with a server)."""

    reason = "buffer-missing"


class TmuxTimeout(TmuxError):
    """A tmux call did not finish in time; the client was killed and reaped."""

    reason = "timeout"


def server_missing(err: str) -> bool:
    """True when a client's stderr says that no server answers (or it went away mid-call)."""
    # The first two: nobody listens on the socket. The others: the server went away mid-call.
    return err.startswith(
        ("no server running", "error connecting to", "server exited unexpectedly", "lost server")
    )


def raise_for(pane_id: str, what: str, err: str, rc: int) -> NoReturn:
    """Raise for a failed call on ``pane_id``: :class:`TargetMissing` when the pane or its window
    is gone, else :class:`TmuxError` with ``err`` (the call's stderr, one line) or its exit code."""
    if "can't find pane" in err or "can't find window" in err:
        raise TargetMissing(f"{pane_id}: {err}")
    raise TmuxError(f"{pane_id}: {what}: {err or f'exit {rc}'}")
