"""The daemon's lifecycle against real spawned processes and real signals, under both loops."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import time
from pathlib import Path

import psutil
import pytest

from asched.daemon.lock import LOCK_NAME, is_held, read_holder
from tests.cliharness import asched_process
from tests.support.daemons import PYTHON, DaemonProc, Spawner, argv_variants, wait_until
from tests.support.faultd import FAULTD

SHORT_LOCK_S = 0.3


def _ready(d: DaemonProc, timeout: float = 10.0) -> float:
    return d.notify.wait_for("READY", "1", timeout=timeout).at


def _settled(d: DaemonProc, quiet_s: float = 0.15, timeout: float = 5.0) -> None:
    """Wait until the daemon uses no CPU for ``quiet_s``: the pass a CLI's wake-up started is
    over (an idle daemon wakes for nothing else). Raises AssertionError after ``timeout``."""
    proc = psutil.Process(d.pid)
    deadline = time.monotonic() + timeout
    last, since = proc.cpu_times(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "the daemon never went idle"
        time.sleep(0.03)
        now = proc.cpu_times()
        if (now.user, now.system) != (last.user, last.system):
            last, since = now, time.monotonic()


def test_ready_then_clean_stop(spawner: Spawner, short_tmp: Path) -> None:
    state = short_tmp / "state"
    d = spawner.spawn(state)
    _ready(d)
    d.start_exit_watch()
    assert is_held(state / LOCK_NAME)
    assert read_holder(state / LOCK_NAME).pid == d.pid
    sent = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    assert d.exited_at is not None
    stop_s = d.exited_at - sent
    assert stop_s < 0.2, f"idle stop took {stop_s * 1000:.0f} ms"
    stopping = d.notify.wait_for("STOPPING", "1", timeout=1)
    assert stopping.at >= sent
    assert not is_held(state / LOCK_NAME)
    # The lock file stays (never unlinked); its mode is private.
    assert (state / LOCK_NAME).stat().st_mode & 0o777 == 0o600
    assert state.stat().st_mode & 0o777 == 0o700
    names = [e["event"] for e in d.events()]
    for expected in ("daemon.starting", "lock.acquired", "daemon.ready", "daemon.stopping"):
        assert expected in names
    assert names[-1] == "daemon.stopped"


def test_repeated_sigterm_is_harmless(spawner: Spawner, short_tmp: Path) -> None:
    d = spawner.spawn(short_tmp / "state")
    _ready(d)
    for _ in range(3):
        d.signal(signal.SIGTERM)
    assert d.wait() == 0
    assert len(d.notify.all("STOPPING")) == 1
    names = [e["event"] for e in d.events()]
    assert names.count("daemon.stopping") == 1
    assert names.count("daemon.stopped") == 1


def test_sigint_stops_too(spawner: Spawner, short_tmp: Path) -> None:
    d = spawner.spawn(short_tmp / "state")
    _ready(d)
    d.signal(signal.SIGINT)
    assert d.wait() == 0


def test_waiting_daemon_sends_no_ready_and_times_out(spawner: Spawner, short_tmp: Path) -> None:
    state = short_tmp / "state"
    a = spawner.spawn(state)
    _ready(a)
    b = spawner.spawn(state, lock_timeout=1.5)
    assert b.wait(timeout=10) == 75
    assert not b.notify.has("READY")
    events = b.events()
    waiting = [e for e in events if e["event"] == "lock.waiting"]
    # At most once a second: a 1.5 s wait reports at 0 s and at 1 s.
    assert 1 <= len(waiting) <= 2
    assert all(e["holder_pid"] == a.pid for e in waiting)
    timeout = [e for e in events if e["event"] == "lock.timeout"]
    assert timeout and timeout[0]["holder_pid"] == a.pid and timeout[0]["level"] == "error"
    assert a.proc.poll() is None and is_held(state / LOCK_NAME)


def test_sigterm_while_waiting_ends_the_wait_at_once(spawner: Spawner, short_tmp: Path) -> None:
    state = short_tmp / "state"
    a = spawner.spawn(state)
    _ready(a)
    b = spawner.spawn(state, lock_timeout=30)
    assert wait_until(lambda: "lock.waiting" in b.stderr_path.read_text(), timeout=10)
    b.start_exit_watch()
    sent = time.monotonic()
    b.signal(signal.SIGTERM)
    assert b.wait(timeout=5) == 0
    assert b.exited_at is not None and b.exited_at - sent < 0.3
    assert not b.notify.has("READY")
    assert a.proc.poll() is None


def test_sigkill_of_holder_hands_over_within_200ms(spawner: Spawner, short_tmp: Path) -> None:
    state = short_tmp / "state"
    a = spawner.spawn(state)
    _ready(a)
    b = spawner.spawn(state, lock_timeout=30)
    assert wait_until(lambda: "lock.waiting" in b.stderr_path.read_text(), timeout=10)
    killed = time.monotonic()
    a.signal(signal.SIGKILL)
    ready = _ready(b, timeout=5)
    assert ready - killed < 0.2, f"READY {1000 * (ready - killed):.0f} ms after SIGKILL"
    assert read_holder(state / LOCK_NAME).pid == b.pid


def test_handoff_on_sigterm_within_300ms(spawner: Spawner, short_tmp: Path) -> None:
    state = short_tmp / "state"
    a = spawner.spawn(state)
    _ready(a)
    b = spawner.spawn(state)  # the default 10 s lock timeout
    assert wait_until(lambda: "lock.waiting" in b.stderr_path.read_text(), timeout=10)
    a.start_exit_watch()
    a.signal(signal.SIGTERM)
    ready = _ready(b, timeout=5)
    assert a.wait() == 0 and a.exited_at is not None
    gap = ready - a.exited_at
    assert gap < 0.3, f"B READY {gap * 1000:.0f} ms after A exited"


def test_watchdog_pings_at_half_interval_and_stop_when_loop_blocks(
    spawner: Spawner, short_tmp: Path
) -> None:
    env = {"WATCHDOG_USEC": "400000"}
    d = spawner.spawn(short_tmp / "state", env=env, argv=[PYTHON, str(FAULTD), "--daemon"])
    _ready(d)
    assert wait_until(lambda: len(d.notify.all("WATCHDOG")) >= 6, timeout=5)
    times = [m.at for m in d.notify.all("WATCHDOG")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    median = sorted(gaps)[len(gaps) // 2]
    assert 0.15 < median < 0.3, gaps  # half of 0.4 s
    d.signal(signal.SIGUSR1)
    assert wait_until(lambda: "fault.block_loop" in d.stderr_path.read_text(), timeout=5), (
        "fault not triggered"
    )
    blocked = len(d.notify.all("WATCHDOG"))
    time.sleep(1.0)  # five intervals of silence are the observation itself
    assert len(d.notify.all("WATCHDOG")) <= blocked + 1


def test_watchdog_pid_for_another_process_is_ignored(spawner: Spawner, short_tmp: Path) -> None:
    d = spawner.spawn(
        short_tmp / "state", env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    )
    _ready(d)
    time.sleep(0.5)  # several intervals in which no ping may come
    assert not d.notify.has("WATCHDOG")


def test_stderr_is_json_lines(spawner: Spawner, short_tmp: Path) -> None:
    d = spawner.spawn(short_tmp / "state", extra=["--log-level", "debug"])
    _ready(d)
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    lines = d.log_lines()
    assert len(lines) >= 5
    for line in lines:
        obj = json.loads(line)
        assert {"timestamp", "level", "event"} <= obj.keys()
        assert obj["timestamp"].endswith("Z") or obj["timestamp"].endswith("+00:00")
        assert obj["level"] in {"debug", "info", "warning", "error", "critical"}


def test_journal_stream_prefix(spawner: Spawner, short_tmp: Path) -> None:
    # JOURNAL_STREAM names the device:inode of the stream systemd gave us: build exactly that.
    r, w = os.pipe()
    st = os.fstat(w)
    env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", "INVOCATION_ID": "0" * 32}
    d = spawner.spawn(short_tmp / "state", env=env, stderr_fd=w)
    os.close(w)
    _ready(d)
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    with os.fdopen(r, "rb") as fh:
        lines = fh.read().decode().splitlines()
    assert lines
    for line in lines:
        assert line[0] == "<" and line[2] == ">", line
        obj = json.loads(line[3:])
        expected = {"debug": "7", "info": "6", "warning": "4", "error": "3"}[obj["level"]]
        assert line[1] == expected


def test_status_never_disturbs_the_holder(spawner: Spawner, short_tmp: Path) -> None:
    from asched.cli.main import main

    state = short_tmp / "state"
    d = spawner.spawn(state)
    _ready(d)
    # In-process: the same probe code as the command, 1,000 times.
    import contextlib
    import io

    for _ in range(1000):
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["status", "--state-dir", str(state)]) == 0
    # And as real processes.
    for _ in range(20):
        out = asched_process("status", "--json", state=state)
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["running"] is True and info["pid"] == d.pid
        assert info["rss_bytes"] > 0 and info["uptime_s"] >= 0
    assert is_held(state / LOCK_NAME) and d.proc.poll() is None
    b = spawner.spawn(state, lock_timeout=SHORT_LOCK_S)
    assert b.wait(timeout=10) == 75
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    out = asched_process("status", state=state)
    assert out.returncode == 3
    assert "not running" in out.stdout


ROUNDS = 20


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_twenty_rounds_of_four_simultaneous_starts(spawner: Spawner, short_tmp: Path) -> None:
    # Twenty rounds under each loop here; the chaos suite runs 200 (tests/chaos/test_starts.py),
    # and the default suite keeps within its ten minutes.
    state = short_tmp / "state"
    variants = argv_variants(short_tmp, state)
    winners: list[int] = []
    for rnd in range(ROUNDS):
        procs = []
        for i in range(4):
            argv, env, cwd = variants[(rnd + i) % len(variants)]
            procs.append(
                spawner.spawn(None, argv=argv, env=env, cwd=cwd, lock_timeout=SHORT_LOCK_S)
            )
        # The losers exit 75 after their lock timeout; the winner keeps running.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum(p.proc.poll() is None for p in procs) > 1:
            time.sleep(0.01)
        alive = [p for p in procs if p.proc.poll() is None]
        assert len(alive) == 1, f"round {rnd}: {len(alive)} daemons alive"
        winner = alive[0]
        _ready(winner)
        losers = [p for p in procs if p is not winner]
        assert [p.proc.returncode for p in losers] == [75, 75, 75], f"round {rnd}"
        assert not any(p.notify.has("READY") for p in losers), f"round {rnd}"
        winners.append(winner.pid)
        winner.signal(signal.SIGTERM)
        assert winner.wait() == 0
        for p in procs:
            p.notify.close()
    assert len(set(winners)) == ROUNDS
    shutil.rmtree(state, ignore_errors=True)


@pytest.mark.parametrize("how", ["rm", "mv", "rm-wal"])
def test_a_database_removed_or_replaced_under_the_daemon_stops_it(
    spawner: Spawner, short_tmp: Path, how: str
) -> None:
    # Running on would split the schedule (the CLI writing a file the daemon never reads, or
    # combining another main file with the daemon's -wal). The CLI refuses to touch such a file
    # and wakes the daemon, which stops with exit 4 (systemd starts it again on the new file).
    state = short_tmp / "state"
    d = spawner.spawn(state)
    _ready(d)
    assert asched_process("add", "w:0", "before", "--in", "1h", state=state).returncode == 0
    # The pass that add's wake-up started must be over: a pass after the change below would
    # see it first and stop the daemon (right too, but then no daemon is left for the CLI to
    # refuse for, and that is what this test is about).
    _settled(d)
    db = state / "asched.db"
    if how == "rm":
        db.unlink()
    elif how == "mv":
        other = short_tmp / "other.db"
        shutil.copy(db, other)  # a copy: another inode at the same path, as a restore makes
        os.replace(other, db)
    else:
        Path(f"{db}-wal").unlink()
    refused = asched_process("add", "w:0", "after", "--in", "1h", state=state)
    assert refused.returncode == 4, refused
    assert "removed or replaced" in refused.stderr and "Traceback" not in refused.stderr
    assert not db.exists() or how != "rm"  # nothing created in its place
    assert d.wait(timeout=10) == 4
    events = d.events()
    replaced = [e for e in events if e["event"] == "store.replaced"]
    assert replaced and replaced[0]["level"] == "error", [e["event"] for e in events]
    assert events[-1]["event"] == "daemon.stopped"
    # Started again (as systemd would), the daemon runs on the file that is there now.
    d2 = spawner.spawn(state)
    _ready(d2)
    assert asched_process("add", "w:0", "again", "--in", "1h", state=state).returncode == 0
    d2.signal(signal.SIGTERM)
    assert d2.wait() == 0
