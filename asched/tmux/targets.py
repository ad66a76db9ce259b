"""tmux targets and message bodies: parsing and validation, with the standard library only.

The CLI validates every target and body before it writes anything; it imports this module, not
the tmux client, so that ``asched add`` starts fast.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

from asched.core.errors import UsageError

__all__ = ["MAX_BODY_BYTES", "PANE_ID", "Target", "check_body", "check_pane_id", "parse_target"]

# A check-in is a message, not a file transfer; a body this large is a mistake.
MAX_BODY_BYTES = 1 << 20

_DIGITS = re.compile(r"[0-9]+")
PANE_ID = re.compile(r"%[0-9]+")
_INT_MAX = 2**31 - 1


class _Address(NamedTuple):
    session: str | None = None
    window: int | str | None = None
    pane: int | None = None
    pane_id: str | None = None


class Target(_Address):
    """A pane address: ``session:window[.pane]`` or a pane id ``%N``.

    ``window`` is an ``int`` for a window index and a ``str`` for a window name, so a window
    *named* ``"3"`` and window index ``3`` are different targets. ``pane`` is a pane index; None
    means the window's active pane. Invalid combinations raise :class:`UsageError`.

    A named tuple (a dataclass and the import of dataclasses cost the command line about 10 ms):
    checked in ``__new__``, which ``_replace`` does not call; nothing here uses it.
    """

    __slots__ = ()

    def __new__(
        cls,
        session: str | None = None,
        window: int | str | None = None,
        pane: int | None = None,
        pane_id: str | None = None,
    ) -> Target:
        _check(session, window, pane, pane_id)
        return super().__new__(cls, session, window, pane, pane_id)

    def __str__(self) -> str:
        if self.pane_id is not None:
            return self.pane_id
        win = self.window
        if isinstance(win, str) and (_DIGITS.fullmatch(win) or win.startswith("=")):
            win = "=" + win  # a name that would read as an index (or as this escape)
        tail = "" if self.pane is None else f".{self.pane}"
        return f"{self.session}:{win}{tail}"


def _check(
    session: str | None, window: int | str | None, pane: int | None, pane_id: str | None
) -> None:
    """Raise UsageError for a combination that is no pane address (see :class:`Target`)."""
    if pane_id is not None:
        if (session, window, pane) != (None, None, None):
            raise UsageError("a tmux target is either a pane id or session:window[.pane]")
        if not PANE_ID.fullmatch(pane_id):
            raise UsageError(f"bad tmux pane id {pane_id!r}: expected %N")
        return
    if session is None or window is None:
        raise UsageError("a tmux target needs a session and a window (session:window[.pane])")
    _check_session(session)
    if isinstance(window, int):
        if isinstance(window, bool) or not 0 <= window <= _INT_MAX:
            raise UsageError(f"bad tmux window index {window!r}")
    else:
        _check_window_name(window, has_pane=pane is not None)
    if pane is not None and (isinstance(pane, bool) or not 0 <= pane <= _INT_MAX):
        raise UsageError(f"bad tmux pane index {pane!r}")


def _is_unicode(text: str) -> bool:
    """False for lone surrogates (Python's spelling of invalid UTF-8 in argv): they cannot be
    stored or sent to tmux."""
    return not any("\ud800" <= c <= "\udfff" for c in text)


def _bad_chars(part: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in part)


def _check_session(name: str) -> None:
    if not name:
        raise UsageError("empty tmux session name")
    if _bad_chars(name):
        raise UsageError(f"tmux session name {name!r} contains control characters")
    if ":" in name or "." in name:
        # tmux itself turns both into "_" in session names, so no session can be named like this.
        raise UsageError(f"tmux session name {name!r} cannot contain ':' or '.'")
    if name != name.strip():
        raise UsageError(f"tmux session name {name!r} has leading or trailing spaces")


def _check_window_name(name: str, *, has_pane: bool) -> None:
    if not name:
        raise UsageError("empty tmux window name")
    if _bad_chars(name):
        raise UsageError(f"tmux window name {name!r} contains control characters")
    if name != name.strip():
        raise UsageError(f"tmux window name {name!r} has leading or trailing spaces")
    _, dot, tail = name.rpartition(".")
    if dot and (not tail or _DIGITS.fullmatch(tail)) and not has_pane:
        # "work:python3.11" reads as window "python3" pane 11: such a name needs a pane index.
        raise UsageError(
            f"tmux window name {name!r} ends in '.' or '.<digits>': add a pane index "
            f"(e.g. ':{name}.0') or use the window's index"
        )


def parse_target(text: str) -> Target:
    """Parse ``session:window[.pane]`` or ``%N`` into a :class:`Target`.

    The window is an index when it is all ASCII digits and a name otherwise; ``=NAME`` forces a
    name (a window named ``3`` is ``work:=3``). The pane index follows the *last* ``.`` when what
    follows it is all digits, so ``work:api.v2`` is window ``api.v2``. Raises :class:`UsageError`
    with a one-line message.
    """
    if not isinstance(text, str) or not text:
        raise UsageError("empty tmux target; expected session:window[.pane] or %N")
    if _bad_chars(text):
        raise UsageError(f"bad tmux target {text!r}: control characters")
    if not _is_unicode(text):
        raise UsageError(f"bad tmux target {text!r}: not valid UTF-8")
    if text.startswith("%") and ":" not in text:  # "%x:0" is session "%x"
        if not PANE_ID.fullmatch(text):
            raise UsageError(f"bad tmux target {text!r}: a pane id is % followed by digits")
        return Target(pane_id=text)
    session, colon, rest = text.partition(":")
    if not colon:
        raise UsageError(f"bad tmux target {text!r}: no window; expected session:window[.pane]")
    if not session:
        raise UsageError(f"bad tmux target {text!r}: empty session name")
    if not rest:
        raise UsageError(f"bad tmux target {text!r}: empty window")
    pane: int | None = None
    head, dot, tail = rest.rpartition(".")
    if dot and _DIGITS.fullmatch(tail):
        if not head:
            raise UsageError(f"bad tmux target {text!r}: empty window")
        rest, pane = head, int(tail)
    elif dot and not tail:
        raise UsageError(f"bad tmux target {text!r}: empty pane index after '.'")
    window: int | str
    if rest.startswith("="):
        window = rest[1:]
        if not window:
            raise UsageError(f"bad tmux target {text!r}: empty window name after '='")
    elif _DIGITS.fullmatch(rest):
        window = int(rest)
    else:
        window = rest
    try:
        return Target(session=session, window=window, pane=pane)
    except UsageError as e:
        raise UsageError(f"bad tmux target {text!r}: {e}") from None


def check_body(text: str) -> bytes:
    """Validate a message body for pasting and return its UTF-8 bytes.

    Refused (:class:`UsageError`): an empty body, more than :data:`MAX_BODY_BYTES`, and control
    characters other than TAB and LF. A pasted ESC could end the bracketed paste early (tmux 3.3a
    does not filter ``ESC [ 201 ~``) and ^C/^D/^Z act on the tty; CR is refused so that a body's
    line endings mean one thing.
    """
    if not text:
        raise UsageError("empty message")
    bad = {c for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n"}
    if bad:
        shown = ", ".join(sorted(repr(c) for c in bad))
        raise UsageError(f"message contains control characters ({shown}); only TAB and LF allowed")
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("message is not valid Unicode (lone surrogates)") from None
    if len(body) > MAX_BODY_BYTES:
        raise UsageError(f"message is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    return body


def check_pane_id(pane_id: str) -> None:
    """Raise UsageError unless ``pane_id`` is ``%N``."""
    if not isinstance(pane_id, str) or not PANE_ID.fullmatch(pane_id):
        raise UsageError(f"bad tmux pane id {pane_id!r}: expected %N")
