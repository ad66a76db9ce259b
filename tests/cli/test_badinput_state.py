"""Bad state and environment (issue 7): a damaged database, an unusable state directory
(read-only, full, a symlink, another user's, writable by others), an invalid config file and no
tmux, each met by the real commands and by a real daemon start.

The contract: a documented exit code, one line on stderr (the CLI) or one ``daemon.failed`` event
(the daemon), never a traceback, and nothing lost or changed. The mounts need root; they live
under a unique temp dir and are unmounted (lazily, by path) even when a test fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from asched.core.paths import DB_NAME
from asched.daemon import control
from asched.store.store import Store
from tests.cli.test_badinput import Ran, check, cli, no_traceback
from tests.statefiles import KINDS, damage, seed
from tests.support.daemons import DaemonProc, Spawner, spawner_fixture, wait_until

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="mounts and chown need root")


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_daemon_to_wake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(control, "send", lambda *a, **k: False)
    monkeypatch.chdir(tmp_path)
    for var in ("COLUMNS", "TMUX_PANE", "TMUX", "ASCHED_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def spawner(short_tmp: Path) -> Iterator[Spawner]:
    """One event loop is enough here: these daemons fail before the loop matters."""
    yield from spawner_fixture(short_tmp, "uvloop")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` with its content's hash (what "nothing changed" compares)."""
    return {str(p.relative_to(path)): sha(p) for p in sorted(path.rglob("*")) if p.is_file()}


def stored_messages(state: Path) -> list[str]:
    with Store.open(state / DB_NAME) as store:
        return [c.message for c in store.list_checkins()]


def one_line(ran: Ran, code: int) -> str:
    """Assert the one-line error contract; returns the line."""
    check(ran, {code})
    assert ran.code == code, ran
    return ran.err.strip()


def run_daemon(spawner: Spawner, state: Path, *, extra: list[str] | None = None,
               env: dict[str, str] | None = None) -> tuple[int, DaemonProc]:  # fmt: skip
    d = spawner.spawn(state, extra=extra or [], env=env, lock_timeout=1)
    return d.wait(timeout=20), d


def failed_at_start(d: DaemonProc, code: int, expected_code: int) -> str:
    """A daemon that refused to start: the code, every stderr line a JSON event, exactly one
    error (``daemon.failed``), no traceback, never READY. Returns the error text."""
    assert code == expected_code, d.stderr_path.read_text()
    text = d.stderr_path.read_text()
    no_traceback(text)
    events = d.events()  # raises if a line is not JSON
    errors = [e for e in events if e["level"] in ("error", "critical")]
    assert [e["event"] for e in errors] == ["daemon.failed"], events
    assert not d.notify.has("READY")
    return str(errors[0]["error"])


@contextlib.contextmanager
def mounted(point: Path, *options: str, source: str = "tmpfs") -> Iterator[Path]:
    """``mount -t tmpfs`` (or a bind mount) at ``point``; always unmounted (lazily, by path)."""
    point.mkdir(parents=True, exist_ok=True)
    if source == "tmpfs":
        cmd = ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(point)]
    else:
        cmd = ["mount", "--bind", source, str(point)]
    subprocess.run(cmd, check=True, timeout=10, capture_output=True)
    try:
        if source != "tmpfs" and options:
            subprocess.run(
                ["mount", "-o", ",".join(("remount", "bind", *options)), str(point)],
                check=True,
                timeout=10,
                capture_output=True,
            )
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], timeout=10, check=False, capture_output=True)


@pytest.fixture
def mnt() -> Iterator[Path]:
    """A unique, short directory for mount points; removed after (mounts are gone by then)."""
    root = Path(tempfile.mkdtemp(prefix="asched-mnt-"))
    try:
        yield root
    finally:
        subprocess.run(["umount", "-lR", str(root / "m")], timeout=10, check=False,
                       capture_output=True)  # fmt: skip
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def fill(fs_root: Path) -> None:
    """Write until the file system is full (ENOSPC)."""
    fd = os.open(fs_root / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)


# Every data command, each once; a damaged store must refuse them all alike.
DATA_COMMANDS = [
    ["add", "w:0", "new one", "--in", "1m"],
    ["add", "w:0", "replace k1", "--in", "1m", "--key", "k1"],
    ["ls"],
    ["ls", "--all", "--json"],
    ["rm", "1"],
    ["rm", "--key", "k1"],
    ["pause", "1"],
    ["resume", "--key", "k1"],
    ["pause", "--target", "w:1"],
    ["history"],
    ["history", "1"],
    ["next", "1m", "self", "--target", "w:0"],
    ["send", "--grace", "0", "--tmux-socket", "/nonexistent/sock", "w:0", "now"],
]


# -- a damaged database ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_command_refuses_a_damaged_database(tmp_path: Path, kind: str) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    damage(state / DB_NAME, kind)
    db = state / DB_NAME
    before = sha(db)
    for argv in DATA_COMMANDS:
        line = one_line(cli([*argv, "--state-dir", str(state)]), 1)
        assert str(db) in line, line
        assert sha(db) == before, argv
        # A WAL database is looked at through a read-only connection, which leaves an empty
        # -wal (and its -shm index) beside it; nothing else may appear.
        assert {p.name for p in state.iterdir()} <= {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"}
        wal = state / f"{DB_NAME}-wal"
        assert not wal.exists() or wal.stat().st_size == 0


@pytest.mark.parametrize("kind", ["random", "newer"])
def test_the_daemon_refuses_a_damaged_database(spawner: Spawner, kind: str) -> None:
    state = spawner.tmp / "state"
    state.mkdir(mode=0o700)
    damage(state / DB_NAME, kind)
    db_before = sha(state / DB_NAME)
    code, d = run_daemon(spawner, state)
    error = failed_at_start(d, code, 1)
    assert str(state / DB_NAME) in error
    assert sha(state / DB_NAME) == db_before
    assert sorted(p.name for p in state.iterdir()) == ["asched.db", "asched.lock"]


# -- unsafe state directories ----------------------------------------------------------------------


def test_the_daemon_refuses_a_state_dir_others_can_write(spawner: Spawner) -> None:
    state = spawner.tmp / "state"
    state.mkdir()
    state.chmod(0o777)
    code, d = run_daemon(spawner, state)
    assert "writable by others" in failed_at_start(d, code, 1)
    assert list(state.iterdir()) == []


@needs_root
def test_the_daemon_refuses_a_state_dir_of_another_user(spawner: Spawner) -> None:
    state = spawner.tmp / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    code, d = run_daemon(spawner, state)
    assert "belongs to uid 65534" in failed_at_start(d, code, 1)
    assert list(state.iterdir()) == []


def test_a_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a dir")
    for argv in (["add", "w:0", "m", "--in", "1m"], ["next", "1m", "m", "--target", "w:0"]):
        assert "not a directory" in one_line(cli([*argv, "--state-dir", str(path)]), 1)
    assert "Not a directory" in one_line(cli(["status", "--state-dir", str(path)]), 1)
    # The reading commands never create anything: no database there means nothing scheduled.
    assert cli(["ls", "--json", "--state-dir", str(path)]).out == "[]\n"
    assert path.read_text() == "not a dir"


# -- symlinks --------------------------------------------------------------------------------------


def test_a_symlink_to_a_private_dir_of_ours_is_followed(tmp_path: Path) -> None:
    """Documented: the state dir may be a symlink; what counts is the directory it names."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert cli(["add", "w:0", "via the link", "--in", "1h", "--state-dir", str(link)]).code == 0
    assert stored_messages(real) == ["via the link"]
    assert link.is_symlink()  # used, not replaced


@pytest.mark.parametrize("kind", ["others-can-write", "dangling", "loop", "to-a-file"])
def test_a_symlink_to_something_unsafe_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    if kind == "others-can-write":
        target.mkdir()
        target.chmod(0o777)
    elif kind == "to-a-file":
        target.write_text("x")
    link = tmp_path / "link"
    link.symlink_to(link if kind == "loop" else target)
    for argv in (["add", "w:0", "m", "--in", "1m"], ["next", "1m", "m", "--target", "w:0"]):
        one_line(cli([*argv, "--state-dir", str(link)]), 1)
    assert link.is_symlink()
    if kind == "others-can-write":
        assert list(target.iterdir()) == []
    if kind == "dangling":
        assert not target.exists()  # not created through the link


@needs_root
def test_a_symlink_to_another_users_dir_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "theirs"
    target.mkdir(mode=0o700)
    os.chown(target, 65534, 65534)
    link = tmp_path / "link"
    link.symlink_to(target)
    line = one_line(cli(["add", "w:0", "m", "--in", "1m", "--state-dir", str(link)]), 1)
    assert "belongs to uid 65534" in line
    assert list(target.iterdir()) == []


def test_the_daemon_refuses_a_symlink_to_a_dir_others_can_write(spawner: Spawner) -> None:
    target = spawner.tmp / "target"
    target.mkdir()
    target.chmod(0o777)
    link = spawner.tmp / "state"
    link.symlink_to(target)
    code, d = run_daemon(spawner, link)
    assert "writable by others" in failed_at_start(d, code, 1)
    assert list(target.iterdir()) == []


def test_the_daemon_refuses_a_lock_file_that_is_a_symlink(spawner: Spawner) -> None:
    """O_NOFOLLOW: a planted symlink never redirects the lock's writes."""
    state = spawner.tmp / "state"
    state.mkdir(mode=0o700)
    victim = spawner.tmp / "victim"
    victim.write_text("keep me")
    (state / "asched.lock").symlink_to(victim)
    code, d = run_daemon(spawner, state)
    assert "lock file" in failed_at_start(d, code, 1)
    assert victim.read_text() == "keep me"


# -- read-only state directories -------------------------------------------------------------------


@pytest.mark.skipif(IS_ROOT, reason="root ignores mode bits; the read-only mounts cover root")
def test_a_read_only_mode_state_dir_refuses_writes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    seed(state)
    before = tree(state)
    state.chmod(0o500)
    try:
        for argv in (["add", "w:0", "m", "--in", "1m"], ["rm", "1"], ["pause", "1"]):
            ran = cli([*argv, "--state-dir", str(state)])
            one_line(ran, 1)
    finally:
        state.chmod(0o700)
    assert tree(state) == before


@needs_root
def test_a_read_only_mounted_state_dir(mnt: Path, spawner: Spawner) -> None:
    """A populated state dir mounted read-only: every write is refused with one line; reading
    needs the database's -shm file, which cannot be created, so ls/history fail alike (one line,
    exit 1); the daemon refuses to start; afterwards everything is as it was."""
    state = mnt / "state"
    messages = seed(state)
    before = tree(state)
    with mounted(mnt / "m", "ro", source=str(state)) as ro:
        for argv in DATA_COMMANDS:
            ran = cli([*argv, "--state-dir", str(ro)])
            if ran.code == 0:  # a read that managed without writing
                assert argv[0] in ("ls", "history"), ran
            else:
                one_line(ran, 1)
        code, d = run_daemon(spawner, ro)
        assert "Read-only file system" in failed_at_start(d, code, 1)
    assert tree(state) == before
    assert stored_messages(state) == messages


@needs_root
def test_an_empty_read_only_file_system(mnt: Path, spawner: Spawner) -> None:
    with mounted(mnt / "m", "ro", "size=1m", "mode=0700") as ro:
        line = one_line(cli(["add", "w:0", "m", "--in", "1m", "--state-dir", str(ro)]), 1)
        assert "Read-only file system" in line
        empty = cli(["ls", "--json", "--state-dir", str(ro)])
        assert (empty.code, empty.out, empty.err) == (0, "[]\n", "")
        code, d = run_daemon(spawner, ro)
        assert "Read-only file system" in failed_at_start(d, code, 1)
        assert list(ro.iterdir()) == []


# -- a full file system ----------------------------------------------------------------------------


@needs_root
def test_a_full_state_dir_refuses_writes_and_loses_nothing(mnt: Path, spawner: Spawner) -> None:
    with mounted(mnt / "m", "size=256k", "mode=0700") as fs:
        state = fs / "state"
        messages = seed(state)
        fill(fs)
        big = "x" * 100_000
        for argv in (
            ["add", "w:0", "small", "--in", "1m"],
            ["add", "w:0", big, "--in", "1m"],
            ["next", "1m", big, "--target", "w:0"],
            ["rm", "1"],
        ):
            one_line(cli([*argv, "--state-dir", str(state)]), 1)
        # Reading needs room for the -shm and -wal files: refused alike, one line, exit 1.
        ls = cli(["ls", "--state-dir", str(state)])
        assert ls.code == 0 or one_line(ls, 1)
        code, d = run_daemon(spawner, state)
        failed_at_start(d, code, 1)
        (fs / "filler").unlink()
        assert stored_messages(state) == messages
        conn = sqlite3.connect(state / DB_NAME)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            conn.close()


@needs_root
def test_a_running_daemon_survives_a_full_disk(mnt: Path, spawner: Spawner) -> None:
    """The disk fills while the daemon runs (deliveries keep failing: no tmux): it must neither
    crash nor lose rows, and it works again once there is room."""
    empty = mnt / "empty-path"
    empty.mkdir()
    with mounted(mnt / "m", "size=512k", "mode=0700") as fs:
        state = fs / "state"
        messages = seed(state)
        assert (
            cli(["add", "w:9", "every second", "--every", "1s", "--state-dir", str(state)]).code
            == 0
        )
        d = spawner.spawn(state, env={"PATH": str(empty)}, lock_timeout=1)
        d.notify.wait_for("READY", "1", timeout=15)

        def journaled() -> int:
            ran = cli(["history", "--json", "--limit", "1000", "--state-dir", str(state)])
            return ran.out.count('"checkin_id"') if ran.code == 0 else -1

        assert wait_until(lambda: journaled() >= 1, timeout=10)
        fill(fs)
        assert not wait_until(lambda: d.proc.poll() is not None, timeout=3), "daemon exited"
        (fs / "filler").unlink()
        after = journaled()
        assert wait_until(lambda: journaled() > after, timeout=10), "no deliveries after"
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=15) == 0
        events = d.events()
        assert not [e for e in events if e["event"] == "daemon.crashed"]
        # The disk was really full for the daemon: its writes failed, and it carried on.
        assert any("disk is full" in str(e.get("error", "")) for e in events), events
        assert messages[0] in stored_messages(state) and messages[1] in stored_messages(state)


# -- an invalid config file ------------------------------------------------------------------------

BAD_CONFIGS = {
    "syntax": ('[daemon]\ndrain_timeout_s = 5\nlog_level = "info\n', r"line 3"),
    "unknown-key": ("\n[daemon]\ndrain_timeout_s = 5\nbogus = 1\n", r":2: \[daemon\]: unknown key"),
    "wrong-type": ('[daemon]\ndrain_timeout_s = "five"\n', r":1: \[daemon\]: drain_timeout_s"),
    "bad-checkin": (
        '[[checkin]]\nname = "a"\nmessage = "m"\nevery = "soon"\n',
        r":1: \[\[checkin\]\] 'a': every",
    ),
    "not-utf-8": (b"[daemon]\nlog_level = '\xff'\n", r"cannot read config"),
}


def _write_config(path: Path, content: str | bytes) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_the_daemon_refuses_an_invalid_config(spawner: Spawner, name: str) -> None:
    content, where = BAD_CONFIGS[name]
    config = spawner.tmp / "config.toml"
    _write_config(config, content)
    state = spawner.tmp / "state"
    code, d = run_daemon(spawner, state, extra=["--config", str(config)])
    error = failed_at_start(d, code, 2)
    assert error.startswith(str(config)), error
    assert re.search(where, error), error
    assert not state.exists()  # the config is read before anything is created
    # `asched config check` says the same, on one line.
    line = one_line(cli(["config", "check", str(config)]), 2)
    assert line == f"asched: {error}"


@pytest.mark.parametrize("unit", ["asched.service", "asched@.service"])
def test_the_units_do_not_restart_a_daemon_that_cannot_start(unit: str) -> None:
    """Exit 2 (bad usage or config) and 75 (lock held) stop systemd's restarts at once."""
    text = (ROOT / "deploy" / "systemd" / unit).read_text()
    prevent = re.findall(r"^RestartPreventExitStatus=(.*)$", text, re.MULTILINE)
    assert prevent and {"2", "75"} <= set(" ".join(prevent).split()), prevent


# -- no tmux ---------------------------------------------------------------------------------------


def test_add_needs_no_tmux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    state = tmp_path / "state"
    ran = cli(["add", "w:0", "later", "--in", "1h", "--state-dir", str(state)])
    # Only the line that says no daemon runs: nothing about tmux.
    assert ran.code == 0 and ran.err.startswith(f"asched: no daemon is running on {state}"), ran
    assert ran.err.count("\n") == 1, ran
    assert stored_messages(state) == ["later"]


def test_a_daemon_without_tmux_runs_and_journals_why(spawner: Spawner) -> None:
    """No tmux binary: the daemon starts and serves; each due check-in is journaled as
    failed (tmux-missing); nothing crashes and SIGTERM stops it cleanly."""
    state = spawner.tmp / "state"
    empty = spawner.tmp / "empty-path"
    empty.mkdir()
    assert cli(["add", "w:0", "hello", "--in", "1s", "--state-dir", str(state)]).code == 0
    d = spawner.spawn(state, env={"PATH": str(empty)}, lock_timeout=1)
    d.notify.wait_for("READY", "1", timeout=15)

    def outcome() -> str:
        ran = cli(["history", "--json", "--state-dir", str(state)])
        return ran.out if '"failed"' in ran.out else ""

    assert wait_until(lambda: bool(outcome()), timeout=10)
    assert '"tmux-missing"' in outcome()
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=15) == 0
    no_traceback(d.stderr_path.read_text())
    assert all(e["level"] not in ("error", "critical") for e in d.events())
