"""Five-field cron expressions: parsing and wall-clock matching.

This module knows nothing about time zones or instants: :func:`next_wall_match` answers "which is
the first naive wall time at or after this one that the expression names?". Turning wall times into
instants (and the daylight-saving policy that goes with it) lives in :mod:`asched.core.triggers`.

Syntax: ``minute hour day-of-month month day-of-week`` with ``*``, lists ``a,b``, ranges ``a-b``,
steps ``*/n``, ``a-b/n`` and ``a/n`` (from ``a`` to the end of the field), month names JAN..DEC,
weekday names SUN..SAT (0 and 7 are both Sunday), all case-insensitive, and the macros @hourly,
@daily, @midnight, @weekly, @monthly, @yearly and @annually.

Day matching follows Vixie cron exactly: a day-of-month or day-of-week field whose text starts
with ``*`` (so ``*`` but also ``*/2``) counts as unrestricted. If either field is unrestricted a day
must satisfy both; if both are restricted a day matching either one is enough, so
``0 9 1 * MON`` fires on the first of the month and on every Monday.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from asched.core.errors import UsageError

__all__ = ["CronSpec", "next_wall_match", "parse_cron"]

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_MONTH_NAMES = {
    name: i
    for i, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DOW_NAMES = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}

# (name, low, high, names) for each of the five fields, in expression order.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 0, 7, _DOW_NAMES),
)
_ITEM = re.compile(r"(?:(\*)|(\w+)(?:-(\w+))?)(?:/(\w+))?", re.ASCII)

# A safety net only: every expression that passes the static check matches within a few decades
# (Feb 29 on a given weekday can be ~40 years away across 2100), so this bound is never reached
# by a possible expression; it just guarantees termination.
_SEARCH_YEARS = 100


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A parsed cron expression: the sorted allowed values of each field.

    ``weekdays`` uses 0 for Sunday (7 is folded into 0). ``dom_star``/``dow_star`` record whether
    the field's text started with ``*``, which is what selects AND or OR day matching.
    """

    expr: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    dom_star: bool
    dow_star: bool

    @property
    def every_hour(self) -> bool:
        """True when the hour field allows all 24 hours (the job is "hourly-style")."""
        return len(self.hours) == 24

    @property
    def possible(self) -> bool:
        """False when no calendar day can ever match (``0 0 30 2 *``, ``0 0 31 4 *``)."""
        if not (self.dom_star or self.dow_star):
            return True  # OR matching: some weekday always comes round
        # AND matching: the day of month must exist in one of the months; 2000 is a leap year, so
        # February offers 29 days here, and every real (month, day) pair eventually falls on
        # every weekday.
        return any(d <= calendar.monthrange(2000, m)[1] for m in self.months for d in self.days)

    def day_matches(self, day: date) -> bool:
        """Whether ``day`` passes the month, day-of-month and day-of-week fields."""
        if day.month not in self.months:
            return False
        dom_ok = day.day in self.days
        dow_ok = day.isoweekday() % 7 in self.weekdays
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok


def _bad(expr: str, field: str, text: str, why: str) -> UsageError:
    return UsageError(f"bad cron expression {expr!r}: {field} field {text!r}: {why}")


def _value(expr: str, field: int, item: str, token: str) -> int:
    name, low, high, names = _FIELDS[field]
    if token.isdigit():
        # Long digit strings are out of range anyway; don't feed them to int().
        value = int(token) if len(token) <= 4 else high + 1
    elif token.upper() in names:
        value = names[token.upper()]
    else:
        what = f"a number or a name ({', '.join(names)})" if names else "a number"
        raise _bad(expr, name, item, f"{token!r} is not {what}")
    if not low <= value <= high:
        raise _bad(expr, name, item, f"{token} is out of range {low}-{high}")
    return value


def _parse_field(expr: str, field: int, text: str) -> set[int]:
    name, low, high, _ = _FIELDS[field]
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise _bad(expr, name, text, f"cannot read {item!r} (expected *, N, N-M, */S or N-M/S)")
        star, first, last, step_text = match.groups()
        if star:
            start, stop = low, high
        else:
            start = _value(expr, field, item, first)
            # "a/n" runs to the end of the field, like cronie and most other crons.
            stop = _value(expr, field, item, last) if last else (high if step_text else start)
        step = 1
        if step_text is not None:
            if not step_text.isdigit() or len(step_text) > 4 or int(step_text) == 0:
                raise _bad(expr, name, item, f"step {step_text!r} must be a number from 1 to 9999")
            step = int(step_text)
        if start > stop:
            raise _bad(expr, name, item, f"range {start}-{stop} runs backwards")
        values.update(range(start, stop + 1, step))
    return values


def parse_cron(expr: str) -> CronSpec:
    """Parse a five-field cron expression or macro; raise UsageError naming the bad field."""
    text = expr.strip()
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise UsageError(f"unknown cron macro {text!r} (known: {', '.join(MACROS)})")
        text = MACROS[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        raise UsageError(
            f"bad cron expression {expr!r}: need 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    fields = [_parse_field(expr, i, part) for i, part in enumerate(parts)]
    weekdays = {d % 7 for d in fields[4]}
    return CronSpec(
        expr=expr.strip(),
        minutes=tuple(sorted(fields[0])),
        hours=tuple(sorted(fields[1])),
        days=tuple(sorted(fields[2])),
        months=tuple(sorted(fields[3])),
        weekdays=tuple(sorted(weekdays)),
        dom_star=parts[2].startswith("*"),
        dow_star=parts[4].startswith("*"),
    )


def _first_at_least(values: tuple[int, ...], value: int) -> int | None:
    i = bisect_left(values, value)
    return values[i] if i < len(values) else None


def _month_len(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _next_day(spec: CronSpec, day: date) -> date:
    """The next day after ``day`` worth testing: skips to the next allowed date or month."""
    if day.month in spec.months:
        if spec.dom_star or spec.dow_star:
            # AND matching needs the day of month, so jump straight to the next allowed one.
            dom = _first_at_least(spec.days, day.day + 1)
            if dom is not None and dom <= _month_len(day):
                return day.replace(day=dom)
        elif day.day < _month_len(day):
            return day + timedelta(days=1)
    month = _first_at_least(spec.months, day.month + 1)
    if month is None:
        return date(day.year + 1, spec.months[0], 1)
    return date(day.year, month, 1)


def _time_at_least(spec: CronSpec, hour: int, minute: int) -> time | None:
    first_hour = _first_at_least(spec.hours, hour)
    if first_hour is None:
        return None
    if first_hour == hour:
        first_minute = _first_at_least(spec.minutes, minute)
        if first_minute is not None:
            return time(hour, first_minute)
        first_hour = _first_at_least(spec.hours, hour + 1)
        if first_hour is None:
            return None
    return time(first_hour, spec.minutes[0])


def next_wall_match(spec: CronSpec, start: datetime) -> datetime | None:
    """The first naive wall time at or after ``start`` (seconds ignored) that ``spec`` names.

    Jumps month by month, day by day and then straight to the hour and minute, so the cost is a
    handful of steps per candidate day, never one per minute. ``None`` when nothing matches within
    the search horizon (impossible expressions are answered without searching).
    """
    if not spec.possible:
        return None
    day, hour, minute = start.date(), start.hour, start.minute
    horizon = start.year + _SEARCH_YEARS
    try:
        while day.year <= horizon:
            if spec.day_matches(day):
                at = _time_at_least(spec, hour, minute)
                if at is not None:
                    return datetime.combine(day, at)
            day, hour, minute = _next_day(spec, day), 0, 0
    except (OverflowError, ValueError):
        return None  # ran off the end of the calendar (year 9999)
    return None
