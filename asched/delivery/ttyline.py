"""Can a pane's terminal take a line this long? A canonical-mode tty keeps 4,095 bytes of a line.

In canonical mode (``ICANON``: ``cat``, ``read``, most programs that do not draw their own input
line) the kernel's line discipline holds at most 4,095 bytes before the newline and silently drops
the rest: the program gets a cut line, and the pane shows nothing wrong. Programs that read raw
keys (agents' UIs, shells with line editors) have no such limit. So a body with a longer line is
refused for a canonical tty rather than typed in part and reported delivered.
"""

from __future__ import annotations

import contextlib
import os
import termios

# N_TTY's buffer is 4,096 bytes, one of which the newline needs (measured on Linux 6.x).
CANON_LINE_MAX = 4095


def longest_line_bytes(text: str) -> int:
    """The longest line of ``text`` in UTF-8 bytes (a paste turns each LF into a line end)."""
    return max(len(line.encode("utf-8", "surrogateescape")) for line in text.split("\n"))


def canonical(tty: str) -> bool | None:
    """True when the terminal ``tty`` (``/dev/pts/N``) is in canonical mode; None when unknown.

    Opened without becoming our controlling terminal and without blocking; only its attributes
    are read.
    """
    try:
        fd = os.open(tty, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return bool(termios.tcgetattr(fd)[3] & termios.ICANON)
    except termios.error:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def too_long_for(tty: str, text: str) -> bool:
    """True when ``text`` has a line the terminal ``tty`` would cut (see the module's doc)."""
    return longest_line_bytes(text) > CANON_LINE_MAX and canonical(tty) is True
