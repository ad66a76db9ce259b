"""How a step of a delivery ends early: the exceptions that carry an outcome up the steps."""

from __future__ import annotations


class Deferred(Exception):
    """The daemon is stopping before typing began: leave the row claimed for the next start."""


class Retry(Exception):
    """Nothing was typed and a moment later may do: claim the occurrence again, back off, retry
    within the grace window, else fail with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TextLost(Retry):
    """Before our Enter, the text was lost: no copy of it is left anywhere.

    Either the paste never reached a server (no one listened on the socket), or the server that
    held the pane died, or the pane's program was replaced (``respawn-pane``, or a new server
    reusing the pane id): the unsent input line went with them. Typing it again cannot make a
    second copy, so the occurrence is claimed again. ``reason`` is one of ``TEXT_LOST``.
    """


# The verdict of a look after an Enter that found the text still alone in the input area.
SWALLOWED = "text-still-in-input"
