"""`asched history`'s TRIES and MESSAGE columns, and `python -m asched`'s `--daemon` (issue 17,
item 6)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from asched.cli.main import run_module
from asched.core.paths import DB_NAME
from asched.core.states import DeliveryState
from asched.store.store import Store
from tests.cliharness import asched_process, stored

pytestmark = pytest.mark.usefixtures("wakes")  # tests/cliharness.py

LONG = "please write the status report for the whole release, with the open risks " * 2
TWO_LINES = "first line\nsecond line"


def _deliver(state: Path, checkin_id: int, failures: int, end: DeliveryState) -> None:
    """One occurrence: ``failures`` failed attempts (retried), then ``end``."""
    with Store.open(state / DB_NAME) as store:
        c = store.get_checkin(checkin_id)
        assert c is not None and c.next_due is not None
        d = store.claim(checkin_id, c.next_due, None)
        assert d is not None
        for _ in range(failures):
            store.transition(d.id, DeliveryState.CLAIMED, reason="pane-missing", attempt=True)
        if end is DeliveryState.FAILED:
            store.transition(d.id, end, reason="pane-missing")
            return
        for step in (DeliveryState.TYPING, DeliveryState.TYPED, DeliveryState.SUBMITTED, end):
            store.transition(d.id, step, pane="%7")


def _history(run: Any, state: Path) -> None:
    """Five check-ins, newest delivery first in `history`: a long message verified at once;
    two lines verified after two failed tries; failed after one retry; a removed one; missed."""
    for target, message in (
        ("w:1", LONG),
        ("w:2", TWO_LINES),
        ("w:3", "short"),
        ("w:4", "removed since"),
    ):
        assert run("add", target, message, "--in", "1m").code == 0
    _deliver(state, 1, 0, DeliveryState.VERIFIED)
    _deliver(state, 2, 2, DeliveryState.VERIFIED)
    _deliver(state, 3, 1, DeliveryState.FAILED)
    _deliver(state, 4, 0, DeliveryState.VERIFIED)
    assert run("rm", "4").code == 0
    assert run("add", "w:5", "missed", "--every", "1h").code == 0
    with Store.open(state / DB_NAME) as store:
        c = store.get_checkin(5)
        assert c is not None and c.next_due is not None
        store.claim(
            5, c.next_due, c.next_due + timedelta(hours=1),
            state=DeliveryState.SKIPPED, reason="missed",
        )  # fmt: skip


def _by_target(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    header = lines[0]
    start = {name: header.index(name) for name in ("TARGET", "TRIES", "REASON", "MESSAGE")}
    rows = {}
    for line in lines[1:-2]:
        target = line[start["TARGET"] :].split()[0]
        rows[target] = [
            line[start["TRIES"] : start["REASON"]].strip(),
            line[start["MESSAGE"] :],
        ]
    return rows


def test_history_counts_tries_and_shows_a_shortened_message(run: Any, state: Path) -> None:
    _history(run, state)
    shown = run("history")
    assert shown.code == 0, shown
    rows = _by_target(shown.out)
    assert rows["w:1"] == ["1", LONG[:39] + "…"]  # verified at once: one try, not 0
    assert rows["w:2"] == ["3", "first line…"]  # two failed, then verified; the first line
    assert rows["w:3"] == ["2", "short"]
    assert rows["w:4"] == ["1", "-"]  # the check-in is gone, and its text with it
    assert rows["w:5"] == ["0", "missed"]  # skipped before any try
    full = _by_target(run("history", "--full").out)
    assert full["w:1"][1] == LONG.strip() and full["w:2"][1] == "first line↵second line"
    data = json.loads(run("history", "--json").out)
    by_target = {d["target"]: d for d in data}
    assert [by_target[t]["tries"] for t in ("w:1", "w:2", "w:3", "w:4", "w:5")] == [1, 3, 2, 1, 0]
    assert [by_target[t]["attempts"] for t in ("w:1", "w:2", "w:3")] == [0, 2, 1]  # unchanged
    assert by_target["w:1"]["message"] == LONG and by_target["w:2"]["message"] == TWO_LINES
    assert by_target["w:4"]["message"] is None


def test_python_m_takes_daemon_only_before_the_command(state: Path, tmp_path: Path) -> None:
    # A message that is the word --daemon (after --): the `asched` script takes it, and so must
    # python -m asched (it used to turn the whole line into `daemon add ...` and fail).
    env = {**os.environ, "ASCHED_STATE_DIR": str(state)}
    env["ASCHED_TMUX_SOCKET"] = str(tmp_path / "no-tmux")
    added = asched_process("add", "w:0", "--in", "1h", "--", "--daemon", env=env)
    assert added.returncode == 0, added.stderr
    assert [c.message for c in stored(state)] == ["--daemon"]


def test_daemon_flag_before_the_command_still_means_daemon(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["--daemon", "--help"], ["--daemon", "--log-level", "debug", "--help"]):
        with pytest.raises(SystemExit) as done:
            run_module(argv)
        assert done.value.code == 0
        assert capsys.readouterr().out.startswith("usage: asched daemon")
    # After the command or after --, it is not the daemon flag.
    with pytest.raises(SystemExit) as done:
        run_module(["ls", "--daemon"])
    assert done.value.code == 2
    assert "unrecognized arguments: --daemon" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_module(["--", "--daemon"])
    assert "daemon" not in capsys.readouterr().out
