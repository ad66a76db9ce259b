"""Tests for asched.triggers: parsing of durations, times, zones and cron, and next_due."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asched.core.cron import CronSpec, parse_cron
from asched.core.errors import UsageError
from asched.core.models import Cron, Every, Once, Rule
from asched.core.triggers import (
    MAX_DURATION_S,
    format_duration,
    next_due,
    parse_duration,
    parse_time,
    parse_zone,
    rule_to_text,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"
ZONES = [BERLIN, NEW_YORK, LORD_HOWE, "UTC", "Asia/Kolkata", "America/St_Johns"]
FAST = settings(deadline=timedelta(milliseconds=500), max_examples=150)


def u(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


def chain(rule: Rule, after: datetime, count: int) -> Iterator[datetime]:
    """``count`` successive occurrences of ``rule`` after ``after``."""
    for _ in range(count):
        result = next_due(rule, after)
        assert result is not None
        yield result
        after = result


def assert_usage_error(exc: pytest.ExceptionInfo[UsageError], *needles: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        (" 2d4h ", 187_200),
        ("1w", 604_800),
        ("1w2d3h4m5s", 604_800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        ("0s", 0),
        ("5 m", 300),
        ("3660d", MAX_DURATION_S),
        # systemd time spans (systemd.time(7)): spellings, fractions, spaces.
        ("30min", 1800),
        ("1.5h", 5400),
        ("2 h", 7200),
        ("1h 30min", 5400),
        ("2d", 172_800),
        ("1 hour 2 minutes 3 seconds", 3723),
        ("2hr 5sec", 7205),
        ("1week", 604_800),
        (".5min", 30),
        ("0.25 h", 900),
        ("1h 60min", 7200),
        ("2000msec", 2),
        ("3000000us", 3),
        ("1 month", 2_629_800),
        ("1y", 31_557_600),
        ("10 years", 315_576_000),
    ],
)
def test_parse_duration_good(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("5", "needs a unit"),
        ("0", "needs a unit"),
        ("-5m", "'-5m'"),
        ("1.5", "needs a unit"),
        ("5x", "'5x'"),
        ("h", "'h'"),
        ("5M", "months"),  # systemd's months, one key from minutes: refused, and said why
        ("1h 5M", "months"),
        ("5Min", "5min"),  # units are spelt in lower case, as systemd spells them
        ("5mins", "'5mins'"),
        ("1.5s", "whole seconds"),
        ("1500ms", "whole seconds"),
        ("1..5h", "'1..5h'"),
        ("30m1h", "largest to the smallest"),
        ("1h1h", "largest to the smallest"),
        ("1500ms 500ms", "at most once"),
        ("30min 1h", "largest to the smallest"),
        ("11y", "too long"),
        ("3661d", "too long"),
        ("9" * 5000 + "s", "too long"),
        ("١s", "bad duration"),  # a non-ASCII digit
        ("1h,30m", "'1h,30m'"),
    ],
)
def test_parse_duration_bad(text: str, needle: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_duration(text)
    assert_usage_error(exc, needle)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (90, "1m30s"),
        (5400, "1h30m"),
        (172_800, "2d"),
        (604_800, "1w"),
        (691_261, "1w1d1m1s"),
        (0.25, "0.25s"),
        (1.5, "1.5s"),
        (299.6, "5m"),
        (-90, "-1m30s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@FAST
@given(st.integers(min_value=0, max_value=MAX_DURATION_S))
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_duration_refuses_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        format_duration(float("nan"))


# --- zones ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [BERLIN, "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_parse_zone_good(name: str) -> None:
    assert parse_zone(name) == ZoneInfo(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Mars/Olympus_Mons",
        "America",
        "../etc/passwd",
        "Europe/../Europe/Berlin",
        "/etc/localtime",
        "Europe/Berlin/",
        " Europe/Berlin",
        "zone.tab",
        "Europe\\Berlin",
        "Europe/Berlin\x00",
    ],
)
def test_parse_zone_bad(name: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_zone(name)
    assert_usage_error(exc, "time zone")


# --- times ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2026-03-29T09:00:00Z", None, u(2026, 3, 29, 9)),
        ("2026-03-29T09:00:00+02:00", BERLIN, u(2026, 3, 29, 7)),
        ("2026-03-29 09:00", "UTC", u(2026, 3, 29, 9)),
        ("2026-01-15T09:00", BERLIN, u(2026, 1, 15, 8)),
        ("2026-07-15T09:00", BERLIN, u(2026, 7, 15, 7)),
        ("2026-07-15T09:00", NEW_YORK, u(2026, 7, 15, 13)),
        ("2026-03-29", BERLIN, u(2026, 3, 28, 23)),
        # In the gap: shifted forward by the gap (02:30 CET does not exist; 03:30 CEST).
        ("2026-03-29T02:30", BERLIN, u(2026, 3, 29, 1, 30)),
        ("2026-10-04T02:10", LORD_HOWE, u(2026, 10, 3, 15, 40)),
        # In the fold: the first occurrence.
        ("2026-10-25T02:30", BERLIN, u(2026, 10, 25, 0, 30)),
        ("2026-11-01T01:30", NEW_YORK, u(2026, 11, 1, 5, 30)),
        ("2026-04-05T01:45", LORD_HOWE, u(2026, 4, 4, 14, 45)),
    ],
)
def test_parse_time_iso(text: str, zone: str | None, expected: datetime) -> None:
    tz = ZoneInfo(zone) if zone else None
    result = parse_time(text, now=u(2026, 1, 1), tz=tz)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "zone", "now", "expected"),
    [
        ("10:00", "UTC", u(2026, 5, 1, 9), u(2026, 5, 1, 10)),
        ("10:00", "UTC", u(2026, 5, 1, 10), u(2026, 5, 2, 10)),  # strictly after now
        ("10:00", "UTC", u(2026, 5, 1, 11), u(2026, 5, 2, 10)),
        ("9:05:30", "UTC", u(2026, 5, 1, 9, 5, 29), u(2026, 5, 1, 9, 5, 30)),
        ("00:00", BERLIN, u(2026, 5, 1, 12), u(2026, 5, 1, 22)),
        ("23:30", NEW_YORK, u(2026, 5, 1, 12), u(2026, 5, 2, 3, 30)),
        # "tomorrow" crosses the spring-forward night: same wall time, one hour less in between.
        ("12:00", BERLIN, u(2026, 3, 28, 12), u(2026, 3, 29, 10)),
        # A time of day inside tonight's gap is shifted forward by the gap.
        ("02:30", BERLIN, u(2026, 3, 28, 23), u(2026, 3, 29, 1, 30)),
        ("02:00", NEW_YORK, u(2026, 3, 8, 0), u(2026, 3, 8, 7)),
        ("02:15", LORD_HOWE, u(2026, 10, 3, 12), u(2026, 10, 3, 15, 45)),
        # Repeated time: whichever occurrence comes first after now.
        ("02:30", BERLIN, u(2026, 10, 24, 23), u(2026, 10, 25, 0, 30)),
        ("02:50", BERLIN, u(2026, 10, 25, 1, 10), u(2026, 10, 25, 1, 50)),
        ("02:05", BERLIN, u(2026, 10, 25, 1, 10), u(2026, 10, 26, 1, 5)),
        ("01:45", LORD_HOWE, u(2026, 4, 4, 14, 50), u(2026, 4, 4, 15, 15)),
        # 12-hour times: 12am is midnight, 12pm noon.
        ("9am", "UTC", u(2026, 5, 1, 8), u(2026, 5, 1, 9)),
        ("9am", "UTC", u(2026, 5, 1, 10), u(2026, 5, 2, 9)),
        ("9:30pm", "UTC", u(2026, 5, 1, 10), u(2026, 5, 1, 21, 30)),
        ("9:30 PM", "UTC", u(2026, 5, 1, 10), u(2026, 5, 1, 21, 30)),
        ("11:15:30 a.m.", "UTC", u(2026, 5, 1, 10), u(2026, 5, 1, 11, 15, 30)),
        ("12am", "UTC", u(2026, 5, 1, 10), u(2026, 5, 2, 0)),
        ("12pm", "UTC", u(2026, 5, 1, 10), u(2026, 5, 1, 12)),
        ("2:30am", BERLIN, u(2026, 3, 28, 23), u(2026, 3, 29, 1, 30)),  # the gap, as 02:30
    ],
)
def test_parse_time_of_day(text: str, zone: str, now: datetime, expected: datetime) -> None:
    assert parse_time(text, now=now, tz=ZoneInfo(zone)) == expected


@pytest.fixture
def system_zone_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", NEW_YORK)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("system_zone_new_york")
def test_parse_time_defaults_to_the_system_zone() -> None:
    now = u(2026, 3, 7, 12)
    assert parse_time("2026-07-15T09:00", now) == u(2026, 7, 15, 13)
    assert parse_time("2026-03-08T02:30", now) == u(2026, 3, 8, 7, 30)  # gap: forward
    assert parse_time("2026-11-01T01:30", now) == u(2026, 11, 1, 5, 30)  # fold: first
    assert parse_time("02:30", now) == u(2026, 3, 8, 7, 30)
    assert parse_time("08:00", now) == u(2026, 3, 7, 13)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "noon",
        "12",
        "25:00",
        "12:60",
        "12:00:61",
        "1:2",
        "2026-13-01",
        "2026-02-30T10:00",
        "+5m",
    ],
)
def test_parse_time_bad(text: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_time(text, now=u(2026, 1, 1), tz=ZoneInfo("UTC"))
    assert_usage_error(exc, repr(text))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("tomorrow", "bad time 'tomorrow': use HH:MM"),
        ("25:00", "no such time of day; use HH:MM"),
        ("12:60", "no such time of day; use HH:MM"),
        ("13pm", "an am/pm hour is 1 to 12"),
        ("0am", "an am/pm hour is 1 to 12"),
        ("noon", "9am or 9:30pm"),
        ("2026-02-30T10:00", "ISO 8601"),
    ],
)
def test_parse_time_errors_name_the_accepted_forms(text: str, needle: str) -> None:
    # UsageError is a ValueError: it must not be caught again and turned into "out of range".
    with pytest.raises(UsageError) as exc:
        parse_time(text, now=u(2026, 1, 1), tz=ZoneInfo("UTC"))
    assert_usage_error(exc, needle)
    assert "out of range" not in str(exc.value)


def test_parse_time_out_of_range() -> None:
    with pytest.raises(UsageError, match="out of range"):
        parse_time("0001-01-01T00:00", now=u(2026, 1, 1), tz=ZoneInfo("Asia/Tokyo"))


def test_parse_time_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="naive"):
        parse_time("10:00", now=datetime(2026, 1, 1), tz=ZoneInfo("UTC"))


# --- cron parsing --------------------------------------------------------------------------------


def test_parse_cron_fields() -> None:
    spec = parse_cron("*/15 9-17/4 1,15 JAN-mar,Dec mon-FRI")
    assert isinstance(spec, CronSpec)
    assert spec.minutes == (0, 15, 30, 45)
    assert spec.hours == (9, 13, 17)
    assert spec.days == (1, 15)
    assert spec.months == (1, 2, 3, 12)
    assert spec.weekdays == (1, 2, 3, 4, 5)
    assert not spec.dom_star
    assert not spec.dow_star


@pytest.mark.parametrize(
    ("expr", "weekdays"),
    [("0 0 * * 7", (0,)), ("0 0 * * 0,7", (0,)), ("0 0 * * 5-7", (0, 5, 6)), ("0 0 * * *", None)],
)
def test_parse_cron_sunday_is_0_and_7(expr: str, weekdays: tuple[int, ...] | None) -> None:
    assert parse_cron(expr).weekdays == (weekdays or tuple(range(7)))


def test_parse_cron_single_value_with_step_runs_to_the_end() -> None:
    assert parse_cron("5/20 * * * *").minutes == (5, 25, 45)


@pytest.mark.parametrize(
    ("macro", "expanded"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@ANNUALLY", "0 0 1 1 *"),
    ],
)
def test_parse_cron_macros(macro: str, expanded: str) -> None:
    got, want = parse_cron(macro), parse_cron(expanded)
    assert (got.minutes, got.hours, got.days, got.months, got.weekdays) == (
        want.minutes,
        want.hours,
        want.days,
        want.months,
        want.weekdays,
    )
    assert (got.dom_star, got.dow_star) == (want.dom_star, want.dow_star)


@pytest.mark.parametrize(
    ("expr", "needles"),
    [
        ("", ["5 fields", "got 0"]),
        ("* * * *", ["5 fields", "got 4"]),
        ("* * * * * *", ["got 6"]),
        ("60 * * * *", ["minute", "'60'", "0-59"]),
        ("* 24 * * *", ["hour", "0-23"]),
        ("* * 0 * *", ["day-of-month", "1-31"]),
        ("* * 32 * *", ["day-of-month", "'32'"]),
        ("* * * 13 *", ["month", "1-12"]),
        ("* * * * 8", ["day-of-week", "0-7"]),
        ("* * * FOO *", ["month", "'FOO'", "JAN"]),
        ("* * * * MOX", ["day-of-week", "'MOX'", "SUN"]),
        ("* * MON * *", ["day-of-month", "'MON'"]),
        ("5-1 * * * *", ["minute", "backwards"]),
        ("* * * * FRI-MON", ["day-of-week", "backwards"]),
        ("*/0 * * * *", ["minute", "step"]),
        ("*/x * * * *", ["minute", "step"]),
        ("*/99999 * * * *", ["minute", "step"]),
        ("1,,2 * * * *", ["minute", "''"]),
        ("? * * * *", ["minute", "'?'"]),
        ("-1 * * * *", ["minute", "'-1'"]),
        ("1-2-3 * * * *", ["minute"]),
        ("99999999999999 * * * *", ["minute", "out of range"]),
        ("@reboot", ["@reboot", "@daily"]),
        ("@every 5m", ["@every 5m"]),
    ],
)
def test_parse_cron_errors(expr: str, needles: list[str]) -> None:
    with pytest.raises(UsageError) as exc:
        parse_cron(expr)
    assert_usage_error(exc, *needles)


# --- next_due: Once and Every --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "after", "expected"),
    [
        (Once(u(2026, 5, 1, 12)), u(2026, 5, 1, 11), u(2026, 5, 1, 12)),
        (Once(u(2026, 5, 1, 12)), u(2026, 5, 1, 12), None),
        (Once(u(2026, 5, 1, 12)), u(2026, 5, 2), None),
        (Once(local(BERLIN, 2026, 5, 1, 14)), u(2026, 5, 1), u(2026, 5, 1, 12)),
        (Every(60, u(2026, 5, 1, 12)), u(2026, 5, 1), u(2026, 5, 1, 12)),
        (Every(60, u(2026, 5, 1, 12)), u(2026, 5, 1, 12), u(2026, 5, 1, 12, 1)),
        (Every(60, u(2026, 5, 1, 12)), u(2026, 5, 1, 12, 0, 59), u(2026, 5, 1, 12, 1)),
        (Every(60, u(2026, 5, 1, 12)), u(2026, 5, 1, 12, 1), u(2026, 5, 1, 12, 2)),
        (Every(90, u(2026, 5, 1, 12)), u(2026, 5, 1, 13), u(2026, 5, 1, 13, 1, 30)),
        (Every(90, u(2026, 5, 1, 12)), u(2026, 5, 1, 13, 1), u(2026, 5, 1, 13, 1, 30)),
        # Weekly, anchored on a Friday midnight in 2016: ten years later, the next Friday.
        (Every(7 * 86400, u(2016, 1, 1)), u(2026, 1, 1), u(2026, 1, 2)),
        # Every is real elapsed time, unaffected by DST.
        (Every(3600, u(2026, 3, 29)), local(BERLIN, 2026, 3, 29, 1, 30), u(2026, 3, 29, 1)),
    ],
)
def test_next_due_once_every(rule: Rule, after: datetime, expected: datetime | None) -> None:
    result = next_due(rule, after)
    assert result == expected
    if result is not None:
        assert result.tzinfo is UTC


def test_every_after_a_ten_year_outage_is_instant() -> None:
    rule = Every(1, u(2016, 1, 1))
    after = datetime(2026, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)
    started = time.perf_counter()
    result = next_due(rule, after)
    elapsed = time.perf_counter() - started
    assert result == u(2026, 1, 1, 0, 0, 1)
    assert elapsed < 0.05


def test_every_refuses_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        next_due(Every(0, u(2026, 1, 1)), u(2026, 1, 2))


def test_every_past_year_9999_is_none() -> None:
    assert next_due(Every(20 * 365 * 86400, u(9990, 1, 1)), u(9999, 6, 1)) is None


def test_next_due_refuses_a_naive_after() -> None:
    with pytest.raises(ValueError, match="naive"):
        next_due(Every(60, u(2026, 1, 1)), datetime(2026, 1, 1))


# --- next_due: cron ------------------------------------------------------------------------------

CRON_CASES: list[tuple[str, str, datetime, datetime]] = [
    ("*/15 * * * *", "UTC", u(2026, 1, 1, 10, 7), u(2026, 1, 1, 10, 15)),
    ("*/15 * * * *", "UTC", u(2026, 1, 1, 10, 15), u(2026, 1, 1, 10, 30)),
    ("*/15 * * * *", "UTC", u(2026, 1, 1, 10, 14, 59), u(2026, 1, 1, 10, 15)),
    ("* * * * *", "UTC", u(2026, 1, 1, 23, 59, 30), u(2026, 1, 2)),
    ("0 0 * * *", "UTC", u(2026, 1, 31, 23, 59, 59), u(2026, 2, 1)),
    ("59 23 31 12 *", "UTC", u(2026, 12, 31, 23, 59), u(2027, 12, 31, 23, 59)),
    ("0 0 1 1 *", "UTC", u(2026, 12, 31, 23, 59), u(2027, 1, 1)),
    ("@yearly", "UTC", u(2026, 1, 1), u(2027, 1, 1)),
    ("@monthly", "UTC", u(2026, 1, 31, 12), u(2026, 2, 1)),
    ("@weekly", "UTC", u(2026, 6, 1), u(2026, 6, 7)),  # 2026-06-01 is a Monday
    ("@hourly", "UTC", u(2026, 6, 1, 5, 0, 1), u(2026, 6, 1, 6)),
    ("0 0 1 JAN,JUL *", "UTC", u(2026, 2, 1), u(2026, 7, 1)),
    ("0 0 29 2 *", "UTC", u(2026, 3, 1), u(2028, 2, 29)),
    ("0 0 31 * *", "UTC", u(2026, 4, 1), u(2026, 5, 31)),
    ("5/20 * * * *", "UTC", u(2026, 1, 1, 10, 30), u(2026, 1, 1, 10, 45)),
    ("0 0 * * 7", "UTC", u(2026, 6, 1), u(2026, 6, 7)),
    ("30 4 * * SAT", "UTC", u(2026, 6, 6, 4, 30), u(2026, 6, 13, 4, 30)),
    ("0 9 * * 1-5", BERLIN, u(2026, 1, 2, 8), u(2026, 1, 5, 8)),  # Fri 09:00 CET -> Mon
    ("0 9 * * MON-FRI", BERLIN, u(2026, 7, 3, 7), u(2026, 7, 6, 7)),  # CEST
    ("0 22 * * *", NEW_YORK, u(2026, 7, 1), u(2026, 7, 1, 2)),  # 22:00 EDT on June 30
    ("30 9 * * *", "Asia/Kolkata", u(2026, 7, 1), u(2026, 7, 1, 4)),
    # Vixie: both day fields restricted, so either one matching is enough.
    ("0 12 1 * MON", "UTC", u(2026, 6, 1, 12), u(2026, 6, 8, 12)),
    ("0 12 1 * MON", "UTC", u(2026, 6, 27), u(2026, 6, 29, 12)),
    ("0 12 1 * MON", "UTC", u(2026, 6, 30, 13), u(2026, 7, 1, 12)),
    ("0 0 30 2 MON", "UTC", u(2026, 1, 1), u(2026, 2, 2)),
    # Vixie: a day field starting with "*" counts as unrestricted, so both must match.
    ("0 0 */2 * MON", "UTC", u(2026, 6, 1), u(2026, 6, 15)),
    # Europe/Berlin, clocks jump 02:00 CET -> 03:00 CEST on 2026-03-29 (01:00Z).
    ("30 2 * * *", BERLIN, u(2026, 3, 28, 2), u(2026, 3, 29, 1, 30)),
    ("30 2 * * *", BERLIN, u(2026, 3, 29, 1, 30), u(2026, 3, 30, 0, 30)),
    ("*/15 * * * *", BERLIN, u(2026, 3, 29, 0, 50), u(2026, 3, 29, 1)),
    ("0 3 * * *", BERLIN, u(2026, 3, 28, 12), u(2026, 3, 29, 1)),
    # Europe/Berlin, clocks fall back 03:00 CEST -> 02:00 CET on 2026-10-25 (01:00Z).
    ("30 2 * * *", BERLIN, u(2026, 10, 24, 12), u(2026, 10, 25, 0, 30)),
    ("30 2 * * *", BERLIN, u(2026, 10, 25, 0, 30), u(2026, 10, 26, 1, 30)),
    ("*/15 * * * *", BERLIN, u(2026, 10, 25, 0, 45), u(2026, 10, 25, 2)),
    ("*/15 * * * *", BERLIN, u(2026, 10, 25, 1, 20), u(2026, 10, 25, 2)),
    # America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    ("0 2 * * *", NEW_YORK, u(2026, 3, 7, 12), u(2026, 3, 8, 7)),
    ("0 2 * * *", NEW_YORK, u(2026, 3, 8, 7), u(2026, 3, 9, 6)),
    ("0 2 * * *", NEW_YORK, u(2026, 10, 31, 12), u(2026, 11, 1, 7)),
    ("30 1 * * *", NEW_YORK, u(2026, 10, 31, 12), u(2026, 11, 1, 5, 30)),
    ("30 1 * * *", NEW_YORK, u(2026, 11, 1, 5, 30), u(2026, 11, 2, 6, 30)),
    # Australia/Lord_Howe: 2026-10-04 02:00 (+10:30) -> 02:30 (+11), a 30-minute gap ...
    ("0 2 * * *", LORD_HOWE, u(2026, 10, 3), u(2026, 10, 3, 15, 30)),
    ("0 2 * * *", LORD_HOWE, u(2026, 10, 3, 15, 30), u(2026, 10, 4, 15)),
    ("15 2 * * *", LORD_HOWE, u(2026, 10, 3), u(2026, 10, 3, 15, 45)),
    ("20,35 2 * * *", LORD_HOWE, u(2026, 10, 3), u(2026, 10, 3, 15, 35)),
    ("20,35 2 * * *", LORD_HOWE, u(2026, 10, 3, 15, 35), u(2026, 10, 3, 15, 50)),
    ("20,35 2 * * *", LORD_HOWE, u(2026, 10, 3, 15, 50), u(2026, 10, 4, 15, 20)),
    ("10 * * * *", LORD_HOWE, u(2026, 10, 3, 14, 40), u(2026, 10, 3, 16, 10)),
    # ... and 2026-04-05 02:00 (+11) -> 01:30 (+10:30), a 30-minute fold.
    ("45 1 * * *", LORD_HOWE, u(2026, 4, 4), u(2026, 4, 4, 14, 45)),
    ("45 1 * * *", LORD_HOWE, u(2026, 4, 4, 14, 45), u(2026, 4, 5, 15, 15)),
    ("*/15 * * * *", LORD_HOWE, u(2026, 4, 4, 14, 45), u(2026, 4, 4, 15, 30)),
]


@pytest.mark.parametrize(("expr", "zone", "after", "expected"), CRON_CASES)
def test_next_due_cron(expr: str, zone: str, after: datetime, expected: datetime) -> None:
    result = next_due(Cron(expr, zone), after)
    assert result == expected
    assert result is not None
    assert result.tzinfo is UTC


def test_cron_gap_slots_of_one_job_each_fire_once() -> None:
    rule = Cron("*/15 2 * * *", BERLIN)
    got = list(chain(rule, u(2026, 3, 28, 23), 5))
    assert got == [
        u(2026, 3, 29, 1),
        u(2026, 3, 29, 1, 15),
        u(2026, 3, 29, 1, 30),
        u(2026, 3, 29, 1, 45),
        u(2026, 3, 30, 0),
    ]


def test_cron_gap_slot_landing_on_a_real_slot_fires_once() -> None:
    rule = Cron("30 2,3 * * *", BERLIN)
    assert list(chain(rule, u(2026, 3, 28, 23), 2)) == [
        u(2026, 3, 29, 1, 30),
        u(2026, 3, 30, 0, 30),
    ]


def test_cron_repeated_hour_fires_each_wall_time_once() -> None:
    rule = Cron("*/15 * * * *", BERLIN)
    got = list(chain(rule, u(2026, 10, 24, 23, 50), 6))
    walls = [t.astimezone(ZoneInfo(BERLIN)).strftime("%H:%M%z") for t in got]
    # 02:00-02:45 CEST, then straight on to 03:00 CET: the repeated 02:xx CET slots are skipped.
    assert walls == [
        "02:00+0200",
        "02:15+0200",
        "02:30+0200",
        "02:45+0200",
        "03:00+0100",
        "03:15+0100",
    ]
    assert got[4] - got[3] == timedelta(minutes=75)


@pytest.mark.parametrize(
    "expr", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *", "* * 30,31 FEB *", "0 0 31 2 */2"]
)
def test_impossible_cron_is_none_and_quick(expr: str) -> None:
    started = time.perf_counter()
    assert next_due(Cron(expr, BERLIN), u(2026, 1, 1)) is None
    assert time.perf_counter() - started < 0.05


def test_cron_near_the_end_of_time_is_none() -> None:
    assert next_due(Cron("0 0 1 1 *", NEW_YORK), u(9999, 6, 1)) is None


def test_cron_with_an_unknown_zone_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="Mars/Base"):
        next_due(Cron("* * * * *", "Mars/Base"), u(2026, 1, 1))


# --- next_due against a minute-by-minute oracle around each DST transition ------------------------


def oracle(expr: str, zone_name: str, first_day: date, days: int) -> list[datetime]:
    """Every occurrence, by brute force over each wall minute, under the documented DST policy."""
    spec, zone = parse_cron(expr), ZoneInfo(zone_name)
    found: set[datetime] = set()
    wall = datetime.combine(first_day, datetime.min.time())
    for _ in range(days * 1440):
        dom_ok = wall.day in spec.days
        dow_ok = wall.isoweekday() % 7 in spec.weekdays
        day_ok = (dom_ok and dow_ok) if spec.dom_star or spec.dow_star else (dom_ok or dow_ok)
        if (
            day_ok
            and wall.month in spec.months
            and wall.hour in spec.hours
            and wall.minute in spec.minutes
        ):
            # zoneinfo's fold=0 is the first occurrence, or for a missing time the shifted one.
            instant = wall.replace(tzinfo=zone).astimezone(UTC)
            exists = instant.astimezone(zone).replace(tzinfo=None) == wall
            if exists or len(spec.hours) < 24:
                found.add(instant)
        wall += timedelta(minutes=1)
    return sorted(found)


TRANSITIONS = [
    (BERLIN, date(2026, 3, 29)),
    (BERLIN, date(2026, 10, 25)),
    (NEW_YORK, date(2026, 3, 8)),
    (NEW_YORK, date(2026, 11, 1)),
    (LORD_HOWE, date(2026, 4, 5)),
    (LORD_HOWE, date(2026, 10, 4)),
]
ORACLE_EXPRS = [
    "*/15 * * * *",
    "10 * * * *",
    "30 2 * * *",
    "0 2 * * *",
    "45 1 * * *",
    "20,35 2 * * *",
    "*/10 1-3 * * *",
    "* 2 * * *",
    "0,30 2,3 * * *",
]


@pytest.mark.parametrize(("zone", "day"), TRANSITIONS)
def test_next_due_matches_the_oracle_around_dst(zone: str, day: date) -> None:
    for expr in ORACLE_EXPRS:
        expected = oracle(expr, zone, day - timedelta(days=1), 3)
        rule = Cron(expr, zone)
        # Probe just before, at and just after every occurrence, plus a regular grid.
        probes = [t + d for t in expected for d in (-timedelta(microseconds=1), timedelta(0))]
        start = expected[0]
        probes += [start + timedelta(minutes=7, seconds=13) * i for i in range(400)]
        for after in probes:
            if after >= expected[-1]:
                continue
            want = next(t for t in expected if t > after)
            assert next_due(rule, after) == want, (expr, zone, after)


# --- properties ----------------------------------------------------------------------------------

AFTERS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)


@st.composite
def cron_fields(draw: st.DrawFn, low: int, high: int) -> str:
    def item() -> str:
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        step = draw(st.integers(1, high - low + 1))
        return draw(st.sampled_from(["*", f"*/{step}", f"{a}", f"{a}-{b}", f"{a}-{b}/{step}"]))

    return ",".join(item() for _ in range(draw(st.integers(1, 3))))


CRON_EXPRS = st.tuples(
    cron_fields(0, 59),
    cron_fields(0, 23),
    cron_fields(1, 31),
    cron_fields(1, 12),
    cron_fields(0, 7),
).map(" ".join)


@FAST
@given(expr=CRON_EXPRS, zone=st.sampled_from(ZONES), after=AFTERS, fraction=st.floats(0, 1))
def test_cron_properties(expr: str, zone: str, after: datetime, fraction: float) -> None:
    rule = Cron(expr, zone)
    result = next_due(rule, after)
    if result is None:
        assert not parse_cron(expr).possible
        return
    assert result > after
    assert result.tzinfo is UTC
    # Asking again from anywhere before the answer gives the same answer.
    between = after + (result - after) * fraction
    if between < result:
        assert next_due(rule, between) == result
    following = next_due(rule, result)
    assert following is not None
    assert following > result


@FAST
@given(
    expr=st.sampled_from([*ORACLE_EXPRS, "0 9 * * 1-5", "@daily", "0 0 1 * MON"]),
    zone=st.sampled_from(ZONES),
    after=AFTERS,
)
def test_cron_chain_strictly_increases(expr: str, zone: str, after: datetime) -> None:
    results = list(chain(Cron(expr, zone), after, 30))
    assert all(a < b for a, b in zip([after, *results], results, strict=False))


@FAST
@given(
    interval=st.integers(1, 10 * 366 * 86400),
    anchor=AFTERS,
    after=AFTERS,
)
def test_every_properties(interval: int, anchor: datetime, after: datetime) -> None:
    rule = Every(interval, anchor)
    result = next_due(rule, after)
    assert result is not None
    assert result > after
    assert (result - anchor) % timedelta(seconds=interval) == timedelta(0)
    assert result == anchor or result - timedelta(seconds=interval) <= after
    assert next_due(rule, result) == result + timedelta(seconds=interval)


# --- descriptions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (Every(1800, u(2026, 1, 1)), "every 30m"),
        (Every(5400, u(2026, 1, 1)), "every 1h30m"),
        (Cron("0 9 * * 1-5", BERLIN), "cron '0 9 * * 1-5' Europe/Berlin"),
        (Once(u(2026, 3, 29, 9)), "once at 2026-03-29T09:00:00Z"),
        (Once(local(BERLIN, 2026, 3, 29, 9)), "once at 2026-03-29T07:00:00Z"),
    ],
)
def test_rule_to_text(rule: Rule, text: str) -> None:
    assert rule_to_text(rule) == text
