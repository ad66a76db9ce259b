"""How rules and durations read in listings: ``every 30m``, ``1h30m``.

These are the text functions of :mod:`asched.core.triggers` (which re-exports them), kept apart
from its parsing and schedule math so that ``asched ls --json`` does not import what those need
(fractions, zoneinfo, the cron parser and their regular expressions).
"""

from __future__ import annotations

import math
from datetime import datetime

from asched.core.models import Every, Once, Rule, utc

__all__ = ["format_duration", "rule_to_text"]

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def format_duration(seconds: float) -> str:
    """A compact duration that :func:`asched.core.triggers.parse_duration` reads back:
    ``1h30m``, ``45s``, ``2d``.

    Whole seconds from 10 s up; shorter non-integral values keep up to three decimals (``0.25s``),
    which is what a jitter or a grace window may need.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite duration: {seconds}")
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 10 and seconds != int(seconds):
        return f"{round(seconds, 3):g}s"
    rest = round(seconds)
    parts = []
    for unit, size in _UNITS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _iso_utc(ts: datetime) -> str:
    spec = "seconds" if ts.microsecond == 0 else "microseconds"
    return utc(ts).isoformat(timespec=spec).replace("+00:00", "Z")


def rule_to_text(rule: Rule) -> str:
    """A short description for listings: ``every 30m``, ``cron '0 9 * * 1-5' Europe/Berlin``."""
    if isinstance(rule, Once):
        return f"once at {_iso_utc(rule.at)}"
    if isinstance(rule, Every):
        return f"every {format_duration(rule.interval_s)}"
    return f"cron '{rule.expr}' {rule.tz}"
