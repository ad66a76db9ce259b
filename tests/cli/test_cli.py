"""The data commands (add, ls, rm, pause, resume, history), mostly in process through cli.main."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asched.cli.main import main
from asched.cli.views import cell_width, duration_text, truncate
from asched.core.models import CheckIn, Cron, Every, Once
from asched.core.paths import DB_NAME
from asched.core.states import DeliveryState
from asched.core.zones import local_zone_name, zone_from_path
from asched.store.store import Store
from tests.cliharness import asched_process, assert_usage_error, stored

pytestmark = pytest.mark.usefixtures("wakes")  # tests/cliharness.py


CHECKIN_FIELDS = {
    "id", "key", "target", "message", "rule", "rule_text", "next_due", "last_due", "paused",
    "grace_s", "catch_up", "jitter_s", "remaining", "until", "origin", "created_at", "updated_at",
    "idle_s", "idle_wait",
}  # fmt: skip
DELIVERY_FIELDS = {
    "id", "checkin_id", "target", "pane", "due_at", "state", "reason", "late", "attempts",
    "started_at", "finished_at", "confirmed_at", "tries", "message",
}  # fmt: skip
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")


def only(state: Path) -> CheckIn:
    (checkin,) = stored(state)
    return checkin


def now() -> datetime:
    return datetime.now(UTC)


# -- add: every form and what it stores ----------------------------------------------------------


def test_add_in(run: Any, state: Path, wakes: list[Path]) -> None:
    before = now().replace(microsecond=0)
    result = run("add", "work:0.1", "status report please", "--in", "30m")
    after = now()
    assert result.code == 0, result
    assert re.fullmatch(
        r"added check-in 1 for work:0\.1, next \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(in 30m\)\n",
        result.out,
    )
    c = only(state)
    assert isinstance(c.rule, Once)
    assert c.next_due == c.rule.at
    assert before + timedelta(minutes=30) <= c.next_due <= after + timedelta(minutes=30)
    assert (c.target, c.message, c.key) == ("work:0.1", "status report please", None)
    assert not c.paused
    assert (c.grace_s, c.catch_up.value, c.jitter_s, c.remaining, c.until) == (
        300.0, "skip", 0.0, None, None,
    )  # fmt: skip
    assert wakes == [state]


def test_add_at_iso_utc_a_day_ahead(run: Any, state: Path) -> None:
    at = (now() + timedelta(days=1)).replace(microsecond=0)
    text = at.isoformat().replace("+00:00", "Z")
    result = run("add", "work:0", "hello", "--at", text, "--json")
    assert result.code == 0, result
    data = json.loads(result.out)
    assert data["rule"] == {"kind": "once", "at": text}
    assert data["next_due"] == text
    assert only(state).next_due == at


def test_add_at_iso_without_offset_is_local_time(run: Any, state: Path) -> None:
    wall = (datetime.now() + timedelta(days=1)).replace(microsecond=0)
    assert run("add", "work:0", "hello", "--at", wall.isoformat()).code == 0
    assert only(state).next_due == wall.astimezone().astimezone(UTC)


def test_add_at_iso_in_zone(run: Any, state: Path) -> None:
    day = (now() + timedelta(days=2)).date()
    result = run("add", "work:0", "hi", "--at", f"{day}T09:00", "--tz", "Asia/Tokyo")
    assert result.code == 0, result
    expected = datetime(day.year, day.month, day.day, 9, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert only(state).next_due == expected.astimezone(UTC)


def test_add_at_clock_time_is_within_a_day(run: Any, state: Path) -> None:
    wall = (datetime.now().astimezone() + timedelta(hours=3)).replace(second=0, microsecond=0)
    assert run("add", "work:0", "hello", "--at", wall.strftime("%H:%M")).code == 0
    due = only(state).next_due
    assert due is not None
    assert now() < due <= now() + timedelta(hours=24)
    local = due.astimezone()
    assert (local.hour, local.minute, local.second) == (wall.hour, wall.minute, 0)


def test_add_every_starts_one_interval_from_now(run: Any, state: Path) -> None:
    before = now().replace(microsecond=0)
    result = run("add", "work:0", "tick", "--every", "30m", "--json")
    assert result.code == 0, result
    c = only(state)
    assert isinstance(c.rule, Every)
    assert c.rule.interval_s == 1800
    assert c.next_due == c.rule.anchor
    assert before + timedelta(minutes=30) <= c.next_due <= now() + timedelta(minutes=30)
    data = json.loads(result.out)
    assert data["rule"] == {"kind": "every", "interval_s": 1800, "anchor": data["next_due"]}
    assert data["rule_text"] == "every 30m"


def test_add_every_with_in_and_count(run: Any, state: Path) -> None:
    before = now().replace(microsecond=0)
    assert run("add", "work:0", "tick", "--every", "1h", "--in", "5m", "--count", "3").code == 0
    c = only(state)
    assert isinstance(c.rule, Every)
    assert c.rule.interval_s == 3600
    assert c.next_due == c.rule.anchor
    assert before + timedelta(minutes=5) <= c.rule.anchor <= now() + timedelta(minutes=5)
    assert c.remaining == 3


def test_add_every_with_at_and_until(run: Any, state: Path) -> None:
    at = (now() + timedelta(days=1)).replace(microsecond=0)
    until = at + timedelta(hours=5)
    result = run(
        "add", "work:0", "tick", "--every", "1h30m", "--at", at.isoformat(),
        "--until", until.isoformat(),
    )  # fmt: skip
    assert result.code == 0, result
    c = only(state)
    assert c.rule == Every(5400, at)
    assert (c.next_due, c.until) == (at, until)


def test_add_cron_with_zone(run: Any, state: Path) -> None:
    start = now()
    result = run("add", "work:0", "review", "--cron", "0 9 * * MON", "--tz", "Europe/Berlin")
    assert result.code == 0, result
    c = only(state)
    assert c.rule == Cron("0 9 * * MON", "Europe/Berlin")
    assert c.next_due is not None
    assert start < c.next_due <= start + timedelta(days=7)
    wall = c.next_due.astimezone(ZoneInfo("Europe/Berlin"))
    assert (wall.weekday(), wall.hour, wall.minute) == (0, 9, 0)


def test_add_cron_defaults_to_local_zone(
    run: Any, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    result = run("add", "work:0", "daily", "--cron", "30 8 * * *", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["rule"] == {
        "kind": "cron", "expr": "30 8 * * *", "tz": "America/New_York",
    }  # fmt: skip
    assert only(state).rule == Cron("30 8 * * *", "America/New_York")


def test_add_policy_options(run: Any, state: Path) -> None:
    result = run(
        "add", "work:0", "tick", "--every", "10m", "--grace", "1m30s", "--catch-up", "once",
        "--jitter", "20s",
    )  # fmt: skip
    assert result.code == 0, result
    c = only(state)
    assert (c.grace_s, c.catch_up.value, c.jitter_s) == (90.0, "once", 20.0)


def test_add_canonicalizes_target(run: Any, state: Path) -> None:
    assert run("add", "work:=3", "named window 3", "--in", "1m").code == 0
    assert run("add", "%12", "by pane id", "--in", "1m").code == 0
    assert {c.target for c in stored(state)} == {"work:=3", "%12"}


def test_add_json_fields(run: Any) -> None:
    result = run("add", "work:0.1", "hi", "--in", "90s", "--key", "k1", "--json")
    assert result.code == 0, result
    data = json.loads(result.out)
    assert set(data) == CHECKIN_FIELDS | {"replaced"}
    assert data["replaced"] is False
    assert (data["id"], data["key"], data["target"], data["message"]) == (1, "k1", "work:0.1", "hi")
    assert data["rule"]["kind"] == "once"
    assert data["last_due"] is None and data["until"] is None
    for field in ("next_due", "created_at", "updated_at"):
        assert ISO_Z.fullmatch(data[field]), data[field]


def test_key_upsert_replaces(run: Any, state: Path, wakes: list[Path]) -> None:
    first = run("add", "work:0.1", "first", "--in", "10m", "--key", "next")
    assert first.out.startswith("added check-in 1 ")
    second = run("add", "work:2", "second", "--every", "1h", "--key", "next", "--json")
    assert second.code == 0, second
    assert json.loads(second.out)["replaced"] is True
    c = only(state)
    assert (c.id, c.key, c.message, c.target) == (1, "next", "second", "work:2")
    assert isinstance(c.rule, Every)
    third = run("add", "work:2", "third", "--in", "1m", "--key", "next")
    assert third.out.startswith("replaced check-in 1 for work:2, next ")
    assert only(state).message == "third"
    assert len(wakes) == 3


def test_state_dir_from_environment(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_state = tmp_path / "from-env"
    monkeypatch.setenv("ASCHED_STATE_DIR", str(env_state))
    assert run("add", "work:0", "hi", "--in", "1m", state_dir=None).code == 0
    assert only(env_state).message == "hi"
    assert "1 check-in listed." in run("ls", state_dir=None).out


# -- ls ------------------------------------------------------------------------------------------


def finish(state: Path, checkin_id: int) -> None:
    """Deliver a one-shot check-in's only occurrence, as the daemon would."""
    with Store.open(state / DB_NAME) as store:
        c = store.get_checkin(checkin_id)
        assert c is not None and c.next_due is not None
        d = store.claim(checkin_id, c.next_due, None)
        assert d is not None
        store.transition(d.id, DeliveryState.TYPING, pane="%7")
        store.transition(d.id, DeliveryState.TYPED)
        store.transition(d.id, DeliveryState.SUBMITTED)
        store.transition(d.id, DeliveryState.VERIFIED)


def test_ls_table(run: Any, state: Path) -> None:
    run("add", "work:0.1", "status report please", "--in", "5m")
    run("add", "work:2", "hourly", "--every", "1h", "--count", "4", "--key", "hr")
    run("add", "work:3", "paused one", "--in", "2h")
    run("pause", "3")
    result = run("ls")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split() == ["ID", "NEXT", "LEFT", "LAST", "TARGET", "RULE", "KEY", "MESSAGE"]
    assert lines[1].split()[0] == "1" and lines[1].endswith("status report please")
    assert re.search(r" (5m|4m \d+s) ", lines[1]) and " once " in lines[1]
    assert "every 1h, 4 left" in lines[2] and " hr " in lines[2]
    assert "paused" in lines[3]
    assert lines[-3:] == [
        "",
        "3 check-ins listed.",
        "Paused: work:3 (all 1). Resume a target with: asched resume --target TARGET",
    ]
    due = only_due(state, 1)
    assert due in lines[1]  # local time, as in `date`


def only_due(state: Path, checkin_id: int) -> str:
    (c,) = [c for c in stored(state) if c.id == checkin_id]
    assert c.next_due is not None
    return c.next_due.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def test_ls_hides_finished_unless_all(run: Any, state: Path) -> None:
    run("add", "work:0", "will be done", "--in", "1m")
    run("add", "work:1", "still due", "--in", "1h")
    finish(state, 1)
    result = run("ls")
    assert "still due" in result.out and "will be done" not in result.out
    assert "KEY" not in result.out  # no key column when nobody uses keys
    assert result.out.endswith("1 check-in listed. Pass --all to see 1 finished one too.\n")
    everything = run("ls", "--all")
    done_line = next(line for line in everything.out.splitlines() if "will be done" in line)
    assert "done" in done_line and " ago " in done_line  # LEFT "done", LAST "... ago"
    assert everything.out.endswith("2 check-ins listed.\n")
    assert [c["id"] for c in json.loads(run("ls", "--all", "--json").out)] == [2, 1]
    assert [c["id"] for c in json.loads(run("ls", "--json").out)] == [2]


def test_ls_truncates_to_terminal_width(
    run: Any, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = "a long message " * 20
    run("add", "work:0", message, "--in", "1m")
    monkeypatch.setenv("COLUMNS", "100")
    lines = run("ls").out.splitlines()
    assert lines[1].endswith("…")
    assert max(cell_width(line) for line in lines) == 100
    assert message.strip() in run("ls", "--full").out  # -l/--full: never shortened
    monkeypatch.delenv("COLUMNS")
    assert message.strip() in run("ls").out  # not a terminal: never shortened


def test_ls_shows_multiline_messages_on_one_line(run: Any) -> None:
    run("add", "work:0", "line one\nline two", "--in", "1m")
    assert "line one↵line two" in run("ls").out


def test_ls_target_filter_and_json(run: Any) -> None:
    run("add", "work:0.1", "a", "--in", "1m")
    run("add", "work:1", "b", "--in", "2m")
    result = run("ls", "--target", "work:0.1", "--json")
    data = json.loads(result.out)
    assert [d["message"] for d in data] == ["a"]
    assert set(data[0]) == CHECKIN_FIELDS
    assert "1 check-in listed." in run("ls", "--target", "work:1").out


def test_target_filters_accept_any_spelling(run: Any, state: Path) -> None:
    run("add", "work:0.1", "a", "--in", "1m")
    run("add", "work:=abc", "b", "--in", "2m")
    run("add", "work:2", "c", "--in", "3m")

    def listed(spelling: str) -> list[str]:
        return [d["message"] for d in json.loads(run("ls", "--target", spelling, "--json").out)]

    assert listed("work:00.01") == listed("work:0.1") == ["a"]
    assert listed("work:abc") == listed("work:=abc") == ["b"]
    finish(state, 1)
    for spelling in ("work:0.1", "work:0.001", "work:000.1"):
        rows = json.loads(run("history", "--target", spelling, "--json").out)
        assert [d["checkin_id"] for d in rows] == [1]
    assert json.loads(run("history", "--target", "work:0", "--json").out) == []


def test_pause_and_resume_a_target(run: Any, state: Path, wakes: list[Path]) -> None:
    run("add", "work:0.1", "a", "--every", "5m")
    run("add", "work:0.1", "b", "--in", "1h")
    run("add", "work:2", "other target", "--in", "1h")
    run("pause", "2")
    assert run("pause", "--target", "work:00.01").out == (
        "paused 1 check-in for work:0.1 (1 already paused)\n"
    )
    assert [c.paused for c in stored(state)] == [True, True, False]
    assert run("pause", "--target", "work:0.1").out == (
        "all 2 check-ins for work:0.1 are already paused\n"
    )
    listing = run("ls").out
    assert "Paused: work:0.1 (all 2)." in listing and "work:2" not in listing.splitlines()[-1]
    resumed = run("resume", "--target", "work:0.1")
    assert re.fullmatch(
        r"resumed 2 check-ins for work:0\.1, next .* \(in (5m|4m \d+s)\)\n", resumed.out
    )
    assert [c.paused for c in stored(state)] == [False, False, False]
    assert "Paused" not in run("ls").out
    assert run("resume", "--target", "work:0.1").out == (
        "none of the 2 check-ins for work:0.1 is paused\n"
    )
    data = json.loads(run("pause", "--target", "work:2", "--json").out)
    assert (data["target"], data["paused"], data["changed"]) == ("work:2", True, 1)
    assert [c["message"] for c in data["checkins"]] == ["other target"]
    assert run("resume", "--target", "work:2").out.startswith("resumed 1 check-in for work:2")
    assert run("pause", "--target", "work:2").out == "paused 1 check-in for work:2\n"
    assert run("pause", "--target", "work:2").out == "the check-in for work:2 is already paused\n"
    run("pause", "1")
    assert run("resume", "--target", "work:0.1").out.startswith(
        "resumed 1 check-in for work:0.1 (1 was not paused), next "
    )
    assert len(wakes) == 3 + 11


def test_read_only_commands_create_nothing(run: Any, state: Path) -> None:
    assert run("ls").out == "0 check-ins listed.\n"
    assert json.loads(run("ls", "--json").out) == []
    assert run("history").out == "0 deliveries listed.\n"
    assert json.loads(run("history", "3", "--json").out) == []
    assert not state.exists()
    state.mkdir(mode=0o700)
    assert run("ls", "--all").code == 0
    assert list(state.iterdir()) == []


# -- rm, pause, resume ---------------------------------------------------------------------------


def test_rm_by_id_and_key(run: Any, state: Path, wakes: list[Path]) -> None:
    run("add", "work:0", "a", "--in", "1m")
    run("add", "work:0", "b", "--in", "1m", "--key", "kb")
    assert run("rm", "1").out == "removed check-in 1 for work:0\n"
    removed = run("rm", "--key", "kb", "--json")
    assert json.loads(removed.out)["message"] == "b"
    assert stored(state) == []
    assert len(wakes) == 4
    assert_usage_error(run("rm", "1"))


def test_pause_and_resume(run: Any, state: Path, wakes: list[Path]) -> None:
    run("add", "work:0", "a", "--every", "5m", "--key", "k")
    assert run("pause", "1").out == "paused check-in 1 for work:0\n"
    assert only(state).paused
    assert run("pause", "--key", "k").out == "check-in 1 for work:0 is already paused\n"
    resumed = run("resume", "1")
    expected = r"resumed check-in 1 for work:0, next .* \(in (5m|4m \d+s)\)\n"
    assert re.fullmatch(expected, resumed.out)
    assert not only(state).paused
    again = run("resume", "--key", "k", "--json")
    assert json.loads(again.out)["paused"] is False
    assert run("resume", "1").out == "check-in 1 for work:0 is not paused\n"
    assert run("pause", "1", "--json").code == 0
    assert only(state).paused
    assert len(wakes) == 7


# -- history -------------------------------------------------------------------------------------


def test_history(run: Any, state: Path) -> None:
    run("add", "work:0.1", "delivered", "--in", "1m")
    run("add", "work:2", "skipped", "--every", "1h")
    finish(state, 1)
    with Store.open(state / DB_NAME) as store:
        c = store.get_checkin(2)
        assert c is not None and c.next_due is not None
        store.claim(
            2, c.next_due, c.next_due + timedelta(hours=1),
            state=DeliveryState.SKIPPED, reason="missed by 2h (grace 5m)",
        )  # fmt: skip
    result = run("history")
    lines = result.out.splitlines()
    header = ["ID", "DUE", "CHECK-IN", "TARGET", "PANE", "STATE", "TRIES", "REASON", "MESSAGE"]
    assert lines[0].split() == header
    assert "skipped" in lines[1] and lines[1].endswith("missed by 2h (grace 5m)  skipped")
    assert "verified" in lines[2] and "%7" in lines[2] and "work:0.1" in lines[2]
    assert lines[-1] == "2 deliveries listed."
    data = json.loads(run("history", "--json").out)
    assert [d["checkin_id"] for d in data] == [2, 1]
    assert all(set(d) == DELIVERY_FIELDS for d in data)
    verified = data[1]
    assert (verified["state"], verified["pane"]) == ("verified", "%7")
    assert verified["target"] == "work:0.1"
    assert ISO_Z.fullmatch(verified["due_at"]) and ISO_Z.fullmatch(verified["finished_at"])
    assert [d["id"] for d in json.loads(run("history", "1", "--json").out)] == [verified["id"]]
    by_target = json.loads(run("history", "--target", "work:2", "--json").out)
    assert [d["state"] for d in by_target] == ["skipped"]
    assert len(json.loads(run("history", "--limit", "1", "--json").out)) == 1
    run("rm", "1")  # the journal outlives the check-in
    after_rm = json.loads(run("history", "1", "--json").out)
    assert [(d["checkin_id"], d["target"]) for d in after_rm] == [(1, "work:0.1")]
    assert_usage_error(run("history", "42"))


# -- errors: exit 2, one line, nothing written -----------------------------------------------------

FUTURE = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
SOON = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()

ADD_ERRORS: list[tuple[str, ...]] = [
    ("--in", "5x"),
    ("--in", "5"),
    ("--in", ""),
    ("--every", "0s"),
    ("--every", "soon"),
    ("--cron", "61 * * * *"),
    ("--cron", "0 9 * *"),
    ("--cron", "0 0 30 2 *"),
    ("--cron", "0 9 * * *", "--tz", "Mars/Olympus_Mons"),
    ("--cron", "0 9 * * *", "--tz", "../../etc/passwd"),
    ("--at", "2020-01-01T00:00:00Z"),
    ("--at", "yesterday"),
    ("--at", "25:00"),
    ("--at", FUTURE, "--in", "5m"),
    ("--every", "5m", "--cron", "* * * * *"),
    ("--cron", "* * * * *", "--in", "5m"),
    ("--cron", "* * * * *", "--at", FUTURE),
    ("--in", "5m", "--count", "2"),
    ("--at", FUTURE, "--until", FUTURE),
    (),
    ("--every", "5m", "--count", "0"),
    ("--every", "5m", "--count=-1"),
    ("--every", "5m", "--count", "many"),
    ("--every", "1h", "--until", SOON),
    ("--in", "5m", "--grace", "5"),
    ("--in", "5m", "--jitter", "lots"),
    ("--in", "5m", "--catch-up", "always"),
    ("--in", "5m", "--key", ""),
    ("--in", "5m", "--key", "a\nb"),
]
MESSAGE_ERRORS = ["", "   ", "nul\x00inside", "esc\x1b[201~", "x" * ((1 << 20) + 1)]
TARGET_ERRORS = ["work", ":0", "work:", "work:0.", "%x", "wo.rk:0"]
OTHER_ERRORS: list[tuple[str, ...]] = [
    ("rm", "99"),
    ("rm", "abc"),
    ("rm",),
    ("rm", "1", "--key", "k"),
    ("rm", "--key", "nope"),
    ("pause", "99"),
    ("resume", "0"),
    ("history", "--limit", "0"),
    ("history", "x"),
    ("ls", "--target", "nowindow"),
    ("history", "--target", "work:"),
    ("pause",),
    ("pause", "--target", "nowindow"),
    ("pause", "--target", "work:9"),
    ("resume", "--target", "%99"),
    ("pause", "1", "--target", "work:0"),
    ("resume", "--key", "k", "--target", "work:0"),
    ("next", "5m", "msg", "--target", "nowindow"),
    ("next", "5x", "msg", "--target", "work:0"),
    ("import-legacy", "/nonexistent/task_queue.db"),
    ("import-legacy", "/etc/hostname"),
    ("import-legacy", "/etc/hostname", "--dry-run"),
]
ALL_ERRORS: list[tuple[str, ...]] = (
    [("add", "work:0", "msg", *opts) for opts in ADD_ERRORS]
    + [("add", "work:0", msg, "--in", "5m") for msg in MESSAGE_ERRORS]
    + [("add", target, "msg", "--in", "5m") for target in TARGET_ERRORS]
    + OTHER_ERRORS
)


def _ids(argv: tuple[str, ...]) -> str:
    return " ".join(argv)[:60]


@pytest.mark.parametrize("argv", ALL_ERRORS, ids=_ids)
def test_usage_error_creates_nothing(run: Any, state: Path, argv: tuple[str, ...]) -> None:
    assert_usage_error(run(*argv))
    assert not state.exists()


@pytest.mark.parametrize("argv", ALL_ERRORS, ids=_ids)
def test_usage_error_changes_nothing(
    run: Any, state: Path, wakes: list[Path], argv: tuple[str, ...]
) -> None:
    assert run("add", "work:0", "existing", "--every", "1h", "--key", "k").code == 0
    before = stored(state)
    files = sorted(p.name for p in state.iterdir())
    assert_usage_error(run(*argv))
    assert stored(state) == before
    assert sorted(p.name for p in state.iterdir()) == files
    assert len(wakes) == 1  # only the setup's add


def test_help_teaches_every_command(run: Any) -> None:
    for command in ("add", "ls", "rm", "pause", "resume", "history", "next", "import-legacy"):
        result = run(command, "--help", state_dir=None)
        assert result.code == 0
        assert "examples:" in result.out and "--state-dir" in result.out
    assert "asched add work:0.1" in run("--help", state_dir=None).out


# -- through a real process ----------------------------------------------------------------------


def asched(*argv: str, state: Path) -> subprocess.CompletedProcess[str]:
    return asched_process(*argv, env={**os.environ, "ASCHED_STATE_DIR": str(state)})


def test_process_exit_codes(state: Path) -> None:
    bad = asched("add", "work:0", "hi", "--in", "soon", state=state)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.startswith("asched: --in: bad duration 'soon'")
    assert bad.stderr.count("\n") == 1
    assert not state.exists()
    empty = asched("ls", "--json", state=state)
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "[]\n", "")
    assert not state.exists()
    good = asched("add", "work:0", "hi", "--every", "1h", "--json", state=state)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["id"] == 1
    assert (state / DB_NAME).stat().st_mode & 0o777 == 0o600
    missing = asched("pause", "7", state=state)
    assert (missing.returncode, missing.stderr) == (2, "asched: no check-in with id 7\n")
    gone = asched("rm", "1", state=state)
    assert (gone.returncode, gone.stdout) == (0, "removed check-in 1 for work:0\n")


def test_process_conflicting_options(state: Path) -> None:
    result = asched("add", "work:0", "hi", "--every", "5m", "--cron", "* * * * *", state=state)
    assert result.returncode == 2
    assert result.stderr == (
        "asched: --every and --cron are two different rules; give one of them\n"
    )
    assert not state.exists()


# -- no input makes a traceback ------------------------------------------------------------------

_junk = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=24
) | st.sampled_from(["0s", "1h30m", "12:00", "24:00", "9999-12-31T23:59", "0001-01-01", "@daily",
                     "*/0 * * * *", "UTC", "Etc/GMT+14", "1 2 3 4 5", "9" * 30 + "s"])  # fmt: skip
_forms = {
    "in": lambda v: [f"--in={v}"],
    "every": lambda v: [f"--every={v}"],
    "at": lambda v: [f"--at={v}"],
    "until": lambda v: ["--every=1h", f"--until={v}"],
    "tz": lambda v: ["--cron=0 9 * * *", f"--tz={v}"],
    "cron": lambda v: [f"--cron={v}"],
}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(option=st.sampled_from(sorted(_forms)), value=_junk)
def test_junk_never_crashes(option: str, value: str) -> None:
    with tempfile.TemporaryDirectory(prefix="asched-h-") as d:
        argv = ["add", "work:0", "msg", *_forms[option](value), "--state-dir", d]
        with _quiet():
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse, e.g. a value it takes for an option
                code = int(exc.code or 0)
        assert code in (0, 2)


# -- local zone and rendering helpers ------------------------------------------------------------


def test_local_zone_name(tmp_path: Path) -> None:
    link = tmp_path / "localtime"
    link.symlink_to("../usr/share/zoneinfo/posix/Europe/Paris")
    tzfile = tmp_path / "timezone"
    tzfile.write_text("Asia/Tokyo\n")
    missing = tmp_path / "missing"
    assert local_zone_name({"TZ": ":America/Chicago"}, link, tzfile) == "America/Chicago"
    assert local_zone_name({"TZ": "/usr/share/zoneinfo/Asia/Kolkata"}, link, tzfile) == (
        "Asia/Kolkata"
    )
    # A POSIX rule has no IANA name: fall through to what the system says.
    assert local_zone_name({"TZ": "CET-1CEST,M3.5.0,M10.5.0/3"}, link, tzfile) == "Europe/Paris"
    assert local_zone_name({}, link, tzfile) == "Europe/Paris"
    assert local_zone_name({}, missing, tzfile) == "Asia/Tokyo"
    tzfile.write_text("Not/AZone\n")
    assert local_zone_name({}, missing, tzfile) == "UTC"
    assert local_zone_name({}, missing, missing) == "UTC"
    assert zone_from_path("/etc/zoneinfo-not/x") is None
    assert zone_from_path("/usr/share/zoneinfo/right/UTC") == "UTC"


def test_rendering_helpers() -> None:
    assert duration_text(299) == "4m 59s"
    assert duration_text(93784) == "1d 2h"
    assert duration_text(0) == "0s"
    assert truncate("hello world", 8) == "hello w…"
    assert truncate("short", 8) == "short"
    assert truncate("日本語テキスト", 7) == "日本語…"
    assert cell_width(truncate("日本語テキスト", 7)) <= 7


def test_add_idle_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asched.cli.main import main

    state = str(tmp_path / "s")
    assert (
        main(["add", "w:0", "a", "--in", "5m", "--if-idle", "2m", "--json", "--state-dir", state])
        == 0
    )
    got = json.loads(capsys.readouterr().out)
    assert (got["idle_s"], got["idle_wait"]) == (120.0, False)
    assert (
        main(["add", "w:0", "b", "--in", "5m", "--when-idle", "1m", "--json", "--state-dir", state])
        == 0
    )
    got = json.loads(capsys.readouterr().out)
    assert (got["idle_s"], got["idle_wait"]) == (60.0, True)
    for bad in (
        ["--if-idle", "1m", "--when-idle", "1m"],
        ["--if-idle", "0s"],
        ["--when-idle", "x"],
    ):
        assert main(["add", "w:0", "c", "--in", "5m", *bad, "--state-dir", state]) == 2
