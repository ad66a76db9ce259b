"""structlog set-up: one JSON object per line on stderr, or a console view on a terminal.

Every event has a stable dotted name (``daemon.ready``, ``lock.waiting``) and key/values. Under
journald each line starts with a ``<N>`` syslog priority so that ``journalctl -p warning``
filters by level; journald strips the prefix, so ``journalctl -o cat`` shows plain JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from asched.core.errors import UsageError

LEVELS = (
    "debug",
    "info",
    "warning",
    "error",
    "critical",
)  # also in cli/daemonctl.py, which must stay light

# syslog(3) priorities: what journald reads from a "<N>" line prefix.
_SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def parse_level(name: str) -> int:
    """The ``logging`` level for ``name`` (one of :data:`LEVELS`); UsageError otherwise."""
    key = name.strip().lower()
    if key not in LEVELS:
        raise UsageError(f"unknown log level {name!r}; use one of {', '.join(LEVELS)}")
    return int(logging.getLevelName(key.upper()))


def journal_stream_matches(stream: TextIO, env: MutableMapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journald stream systemd connected us to.

    systemd sets JOURNAL_STREAM to ``<device>:<inode>`` of that stream; comparing it with the
    actual file keeps a child whose stderr was redirected elsewhere from printing prefixes.
    """
    value = (env if env is not None else os.environ).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


class _JsonLine:
    """Render an event dict as compact JSON, optionally prefixed with ``<N>`` for journald."""

    def __init__(self, journal_prefix: bool) -> None:
        self._prefix = journal_prefix

    def __call__(self, _logger: WrappedLogger, _name: str, event: EventDict) -> str:
        line = json.dumps(event, default=str, ensure_ascii=False, separators=(",", ":"))
        if self._prefix:
            return f"<{_SYSLOG_PRIORITY.get(str(event.get('level')), 6)}>{line}"
        return line


def _order_keys(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    # timestamp, level and event first: easier to read in `journalctl -o cat`.
    head = {k: event.pop(k) for k in ("timestamp", "level", "event") if k in event}
    head.update(event)
    return head


def configure(level: str = "info", stream: TextIO | None = None, force_json: bool = False) -> None:
    """Configure structlog for this process.

    JSON on stderr unless stderr is a terminal (then a console renderer), or ``force_json``.
    ``level`` is validated by :func:`parse_level`.
    """
    out = stream if stream is not None else sys.stderr
    threshold = parse_level(level)
    renderer: Processor
    if out.isatty() and not force_json:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = _JsonLine(journal_prefix=journal_stream_matches(out))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _order_keys,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> structlog.typing.FilteringBoundLogger:
    """A logger bound with ``bound`` key/values."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(**bound)
    return logger


def body_preview(message: str, limit: int = 24) -> dict[str, Any]:
    """What the logs may say about a message body at info level: its length and a short prefix."""
    prefix = message[:limit]
    return {
        "message_len": len(message),
        "message_prefix": prefix + ("…" if prefix != message else ""),
    }


class Repeats:
    """Tells a new error from the same one again, so that a failure that repeats on every pass
    (a full disk) is logged with its traceback once and then only counted.

    ``first(exc)`` is True for an error unlike the last one; ``count`` is how many times in a row
    the current one was seen; ``clear()`` (after a success) returns that count and forgets it.
    """

    def __init__(self) -> None:
        self._last: str | None = None
        self.count = 0

    def first(self, exc: BaseException) -> bool:
        """Record ``exc``; True when it differs from the previous one (log it in full)."""
        key = f"{type(exc).__name__}: {exc}"
        if key == self._last:
            self.count += 1
            return False
        self._last, self.count = key, 1
        return True

    def clear(self) -> int:
        """Forget the current error; returns how many times in a row it was seen."""
        count, self._last, self.count = self.count, None, 0
        return count

    @staticmethod
    def worth_a_line(count: int) -> bool:
        """Repeats logged again (without a traceback): the 10th, 100th, then every 1,000th."""
        return count in (10, 100) or count % 1000 == 0
