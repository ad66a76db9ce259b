"""asched@USER.service under a real systemd: start, stop, crashes, watchdog, journal, lock."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.systemd.helpers import (
    STATE,
    TMUX_SOCKET,
    UNIT,
    USER,
    Svc,
    assert_exactly_once,
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
    for checkin_id in messages:
        svc.cli("rm", str(checkin_id))
    time.sleep(2.0)  # the last deliveries finish (settle 0.5 s, check 0.15 s)
    svc.systemctl("stop", UNIT)
    states = assert_exactly_once(svc, messages)
    print(f"\nkill -9 x3: restarted by systemd each time; deliveries {dict(states)}")
    assert states["verified"] >= 6


def test_hung_event_loop_is_killed_by_the_watchdog_and_restarted(svc: Svc) -> None:
    svc.dropin(
        "watchdog",
        "[Service]\nWatchdogSec=1s\nEnvironment=ASCHED_TEST_FAULTS=block-loop-on-usr1\n",
    )
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
        "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
        " s.sendall(b'wake\\n'); s.recv(64)"
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
