"""asched@USER.service under a real systemd: start, stop, crashes, watchdog, journal, lock."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime

import pytest

from tests.support.faultd import FAULTD
from tests.support.systemd import (
    STATE,
    TMUX_SOCKET,
    UNIT,
    USER,
    Svc,
    assert_exactly_once,
    quiesce,
    wait_for,
)

pytestmark = [pytest.mark.systemd, pytest.mark.timeout(90)]


def test_start_is_active_within_one_second(svc: Svc) -> None:
    rc, out, took = svc.systemctl("start", UNIT)
    print(f"\nstart-to-active (systemctl start, Type=notify: returns on READY=1): {took:.3f}s")
    assert rc == 0, out
    assert took < 1.0
    assert svc.show("ActiveState")["ActiveState"] == "active"
    status = json.loads(svc.cli("status", "--json"))
    assert status["running"] and status["pid"] == svc.main_pid()
    ready = svc.wait_event("daemon.ready")
    assert ready["pid"] == svc.main_pid()


def test_stop_within_one_second_with_exit_status_0(svc: Svc) -> None:
    svc.systemctl("start", UNIT)
    invocation = svc.invocation()
    rc, out, took = svc.systemctl("stop", UNIT)
    print(f"\nstop: {took:.3f}s")
    assert rc == 0, out
    assert took < 1.0
    props = svc.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert props == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",  # CLD_EXITED: it exited, it was not killed
        "ExecMainStatus": "0",
    }

    def logged() -> list[str] | None:
        names = [e["event"] for e in svc.events(f"_SYSTEMD_INVOCATION_ID={invocation}")]
        return names if "daemon.stopped" in names else None

    names = wait_for("daemon.stopped in the journal", logged)
    assert names.index("daemon.stopping") < names.index("daemon.stopped")


def test_kill_9_is_restarted_without_duplicates(svc: Svc) -> None:
    targets = svc.start_tmux(3)
    svc.dropin("tmux", f"[Service]\nEnvironment=ASCHED_TMUX_SOCKET={TMUX_SOCKET}\n")
    svc.systemctl("start", UNIT)
    messages = {}
    for i, target in enumerate(targets):
        out = svc.cli("add", target, f"kill9-{i}", "--every", "1s", "--json")
        messages[json.loads(out)["id"]] = (i, f"kill9-{i}")
    time.sleep(2.5)
    pids = [svc.main_pid()]
    for n in range(1, 4):
        svc.systemctl("kill", "--signal=SIGKILL", "--kill-whom=main", UNIT)

        def restarted(n: int = n) -> bool:
            p = svc.show("NRestarts", "ActiveState", "MainPID")
            return (p["NRestarts"], p["ActiveState"]) == (str(n), "active") and int(
                p["MainPID"]
            ) not in pids

        wait_for(f"systemd's restart {n} after SIGKILL", restarted, timeout=10)
        pids.append(svc.main_pid())
        time.sleep(1.3)
    quiesce(svc, list(messages))
    states = assert_exactly_once(svc, messages, outages=3)
    print(f"\nkill -9 x3: restarted by systemd each time; deliveries {dict(states)}")
    assert states["verified"] >= 6


def test_hung_event_loop_is_killed_by_the_watchdog_and_restarted(svc: Svc) -> None:
    svc.dropin(
        "watchdog",
        "[Service]\nWatchdogSec=1s\n",
    )
    # The daemon with a test-only fault service (tests/faultd.py): SIGUSR1 blocks its loop.
    svc.exec_start_dropin(script=FAULTD)
    svc.systemctl("start", UNIT)
    first = svc.main_pid()
    invocation = svc.invocation()
    t0 = time.monotonic()
    svc.systemctl("kill", "--signal=SIGUSR1", "--kill-whom=main", UNIT)
    results: set[str] = set()

    def restarted() -> bool:
        p = svc.show("NRestarts", "ActiveState", "MainPID", "Result")
        results.add(p["Result"])
        return (p["NRestarts"], p["ActiveState"]) == ("1", "active") and int(p["MainPID"]) != first

    wait_for("the watchdog's restart", restarted, timeout=15, interval=0.1)
    took = time.monotonic() - t0
    print(f"\nhung loop -> watchdog (WatchdogSec=1s) -> restarted and READY: {took:.2f}s")
    pid1 = svc.journal_lines(f"INVOCATION_ID={invocation}", "_PID=1")
    assert any("Watchdog timeout" in line for line in pid1), pid1
    assert any("Failed with result 'watchdog'" in line for line in pid1), pid1
    assert "watchdog" in results or any("'watchdog'" in line for line in pid1)
    events = [e["event"] for e in svc.events(f"_SYSTEMD_INVOCATION_ID={invocation}")]
    assert "fault.block_loop" in events
    assert "daemon.stopped" not in events  # it never got to stop: it was killed


def test_journal_lines_are_json_and_priorities_filter(svc: Svc, python: str) -> None:
    svc.systemctl("start", UNIT)
    invocation = svc.invocation()
    # A warning: a peer with another uid (root) on the control socket is refused.
    holder = json.loads(svc.box.run(["cat", f"{STATE}/asched.lock"]).stdout)
    probe = (
        "import contextlib, socket, sys\n"
        "with socket.socket(socket.AF_UNIX) as s, contextlib.suppress(OSError):\n"
        "    s.connect(sys.argv[1]); s.sendall(b'wake\\n'); s.recv(64)\n"
    )
    svc.box.run([python, "-P", "-c", probe, holder["socket"]])
    # An error: a reload that finds a bad config file keeps the running one.
    svc.box.run(["mkdir", "-p", f"/home/{USER}/.config/asched"], user=USER)
    svc.box.run(
        ["tee", f"/home/{USER}/.config/asched/config.toml"],
        user=USER,
        input="[daemon]\nbogus = 1\n",
    )
    svc.systemctl("reload", UNIT)
    svc.wait_event("config.invalid", 10, f"_SYSTEMD_INVOCATION_ID={invocation}")
    assert svc.show("ActiveState")["ActiveState"] == "active"
    svc.systemctl("stop", UNIT)
    svc.wait_event("daemon.stopped", 10, f"_SYSTEMD_INVOCATION_ID={invocation}")

    lines = svc.journal_lines(f"_SYSTEMD_UNIT={UNIT}")
    assert len(lines) >= 8
    records = [json.loads(line) for line in lines]  # every line the daemon wrote is JSON
    assert all({"timestamp", "level", "event"} <= r.keys() for r in records)
    # `journalctl -u UNIT -o cat` also shows systemd's own lines about the unit; the daemon's
    # are exactly the JSON ones.
    everything = svc.journal_lines("-u", UNIT)
    assert set(lines) <= set(everything)

    entries = svc.journal_json("-u", UNIT, priority="warning")
    assert entries, "no warning at all"
    assert all(int(e["PRIORITY"]) <= 4 for e in entries)
    mine = [json.loads(e["MESSAGE"]) for e in entries if e.get("_SYSTEMD_UNIT") == UNIT]
    assert {r["event"] for r in mine} >= {"control.refused", "config.invalid"}
    assert all(r["level"] in ("warning", "error", "critical") for r in mine)
    all_entries = svc.journal_json(f"_SYSTEMD_UNIT={UNIT}")
    level_to_priority = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
    for e in all_entries:
        assert int(e["PRIORITY"]) == level_to_priority[json.loads(e["MESSAGE"])["level"]]
    assert any(json.loads(e["MESSAGE"])["event"] == "daemon.ready" for e in all_entries)


def test_a_failed_delivery_shows_under_journalctl_p_warning(svc: Svc) -> None:
    # A target that names no pane (in the box no tmux server answers the unit at all), with
    # little grace to wait for one: the delivery fails, and says so at warning.
    svc.systemctl("start", UNIT)
    invocation = svc.invocation()
    svc.cli("add", "no-such-session:0", "to nobody", "--in", "1s", "--grace", "1s")
    svc.wait_event("checkin.outcome", 20, f"_SYSTEMD_INVOCATION_ID={invocation}")
    warned = [
        json.loads(e["MESSAGE"])
        for e in svc.journal_json(f"_SYSTEMD_INVOCATION_ID={invocation}", priority="warning")
        if e.get("_SYSTEMD_UNIT") == UNIT
    ]
    failed = [r for r in warned if r["event"] == "checkin.outcome" and r["state"] == "failed"]
    assert failed and failed[0]["reason"] and failed[0]["level"] == "warning", warned
    assert [r["state"] for r in svc.history()] == ["failed"]


def test_security_exposure(svc: Svc) -> None:
    out = svc.box.run(["systemd-analyze", "security", "--no-pager", UNIT], timeout=60).stdout
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", out)
    assert m, out
    exposure, label = float(m.group(1)), m.group(2)
    print(f"\nsystemd-analyze security {UNIT}: {exposure} {label}")
    print("\n".join(line for line in out.splitlines() if line.startswith("✗")))
    assert exposure <= 3.0


def test_default_tmux_socket_works_in_the_sandbox(svc: Svc) -> None:
    """No ASCHED_TMUX_SOCKET: the user's default server in /tmp/tmux-UID/ is reached through
    ProtectSystem=strict's read-only /tmp, and the shell guard can read the pane's processes
    (ProtectProc=invisible hides only other users')."""
    svc.start_tmux(1, socket=None)
    svc.systemctl("start", UNIT)
    svc.cli("add", "p0:0", "via-default-socket", "--in", "1s")

    def delivered() -> list[dict[str, object]] | None:
        rows = svc.history()
        return (
            rows
            if rows and rows[0]["state"] in ("verified", "unverified", "failed", "skipped")
            else None
        )

    rows = wait_for("the delivery", delivered, timeout=10, interval=0.2)
    assert rows[0]["state"] == "verified", rows
    assert svc.received(0) == ["via-default-socket"]


HAND_SCOPE = "asched-hand"


def start_hand_daemon(svc: Svc) -> tuple[subprocess.Popen[str], int]:
    """A daemon started by hand on the service's state directory, as the user, in a scope of
    its own (like a login shell's); returns the process (on the host side) and its pid."""
    # The service ran before: its StateDirectory= exists (the user could not create it).
    svc.systemctl("start", UNIT)
    svc.systemctl("stop", UNIT)
    argv = svc.box.argv(
        [
            "systemd-run",
            "--scope",
            "--quiet",
            f"--unit={HAND_SCOPE}",
            f"--uid={USER}",
            f"--gid={USER}",
            svc.python,
            "-P",
            "-m",
            "asched",
            "--daemon",
            "--state-dir",
            STATE,
        ],
        env={"HOME": f"/home/{USER}", "USER": USER},
    )
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )

    def holding() -> int | None:
        if proc.poll() is not None:
            raise AssertionError(
                f"the hand-started daemon exited: {proc.stderr.read() if proc.stderr else ''}"
            )
        st = json.loads(svc.cli("status", "--json", check=False) or "{}")
        return int(st["pid"]) if st.get("running") and st.get("pid") else None

    try:
        pid: int = wait_for("the hand-started daemon to hold the lock", holding, timeout=10)
    except BaseException:
        stop_hand_daemon(svc, proc, None)
        raise
    return proc, pid


def stop_hand_daemon(
    svc: Svc, proc: subprocess.Popen[str], pid: int | None
) -> list[dict[str, object]]:
    """SIGTERM it (by pid), wait, and return its log records."""
    if pid is not None:
        svc.box.run(["kill", "-TERM", str(pid)], check=False)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        svc.box.run(["systemctl", "kill", "--signal=SIGKILL", f"{HAND_SCOPE}.scope"], check=False)
        _, err = proc.communicate(timeout=10)
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def _at(record: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))


def test_waits_for_a_hand_started_daemon_that_stops_in_time(svc: Svc) -> None:
    svc.exec_start_dropin("--lock-timeout", "6")
    hand, hand_pid = start_hand_daemon(svc)
    start = None
    try:
        t0 = time.monotonic()
        start = subprocess.Popen(
            svc.box.argv(["systemctl", "start", UNIT]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

        def activating() -> str | None:
            p = svc.show("ActiveState", "InvocationID")
            return p["InvocationID"] if p["ActiveState"] == "activating" else None

        invocation = wait_for("the start job", activating, timeout=5)
        waiting = svc.wait_event("lock.waiting", 5, f"_SYSTEMD_INVOCATION_ID={invocation}")
        assert waiting["holder_pid"] == hand_pid
        time.sleep(max(0.0, 1.5 - (time.monotonic() - t0)))
        hand_log = stop_hand_daemon(svc, hand, hand_pid)
        out, _ = start.communicate(timeout=15)
        took = time.monotonic() - t0
    finally:
        if hand.poll() is None:
            stop_hand_daemon(svc, hand, hand_pid)
        if start is not None and start.poll() is None:
            start.kill()
            start.communicate()
    print(f"\nservice start waited for the hand-started daemon: active after {took:.2f}s")
    assert start.returncode == 0, out
    assert 1.4 < took < 6
    assert svc.show("ActiveState")["ActiveState"] == "active"
    assert svc.main_pid() != hand_pid
    assert svc.invocation() == invocation
    acquired = svc.wait_event("lock.acquired", 5, f"_SYSTEMD_INVOCATION_ID={invocation}")
    hand_stopping = next(r for r in hand_log if r["event"] == "daemon.stopping")
    # Never alongside: the service took the lock only after the hand-started one began to stop
    # (it releases the lock after its services ended and its store closed).
    assert _at(acquired) > _at(hand_stopping)


def test_fails_clearly_when_the_holder_does_not_stop(svc: Svc) -> None:
    svc.exec_start_dropin("--lock-timeout", "2")
    hand, hand_pid = start_hand_daemon(svc)
    try:
        rc, _, took = svc.systemctl("start", UNIT, check=False)
        invocation = svc.invocation()
        print(f"\nservice start gave up after {took:.2f}s (lock timeout 2 s): exit {rc}")
        assert rc != 0
        assert 1.9 < took < 5
        p = svc.show("ActiveState", "Result", "ExecMainStatus", "NRestarts")
        assert p == {
            "ActiveState": "failed",
            "Result": "exit-code",
            "ExecMainStatus": "75",
            "NRestarts": "0",
        }
        timeout = svc.wait_event("lock.timeout", 5, f"_SYSTEMD_INVOCATION_ID={invocation}")
        assert timeout["holder_pid"] == hand_pid and timeout["level"] == "error"
        events = [e["event"] for e in svc.events(f"_SYSTEMD_INVOCATION_ID={invocation}")]
        assert "daemon.ready" not in events and "lock.acquired" not in events
        time.sleep(1.5)  # RestartSec=1s: exit 75 is in RestartPreventExitStatus, so no retry
        assert svc.show("ActiveState", "NRestarts") == {"ActiveState": "failed", "NRestarts": "0"}
        status = json.loads(svc.cli("status", "--json"))
        assert status["running"] and status["pid"] == hand_pid
    finally:
        stop_hand_daemon(svc, hand, hand_pid)
