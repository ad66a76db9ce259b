"""What a person types (issue 17, item 4): systemd time spans for durations, and `--at` times
whose errors say what is accepted. Through cli.main in process, as the other CLI tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asched.core.models import Once
from tests.cliharness import assert_usage_error, stored

pytestmark = pytest.mark.usefixtures("wakes")  # tests/cliharness.py


@pytest.mark.parametrize(
    ("span", "seconds"),
    [
        ("30min", 1800),
        ("1.5h", 5400),
        ("2 h", 7200),
        ("1h 30min", 5400),
        ("90s", 90),
        ("2d", 172_800),
        ("1w", 604_800),
    ],
)
def test_add_in_takes_systemd_time_spans(run: Any, state: Path, span: str, seconds: int) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    result = run("add", "work:0", "hello", "--in", span)
    after = datetime.now(UTC)
    assert result.code == 0, result
    (checkin,) = stored(state)
    assert isinstance(checkin.rule, Once) and checkin.next_due is not None
    delay = timedelta(seconds=seconds)
    assert before + delay <= checkin.next_due <= after + delay


def test_every_next_and_policies_take_them_too(run: Any, state: Path) -> None:
    result = run("add", "work:0", "hourly", "--every", "1 hour", "--grace", "2min", "--json")
    assert result.code == 0, result
    assert '"interval_s": 3600' in result.out and '"grace_s": 120.0' in result.out
    nxt = run("next", "1.5h", "later", "--target", "work:1")
    assert nxt.code == 0, nxt
    assert ": in 1h 30m, at " in nxt.out


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("tomorrow", "--at: bad time 'tomorrow': use HH:MM or HH:MM:SS (24-hour), 9am or 9:30pm"),
        ("25:00", "--at: bad time '25:00': no such time of day; use HH:MM"),
        ("13pm", "--at: bad time '13pm': an am/pm hour is 1 to 12"),
    ],
)
def test_at_errors_say_the_accepted_forms(run: Any, state: Path, value: str, says: str) -> None:
    result = run("add", "work:0", "hello", "--at", value)
    assert_usage_error(result)
    assert result.err.startswith(f"asched: {says}"), result.err
    assert "out of range" not in result.err
    assert not state.exists()


@pytest.mark.parametrize(("value", "hour", "minute"), [("9am", 9, 0), ("9:30pm", 21, 30)])
def test_at_takes_am_and_pm(run: Any, state: Path, value: str, hour: int, minute: int) -> None:
    result = run("add", "work:0", "hello", "--at", value)
    assert result.code == 0, result
    (checkin,) = stored(state)
    due = checkin.next_due
    assert due is not None and datetime.now(UTC) < due <= datetime.now(UTC) + timedelta(days=1)
    local = due.astimezone()
    assert (local.hour, local.minute, local.second) == (hour, minute, 0)


def test_help_lists_the_accepted_forms(run: Any) -> None:
    add = run("add", "--help", state_dir=None).out
    for form in ("1.5h", "1h 30min", "2 h", "5min", "9am", "9:30pm"):
        assert form in add, form
    assert "systemd.time(7)" in add and "ISO 8601" in add
    assert "1.5h" in run("next", "--help", state_dir=None).out
