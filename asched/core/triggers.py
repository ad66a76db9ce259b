"""Schedule math and the parsing of user-written times: pure functions, no clock inside.

Every function takes "now" or "after" as an argument, so the scheduler (and the tests) decide what
time it is. The only thing read from outside is the time zone database, through :mod:`zoneinfo`.
All instants returned are timezone-aware UTC.

Cron rules are evaluated in the wall time of their IANA zone. Daylight saving time policy:

* A wall time that happens twice (the fall-back fold) fires once, at its first occurrence. This
  holds for every job, hourly-style ones too: during a repeated hour ``*/15 * * * *`` does not fire
  again, because every wall-clock time fires at most once.
* A wall time that does not exist (the spring-forward gap) fires once, shifted forward by the
  length of the gap, when the hour field names specific hours: ``30 2 * * *`` in Europe/Berlin
  fires at 03:30 CEST on the day the clocks jump from 02:00 to 03:00, and ``0 2 * * *`` on
  Australia/Lord_Howe (a 30-minute jump from 02:00 to 02:30) fires at 02:30. Like cronie and ISC
  cron such jobs run rather than being dropped; the shift is the instant PEP 495 assigns to the
  missing time, and it keeps several skipped slots of one job apart. A shifted slot that lands on
  a real slot of the same job (02:30 and 03:30 under ``30 2,3 * * *``) fires once.
* A job whose hour field allows every hour (``*/15 * * * *``, ``10 * * * *``) simply skips
  wall times that do not exist; it fires again at its next real slot within the hour anyway.

So a cron rule has a well-defined set of occurrence instants, and ``next_due(rule, after)`` is the
smallest one strictly later than ``after``: chaining it is strictly increasing, and asking again
from any instant before the answer gives the same answer.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING

from asched.core.errors import UsageError
from asched.core.models import Cron, Every, Once, Rule, utc
from asched.core.ruletext import format_duration, rule_to_text

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from asched.core.cron import CronSpec

# zoneinfo and the cron parser are imported by the functions that use them: `asched next 30m`
# and `asched add --in` need neither (tests/cli/test_imports.py).

__all__ = [
    "DURATION_FORMS",
    "MAX_DURATION_S",
    "TIME_FORMS",
    "format_duration",
    "next_due",
    "parse_duration",
    "parse_time",
    "parse_zone",
    "rule_to_text",
]

MAX_DURATION_S = 3660 * 86400
"""The longest duration :func:`parse_duration` accepts: ten years (of 366 days)."""

# Parsed here rather than with a library (pytimeparse, humanfriendly): none reads systemd's
# spellings together with asched's refusals (a bare number, "M", a fraction of a second).
_US = 1_000_000
# The time span units of systemd.time(7), each spelling -> microseconds (each unit is a whole
# number of them). "M" (months there) is refused: it is one key away from "m" (minutes), and a
# month is no fixed span.
_SPELLINGS: dict[str, int] = {
    **dict.fromkeys(("years", "year", "y"), 31_557_600 * _US),  # 365.25 days, as systemd
    **dict.fromkeys(("months", "month"), 2_629_800 * _US),  # 30.44 days, as systemd
    **dict.fromkeys(("weeks", "week", "w"), 7 * 86400 * _US),
    **dict.fromkeys(("days", "day", "d"), 86400 * _US),
    **dict.fromkeys(("hours", "hour", "hr", "h"), 3600 * _US),
    **dict.fromkeys(("minutes", "minute", "min", "m"), 60 * _US),
    **dict.fromkeys(("seconds", "second", "sec", "s"), _US),
    **dict.fromkeys(("msec", "ms"), 1000),
    **dict.fromkeys(("usec", "us", "\u00b5s", "\u03bcs"), 1),
}
# A number is at most 24 characters (parse_duration), so it has fewer decimals than this: scaled
# by 10**_DECIMALS it is a whole number, and the sum below is exact in integers. (Fraction would
# do the same; it imports decimal and numbers, ~2 ms of every `asched add` and `next`.)
_DECIMALS = 24
_UNIT = "|".join(sorted(map(re.escape, _SPELLINGS), key=len, reverse=True))  # longest first
_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_DURATION_PART = re.compile(rf"[ \t]*({_NUMBER})[ \t]*({_UNIT})(?![A-Za-z])[ \t]*")
_MONTHS = re.compile(rf"[ \t]*(?:{_NUMBER})[ \t]*M(?![A-Za-z])")
DURATION_FORMS = "90s, 5m or 5min, 1.5h, 2 h, 1h 30min, 2d, 1w"
"""Examples of the durations :func:`parse_duration` reads, for help texts and errors."""
_DURATION_HELP = f"use a number and a unit, as systemd writes time spans: {DURATION_FORMS}"
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?", re.ASCII)
# 9am, 9 pm, 9:30pm, 9:30:15 p.m., 12am (midnight), 12pm (noon).
_AMPM = re.compile(
    r"([0-9]{1,2})(?::([0-9]{2}))?(?::([0-9]{2}))?[ \t]*([ap])\.?m\.?", re.ASCII | re.IGNORECASE
)
TIME_FORMS = "HH:MM or HH:MM:SS (24-hour), 9am or 9:30pm, or ISO 8601 (2026-03-29T09:00, ...Z)"
"""The times :func:`parse_time` reads, for help texts and errors."""
_TIME_HELP = f"use {TIME_FORMS}"
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*", re.ASCII)

# Candidates are only passed over near a fold or a gap, which spans at most a day of minutes even
# in the strangest zone history; this bound only guarantees termination.
_MAX_CANDIDATES = 10_000
_MINUTE = timedelta(minutes=1)


def parse_duration(text: str) -> int:
    """Whole seconds in ``text``: a time span as systemd.time(7) writes it.

    One or more ``<number><unit>`` parts, spaces allowed between and inside them: ``90s``,
    ``5m``, ``30min``, ``1.5h``, ``2 h``, ``1h 30min``, ``1h30m``, ``2d``, ``1w``, ``1y``. Units
    (any of systemd's spellings): ``us``, ``ms``, ``s``/``sec``/``second(s)``,
    ``m``/``min``/``minute(s)``, ``h``/``hr``/``hour(s)``, ``d``/``day(s)``, ``w``/``week(s)``,
    ``month(s)`` (30.44 d), ``y``/``year(s)`` (365.25 d). Parts go from the largest unit to the
    smallest, each at most once (``30m1h`` is a slip, not a span). Two rules are stricter than
    systemd: a unit is required (a bare ``5`` is refused, since minutes and seconds are both
    plausible readings), and ``M`` is refused (months in systemd, minutes to most people). The
    total must be whole seconds; ``0s`` is accepted and whether zero makes sense is the caller's
    decision. At most :data:`MAX_DURATION_S`.
    """
    stripped = text.strip()
    if not stripped:
        raise UsageError(f"empty duration: {_DURATION_HELP}")
    if re.fullmatch(_NUMBER, stripped, re.ASCII):
        raise UsageError(f"duration {text!r} needs a unit (s, min, h, d or w), e.g. {stripped}s")
    parts = _split_duration(text)
    total, previous = 0, -1  # total: in units of 10**-_DECIMALS microseconds
    for number, unit in parts:
        size = _SPELLINGS[unit]
        if previous >= 0 and size >= previous:
            raise UsageError(
                f"bad duration {text!r}: units must go from the largest to the smallest"
                " (w to s), each at most once"
            )
        previous = size
        whole, _, decimals = number.partition(".")
        if len(whole) > 12 or len(number) > 24:
            raise UsageError(f"duration {text!r} is too long (at most 10 years)")
        total += int((whole or "0") + decimals.ljust(_DECIMALS, "0")) * size
    one_second: int = _US * 10**_DECIMALS  # (10**n is "Any" to mypy: n might be negative)
    if total > MAX_DURATION_S * one_second:
        raise UsageError(f"duration {text!r} is too long (at most 10 years)")
    if total % one_second:
        raise UsageError(f"bad duration {text!r}: asched counts whole seconds")
    return total // one_second


def _split_duration(text: str) -> list[tuple[str, str]]:
    """``text`` as (number, unit) parts; UsageError when it is anything else."""
    parts, at = [], 0
    while at < len(text):
        part = _DURATION_PART.match(text, at)
        if part is None:
            if _MONTHS.match(text, at):
                raise UsageError(
                    f"bad duration {text!r}: M would be months (systemd); write m or min for"
                    " minutes, month for months"
                )
            raise UsageError(f"bad duration {text!r}: {_DURATION_HELP}")
        parts.append((part.group(1), part.group(2)))
        at = part.end()
    return parts


def parse_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``); UsageError if unknown or not a zone name."""
    # zoneinfo treats the key as a relative path; refuse anything that is not plainly a zone name
    # before it ever reaches the file system.
    if _ZONE_NAME.fullmatch(name) is None:
        raise UsageError(f"bad time zone {name!r}: expected an IANA name like Europe/Berlin")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # lazy: see the imports above

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise UsageError(f"unknown time zone {name!r}") from exc


def _convert(wall: datetime, zone: ZoneInfo | None, fold: int) -> datetime:
    if zone is None:
        return wall.replace(fold=fold).astimezone(UTC)
    return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def _wall_of(instant: datetime, zone: ZoneInfo | None) -> datetime:
    return (instant.astimezone(zone) if zone is not None else instant.astimezone()).replace(
        tzinfo=None
    )


def _to_instant(wall: datetime, zone: ZoneInfo | None, fold: int = 0) -> tuple[datetime, bool]:
    """The UTC instant naive ``wall`` names in ``zone`` (None: the system zone), and whether the
    wall time really exists there.

    ``fold=0`` picks the first occurrence of a repeated time and, for a missing time, the later
    candidate, which is the wall time shifted forward by the gap; ``fold=1`` the other one. Both
    fold values are tried because zoneinfo and the system-zone conversion disagree on which of
    them a missing time gets.
    """
    wall = wall.replace(tzinfo=None, fold=0)
    instants = sorted({_convert(wall, zone, 0), _convert(wall, zone, 1)})
    real = [instant for instant in instants if _wall_of(instant, zone) == wall]
    if real:
        return (real[0] if fold == 0 else real[-1]), True
    return (instants[-1] if fold == 0 else instants[0]), False


def parse_time(text: str, now: datetime, tz: ZoneInfo | None = None) -> datetime:
    """The instant ``text`` names, as aware UTC.

    ``text`` is ISO 8601 (``2026-03-29T09:00``, ``2026-03-29 09:00:00+02:00``, ``...Z``; without an
    offset it is wall time in ``tz``, or the system zone when ``tz`` is None), or a time of day,
    ``HH:MM`` / ``HH:MM:SS`` (24-hour) or ``9am`` / ``9:30pm`` / ``12am`` (midnight), meaning the
    next such wall time strictly after ``now``: today or tomorrow. A time of day that falls into a
    DST gap is shifted forward by the gap; one that occurs twice means whichever occurrence comes
    first after ``now``. An ISO time in the past is returned as is; refusing it is the caller's
    decision. Every error names the accepted forms (:data:`TIME_FORMS`).
    """
    now = utc(now)
    stripped = text.strip()
    try:
        of_day = _time_of_day(text, stripped)
        if of_day is not None:
            return _next_time_of_day(text, of_day, now, tz)
        try:
            parsed = datetime.fromisoformat(stripped)
        except ValueError:
            raise UsageError(f"bad time {text!r}: {_TIME_HELP}") from None
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
        return _to_instant(parsed, tz)[0]
    except UsageError:
        raise  # a ValueError too, and it already says what is wrong: not "out of range"
    except (OverflowError, OSError, ValueError) as exc:
        # Converting a wall time near year 1 or 9999 to UTC can leave datetime's range.
        raise UsageError(f"time {text!r} is out of range") from exc


def _time_of_day(text: str, stripped: str) -> time | None:
    """The time of day ``text`` names (24-hour or am/pm), None when it is not one."""
    ampm = _AMPM.fullmatch(stripped)
    found = ampm or _CLOCK.fullmatch(stripped)
    if found is None:
        return None
    hour, minute, second = (int(g or 0) for g in found.groups()[:3])
    if ampm is not None:
        if not 1 <= hour <= 12:
            raise UsageError(f"bad time {text!r}: an am/pm hour is 1 to 12; {_TIME_HELP}")
        hour = hour % 12 + (12 if ampm.group(4).lower() == "p" else 0)
    try:
        return time(hour, minute, second)
    except ValueError:
        raise UsageError(f"bad time {text!r}: no such time of day; {_TIME_HELP}") from None


def _next_time_of_day(text: str, at: time, now: datetime, tz: ZoneInfo | None) -> datetime:
    today = (now.astimezone(tz) if tz is not None else now.astimezone()).date()
    # Tomorrow always works; the third day only guards zones that once skipped a whole date.
    for days in range(3):
        wall = datetime.combine(today + timedelta(days=days), at)
        for fold in (0, 1):
            instant, exists = _to_instant(wall, tz, fold)
            # In a gap fold=1 maps to an instant before the gap, which is not this time of day.
            if (exists or fold == 0) and instant > now:
                return instant
    raise UsageError(f"time {text!r} does not occur in the next days")


@functools.lru_cache(maxsize=256)
def _cached_cron(expr: str) -> CronSpec:
    from asched.core.cron import parse_cron  # lazy: see the imports above

    return parse_cron(expr)


def next_due(rule: Rule, after: datetime) -> datetime | None:
    """The first occurrence of ``rule`` strictly after ``after`` (aware), as aware UTC.

    None when there is none: a one-shot already past, or a cron expression that never matches
    (``0 0 30 2 *``). Raises UsageError for a stored cron rule that no longer parses.
    """
    after = utc(after)
    if isinstance(rule, Once):
        at = utc(rule.at)
        return at if at > after else None
    if isinstance(rule, Every):
        return _next_every(rule, after)
    return _next_cron(rule, after)


def _next_every(rule: Every, after: datetime) -> datetime | None:
    if rule.interval_s <= 0:
        raise ValueError(f"every: the interval must be positive, got {rule.interval_s}")
    anchor = utc(rule.anchor)
    if after < anchor:
        return anchor
    step = timedelta(seconds=rule.interval_s)
    # Integer arithmetic on microseconds: a ten-year outage costs the same as a one-second one.
    slots = (after - anchor) // step + 1
    try:
        return anchor + slots * step
    except OverflowError:
        return None


def _next_cron(rule: Cron, after: datetime) -> datetime | None:
    spec = _cached_cron(rule.expr)
    zone = parse_zone(rule.tz)
    try:
        # A slot in a gap fires up to one gap length after its wall time, so right after the
        # clocks jump forward the search must start that far back to see it.
        day_before = after - timedelta(days=1)
        jump = max(timedelta(0), _offset(after, zone) - _offset(day_before, zone))
        start = (after - jump).astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        return _first_cron_instant(spec, zone, start, after)
    except (OverflowError, ValueError):
        return None  # the answer would lie beyond year 9999


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta:
    return instant.astimezone(zone).utcoffset() or timedelta(0)


def _first_cron_instant(
    spec: CronSpec, zone: ZoneInfo, start: datetime, after: datetime
) -> datetime | None:
    """The earliest occurrence after ``after`` among the wall times from ``start`` on.

    Wall order equals instant order except that a gap time, shifted forward, lands behind the
    real slots just after the gap; so a shifted candidate is only kept as the best so far until
    the walk passes its shifted wall time.
    """
    from asched.core.cron import next_wall_match  # lazy: see the imports above

    best: datetime | None = None
    best_wall: datetime | None = None
    wall = next_wall_match(spec, start)
    for _ in range(_MAX_CANDIDATES):
        if wall is None or (best_wall is not None and wall >= best_wall):
            return best
        instant, exists = _to_instant(wall, zone)
        if instant > after and exists:
            return instant if best is None else min(best, instant)
        if instant > after and best is None and not spec.every_hour:
            best, best_wall = instant, instant.astimezone(zone).replace(tzinfo=None)
        # Otherwise rejected: a first-pass fold time already behind us, a gap time of an
        # hourly-style job, or a later gap time (shifted further than the one we hold).
        wall = next_wall_match(spec, wall + _MINUTE)
    return best
