"""``asched next`` (an agent's one "next check-in") and deploy/compat/schedule_with_note.sh.

In process through cli.main first; then for real, run from inside panes of a private tmux
server, where ``$TMUX_PANE`` is set by tmux itself.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asched.core.models import CheckIn, Every, Once
from asched.core.paths import DB_NAME
from asched.store.store import Store
from tests.cliharness import NO_DAEMON, assert_usage_error, run_process, stored, without_no_daemon
from tests.support.tmux import Server

pytestmark = pytest.mark.usefixtures("wakes")  # tests/cliharness.py


REPO = Path(__file__).resolve().parents[2]
COMPAT = REPO / "deploy" / "compat" / "schedule_with_note.sh"
VENV_BIN = Path(sys.executable).parent  # where the `asched` console script was installed
CHECKIN_FIELDS = {
    "id", "key", "target", "message", "rule", "rule_text", "next_due", "last_due", "paused",
    "grace_s", "catch_up", "jitter_s", "remaining", "until", "origin", "created_at", "updated_at",
    "idle_s", "idle_wait",
}  # fmt: skip


def pending(state: Path) -> list[CheckIn]:
    return [c for c in stored(state) if c.next_due is not None]


def now() -> datetime:
    return datetime.now(UTC)


# -- in process --------------------------------------------------------------------------------


def test_second_call_replaces_the_first(run: Any, state: Path, wakes: list[Path]) -> None:
    before = now().replace(microsecond=0)
    first = run("next", "30m", "first note", "--target", "work:0.1")
    assert first.code == 0, first
    assert first.out.startswith("set the next check-in of work:0.1 (id 1): in 30m, at ")
    assert first.out.endswith(": first note\n")
    second = run("next", "1h", "second note", "--target", "work:0.1")
    assert second.code == 0, second
    assert second.out.startswith("replaced the next check-in of work:0.1 (id 1): in 1h, at ")
    (c,) = pending(state)
    assert (c.id, c.target, c.message, c.key, c.origin) == (
        1, "work:0.1", "second note", "next:work:0.1", "next",
    )  # fmt: skip
    assert isinstance(c.rule, Once)
    assert c.next_due == c.rule.at
    assert before + timedelta(hours=1) <= c.next_due <= now() + timedelta(hours=1)
    assert wakes == [state, state]


def test_defaults_to_the_calling_pane(
    run: Any, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMUX_PANE", "%12")
    assert run("next", "10m", "one").code == 0
    assert run("next", "20m", "two").code == 0
    (c,) = pending(state)
    assert (c.target, c.key, c.message) == ("%12", "next:%12", "two")
    # --target wins over $TMUX_PANE, and another target has its own next check-in.
    assert run("next", "5m", "other", "--target", "work:1").code == 0
    assert sorted(c.target for c in pending(state)) == ["%12", "work:1"]


def test_one_key_per_target_however_spelled(run: Any, state: Path) -> None:
    assert run("next", "10m", "a", "--target", "work:00.01").code == 0
    assert run("next", "10m", "b", "--target", "work:0.1").code == 0
    assert run("next", "10m", "c", "--target", "work:=abc").code == 0
    assert run("next", "10m", "d", "--target", "work:abc").code == 0
    got = sorted((c.target, c.message) for c in pending(state))
    assert got == [("work:0.1", "b"), ("work:abc", "d")]


def test_json_and_a_replaced_finished_one(run: Any, state: Path) -> None:
    first = json.loads(run("next", "90s", "hi", "--target", "%3", "--json").out)
    assert set(first) == CHECKIN_FIELDS | {"replaced"}
    assert (first["replaced"], first["key"], first["origin"]) == (False, "next:%3", "next")
    assert first["rule"]["kind"] == "once"
    # The previous next check-in was delivered (done): the new one still takes its place.
    with Store.open(state / DB_NAME) as store:
        c = store.get_by_key("next:%3")
        assert c is not None and c.next_due is not None
        assert store.claim(c.id, c.next_due, None) is not None
    assert pending(state) == []
    again = json.loads(run("next", "2m", "again", "--target", "%3", "--json").out)
    assert (again["id"], again["replaced"], again["message"]) == (first["id"], True, "again")
    assert [c.message for c in pending(state)] == ["again"]


def test_a_paused_pane_stays_paused(run: Any, state: Path) -> None:
    assert run("next", "10m", "a", "--target", "%4").code == 0
    assert run("pause", "--target", "%4").code == 0
    result = run("next", "20m", "b", "--target", "%4")
    assert result.code == 0, result
    assert "(paused: asched resume --target %4)" in result.out
    (c,) = pending(state)
    assert (c.message, c.paused) == ("b", True)
    assert run("resume", "--target", "%4").code == 0
    assert run("next", "30m", "c", "--target", "%4").code == 0
    assert [(c.message, c.paused) for c in pending(state)] == [("c", False)]


NEXT_ERRORS: list[tuple[str, ...]] = [
    ("next", "10m", "outside tmux, no target"),
    ("next", "10", "no unit", "--target", "w:0"),
    ("next", "soon", "msg", "--target", "w:0"),
    ("next", "0s", "zero", "--target", "w:0"),
    ("next", "", "empty duration", "--target", "w:0"),
    ("next", "10m", "", "--target", "w:0"),
    ("next", "10m", "   ", "--target", "w:0"),
    ("next", "10m", "esc\x1b[201~", "--target", "w:0"),
    ("next", "10m", "msg", "--target", "nowindow"),
    ("next", "10m", "msg", "--target", "%x"),
    ("next", "10m", "msg", "--target", ""),
    ("next", "11y", "msg", "--target", "w:0"),
]


@pytest.mark.parametrize("argv", NEXT_ERRORS, ids=lambda a: " ".join(a)[:40])
def test_bad_input_exits_2_and_writes_nothing(
    run: Any, state: Path, wakes: list[Path], argv: tuple[str, ...]
) -> None:
    assert_usage_error(run(*argv))
    assert not state.exists()
    assert run("next", "1h", "existing", "--target", "w:0").code == 0
    before = stored(state)
    assert_usage_error(run(*argv))
    assert stored(state) == before
    assert len(wakes) == 1


def test_missing_arguments_are_argparse_usage_errors(run: Any, state: Path) -> None:
    result = run("next", "10m")
    assert result.code == 2
    assert "required: MESSAGE" in result.err
    assert not state.exists()


def test_outside_tmux_says_what_to_do(run: Any) -> None:
    result = run("next", "10m", "msg")
    assert result.err == (
        "asched: next: not inside tmux ($TMUX_PANE is not set); "
        "give --target session:window[.pane]\n"
    )


def test_bad_tmux_pane_variable(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMUX_PANE", "pane-3")
    result = run("next", "10m", "msg")
    assert_usage_error(result)
    assert "$TMUX_PANE is 'pane-3', not a pane id" in result.err


def test_help_teaches(run: Any) -> None:
    result = run("next", "--help")
    assert result.code == 0
    assert "examples:" in result.out and "$TMUX_PANE" in result.out
    assert "asched next 30m" in result.out


# -- from inside real tmux panes ---------------------------------------------------------------


def in_pane(server: Server, session: str, command: str, workdir: Path) -> tuple[str, int, str]:
    """Run ``command`` (a shell line) in a new session's pane; (pane id, exit code, output).

    The pane stays open afterwards (``sleep``): the server outlives the command, and the
    fixture kills it.
    """
    out, rc = workdir / f"{session}.out", workdir / f"{session}.rc"
    line = f"{command} >{shlex.quote(str(out))} 2>&1; echo $? >{shlex.quote(str(rc))}; sleep 60"
    pane = server.new_session(session, line)
    deadline = time.monotonic() + 20
    while not rc.exists() or not rc.read_text().endswith("\n"):
        assert time.monotonic() < deadline, f"no result from the pane; output: {read(out)!r}"
        time.sleep(0.05)
    return pane, int(rc.read_text()), read(out)


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_next_inside_a_real_pane_stores_its_pane_id(server: Server, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cmd = shlex.join(
        [sys.executable, "-m", "asched", "next", "1h", "msg", "--state-dir", str(state)]
    )
    pane, rc, output = in_pane(server, "agent", cmd, tmp_path)
    assert rc == 0, output
    assert re.fullmatch(r"%\d+", pane)
    (c,) = pending(state)
    assert (c.target, c.key, c.message) == (pane, f"next:{pane}", "msg")
    # No daemon runs on this state directory: stored, and one line says so (stderr comes first).
    warning, said = output.splitlines()
    assert warning.startswith(f"{NO_DAEMON}{state}, so nothing will deliver this yet; start one: ")
    assert said.startswith(f"set the next check-in of {pane} (id {c.id}): in 1h, at ")


def compat_line(state: Path, *args: str) -> str:
    """The compat script as a shell line, with the venv's asched on PATH."""
    env = f'PATH={shlex.quote(str(VENV_BIN))}:"$PATH" ASCHED_STATE_DIR={shlex.quote(str(state))}'
    return f"{env} {shlex.join([str(COMPAT), *args])}"


def test_compat_script_in_a_real_pane(server: Server, tmp_path: Path) -> None:
    state = tmp_path / "state"
    note = 'Check on the frontend; then run `make test` && report $HOME "done"'
    before = now().replace(microsecond=0)
    pane, rc, output = in_pane(server, "orc", compat_line(state, "30", note), tmp_path)
    assert rc == 0, output
    lines = without_no_daemon(output).splitlines()
    assert lines[0] == f"Scheduled check-in in 30 minutes: {note}"
    assert lines[1].startswith(f"set the next check-in of {pane} ")
    (c,) = pending(state)
    assert (c.target, c.message, c.key) == (pane, note, f"next:{pane}")
    assert isinstance(c.rule, Once)
    assert before + timedelta(minutes=30) <= c.rule.at <= now() + timedelta(minutes=30)

    # The reference's second form names the window; decimals are minutes too. orc:0 is the
    # first pane again, by another name: its one next check-in is replaced, not doubled.
    line = compat_line(state, "15", "window note", "orc:0")
    _, rc, output = in_pane(server, "orc2", line, tmp_path)
    assert rc == 0, output
    pane3, rc, output = in_pane(server, "orc3", compat_line(state, "0.5", "half"), tmp_path)
    assert rc == 0, output
    by_target = {c.target: c for c in pending(state)}
    assert set(by_target) == {"orc:0", pane3}
    assert (by_target["orc:0"].key, by_target["orc:0"].id) == (f"next:{pane}", c.id)
    window, half = by_target["orc:0"], by_target[pane3]
    assert window.message == "window note" and half.message == "half"
    assert window.next_due is not None and half.next_due is not None
    assert timedelta(minutes=14) < window.next_due - now() <= timedelta(minutes=15)
    assert timedelta(seconds=20) < half.next_due - now() <= timedelta(seconds=30)


def compat(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_process([str(COMPAT), *args], env=env)


@pytest.fixture
def compat_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "ASCHED_BIN")}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env["ASCHED_STATE_DIR"] = str(state)
    return env


def test_compat_replaces_and_keeps_the_note_whole(compat_env: dict[str, str], state: Path) -> None:
    env = {**compat_env, "TMUX_PANE": "%9"}
    assert compat("10", "first", env=env).returncode == 0
    odd = "-x; $(touch /tmp/asched-pwned) 'q' \"dq\" \\n *"
    result = compat("1.25", odd, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Scheduled check-in in 1.25 minutes: {odd}"
    (c,) = pending(state)
    assert (c.target, c.message) == ("%9", odd)
    assert c.next_due is not None
    assert timedelta(seconds=70) < c.next_due - now() <= timedelta(seconds=75)
    assert not Path("/tmp/asched-pwned").exists()
    # No note: the reference's default text; ASCHED_BIN instead of PATH.
    bin_env = {**env, "ASCHED_BIN": str(VENV_BIN / "asched"), "PATH": "/usr/bin:/bin"}
    assert compat("5", env=bin_env).returncode == 0
    assert [c.message for c in pending(state)] == ["Standard check-in"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("10", "note"), "not inside tmux"),
        (("ten", "note", "w:0"), "MINUTES must be a number"),
        (("1.2.3", "note", "w:0"), "MINUTES must be a number"),
        (("-5", "note", "w:0"), "MINUTES must be a number"),
        (("0", "note", "w:0"), "at least one second"),
        (("0.001", "note", "w:0"), "at least one second"),
        (("1e3", "note", "w:0"), "MINUTES must be a number"),
        (("5", "note", "nowindow"), "asched: bad tmux target"),
        (("5", "", "w:0"), None),  # the reference's default note: accepted
        (("5", "bad\x07bell", "w:0"), "control characters"),
        (("5", "a", "w:0", "extra"), "usage:"),
    ],
)
def test_compat_errors(
    compat_env: dict[str, str], state: Path, args: tuple[str, ...], message: str | None
) -> None:
    result = compat(*args, env=compat_env)
    if message is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2, result
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert not (state / DB_NAME).exists()


def test_compat_without_asched(compat_env: dict[str, str]) -> None:
    env = {**compat_env, "PATH": "/usr/bin:/bin", "TMUX_PANE": "%1"}
    missing = compat("5", "note", env=env)
    assert missing.returncode == 127
    assert "asched is not on PATH" in missing.stderr
    wrong = compat("5", "note", env={**env, "ASCHED_BIN": "/nonexistent/asched"})
    assert wrong.returncode == 127
    assert "ASCHED_BIN=/nonexistent/asched is not executable" in wrong.stderr


def test_compat_help(compat_env: dict[str, str]) -> None:
    result = compat("--help", env=compat_env)
    assert result.returncode == 0
    assert result.stdout.startswith('usage: schedule_with_note.sh MINUTES "NOTE" [session:window]')


def test_one_next_per_pane_however_it_is_named(
    run: Any, state: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # %N, orch:0 and orch:0.0 name one pane: the tmux server says which, and the key is the
    # pane's, so each call replaces the one before (three rows were kept before).
    pane = server.new_session("orch", "sleep 3600")
    monkeypatch.setenv("ASCHED_TMUX_SOCKET", server.sock)
    for spelling in (pane, "orch:0", "orch:0.0"):
        result = run("next", "10m", f"via {spelling}", "--target", spelling)
        assert result.code == 0 and without_no_daemon(result.err) == "", result
    (c,) = pending(state)
    assert (c.key, c.message, c.target) == (f"next:{pane}", "via orch:0.0", "orch:0.0")


def test_a_target_that_names_no_pane_warns_and_says_what_it_meant(
    run: Any, state: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tmux-Orchestrator names its windows Developer, Project-Manager, ...; its scripts were given
    # orch:developer. Stored anyway (a session may come later), with a one-line warning.
    server.new_session("orch", "sleep 3600", window_name="Developer")
    monkeypatch.setenv("ASCHED_TMUX_SOCKET", server.sock)
    for argv in (
        ("add", "orch:developer", "status?", "--in", "30m"),
        ("next", "30m", "status?", "--target", "orch:developer"),
    ):
        result = run(*argv)
        assert result.code == 0, result
        err = without_no_daemon(result.err)
        assert err.count("\n") == 1, result.err
        assert err.startswith("asched: warning: orch:developer names no pane on ")
        assert "did you mean orch:Developer?" in err
    assert without_no_daemon(run("add", "orch:Developer", "fine", "--in", "30m").err) == ""
    assert len(pending(state)) == 3


def test_compat_role_form_names_the_window_in_any_case(
    compat_env: dict[str, str], state: Path, server: Server
) -> None:
    # The old script's header form `schedule_with_note.sh 30 "..." orch:developer`, with the
    # window named "Developer" as Tmux-Orchestrator names it: the check-in goes to that window
    # (it used to be stored for a window that does not exist, silently).
    pane = server.new_session("orch", "sleep 3600", window_name="Developer")
    env = {**compat_env, "ASCHED_TMUX_SOCKET": server.sock}
    result = compat("30", "status please", "orch:developer", env=env)
    assert result.returncode == 0 and without_no_daemon(result.stderr) == "", result
    (c,) = pending(state)
    assert (c.target, c.key) == ("orch:Developer", f"next:{pane}")
    # A name that matches no window in any case: stored as given, with a one-line warning.
    result = compat("30", "nobody", "orch:tester", env=env)
    assert result.returncode == 0, result
    assert without_no_daemon(result.stderr).startswith(
        "asched: warning: orch:tester names no pane on "
    )
    # From inside a pane of that server (as agents call it): $TMUX names the server to ask.
    _, rc, output = in_pane(
        server, "agent", compat_line(state, "20", "from a pane", "orch:developer"), state.parent
    )
    assert rc == 0 and "warning" not in output, output
    assert sorted(c.target for c in pending(state)) == ["orch:Developer", "orch:tester"]


OLD_SCHEDULER = REPO / "deploy" / "compat" / "scheduler.py"


def old_scheduler(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_process([sys.executable, str(OLD_SCHEDULER), *args], env=env)


def test_old_scheduler_command_line_maps_onto_asched(
    compat_env: dict[str, str], state: Path
) -> None:
    # Agents told to run `python3 scheduler.py --add SESSION ROLE WINDOW INTERVAL NOTE` (the old
    # project's instructions) now reach asched, with the text the old scheduler typed.
    env = {**compat_env, "ASCHED_TMUX_SOCKET": "/nonexistent/asched-test-no-tmux"}
    added = old_scheduler("--add", "proj", "developer", "1", "30", "-status please", env=env)
    assert added.returncode == 0, added
    (c,) = pending(state)
    assert (c.target, c.message) == ("proj:1", "SCHEDULED CHECK-IN: -status please")
    # A one-word NOTE that looks like an option is still the NOTE.
    assert old_scheduler("--add", "proj", "qa", "3", "30", "--urgent", env=env).returncode == 0
    assert any(p.message == "SCHEDULED CHECK-IN: --urgent" for p in pending(state))
    assert isinstance(c.rule, Every) and c.rule.interval_s == 1800
    assert c.next_due is not None
    assert timedelta(minutes=29) < c.next_due - now() <= timedelta(minutes=30)
    # INTERVAL 0: once, now (the old scheduler typed it on every pass, forever); an empty NOTE is
    # the old default text.
    assert old_scheduler("--add", "proj", "pm", "2", "0", "", env=env).returncode == 0
    once = next(c for c in pending(state) if c.target == "proj:2")
    assert once.message == "SCHEDULED CHECK-IN: Time for your regular status update"
    assert isinstance(once.rule, Once)
    listed = old_scheduler("--list", env=env)
    assert listed.returncode == 0 and "proj:1" in listed.stdout and "proj:2" in listed.stdout
    assert old_scheduler("--remove", str(c.id), env=env).returncode == 0
    assert sorted(p.target for p in pending(state)) == ["proj:2", "proj:3"]
    bad = (("--daemon",), ("--queue-daemon",), ("--add", "p", "r", "0", "x", "n"))
    for args in (*bad, ("--add", "p", "r", "0", "²", "n")):
        refused = old_scheduler(*args, env=env)
        assert refused.returncode == 2 and refused.stderr.startswith("scheduler.py: "), refused
    bare = {**env, "PATH": "/nonexistent"}
    assert old_scheduler("--list", env=bare).returncode == 127


def test_old_scheduler_in_a_real_pane(server: Server, tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = f'PATH={shlex.quote(str(VENV_BIN))}:"$PATH" ASCHED_STATE_DIR={shlex.quote(str(state))}'
    line = f"{env} {shlex.join([sys.executable, str(OLD_SCHEDULER)])} --add orc dev 0 15 'go on'"
    _, rc, output = in_pane(server, "olds", line, tmp_path)
    assert rc == 0, output
    (c,) = pending(state)
    assert (c.target, c.message) == ("orc:0", "SCHEDULED CHECK-IN: go on")


def test_a_window_of_several_panes_keeps_one_next_when_the_active_pane_changes(
    run: Any, state: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # orch:1 names the window's active pane, which changes when someone clicks: the key is the
    # window's then, so two calls are still one check-in.
    server.new_session("orch", "sleep 3600")
    first = server.new_window("orch", "sleep 3600", name="team")
    server.tmux("split-window", "-d", "-t", first, "sleep 3600")
    monkeypatch.setenv("ASCHED_TMUX_SOCKET", server.sock)
    assert run("next", "10m", "one", "--target", "orch:1").code == 0
    server.tmux("select-pane", "-t", "orch:1.1")
    assert run("next", "10m", "two", "--target", "orch:1").code == 0
    (c,) = pending(state)
    assert (c.key, c.message) == ("next:orch:1", "two")


def test_a_target_naming_two_windows_gets_its_own_warning(
    run: Any, state: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.new_session("orch", "sleep 3600", window_name="dup")
    server.new_window("orch", "sleep 3600", name="dup")
    monkeypatch.setenv("ASCHED_TMUX_SOCKET", server.sock)
    result = run("add", "orch:dup", "which one?", "--in", "30m")
    assert result.code == 0, result
    assert without_no_daemon(result.err).startswith(
        "asched: warning: orch:dup names more than one window on "
    )


def test_old_scheduler_refuses_an_asched_bin_that_is_a_directory(
    compat_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**compat_env, "ASCHED_BIN": str(tmp_path)}
    result = old_scheduler("--list", env=env)
    assert result.returncode == 127 and "Traceback" not in result.stderr, result
