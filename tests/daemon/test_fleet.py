"""Declarative check-ins: the config file, and a daemon following tmux windows that come and go."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from asched.core.errors import UsageError
from asched.core.models import Cron, Every, NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.daemon import config
from asched.daemon.fleet import ORIGIN, Window, reconcile
from asched.store.async_store import AsyncStore
from asched.store.store import Store
from tests.cliharness import asched_process
from tests.support.daemons import DaemonProc, Spawner, wait_until
from tests.support.tmux import Server

GOOD = """
[delivery]
settle_s = 0.1
min_gap_s = 0

[[checkin]]
name = "dev"
match = { session = "proj-*" }
every = "1s"
message = "dev check-in"

[[checkin]]
name = "pm"
match = { role = "pm" }
cron = "*/30 * * * *"
tz = "Europe/Berlin"
message = "pm check-in"
"""


def test_parse_good_file() -> None:
    cfg = config.parse(GOOD)
    assert [e.name for e in cfg.checkins] == ["dev", "pm"]
    dev, pm = cfg.checkins
    assert dev.every_s == 1 and dev.session == "proj-*" and dev.window == "*"
    assert pm.cron == "*/30 * * * *" and pm.role == "pm"
    assert cfg.delivery.settle_s == 0.1 and cfg.delivery.min_gap_s == 0
    assert dev.matches("proj-a", "anything", "") and not dev.matches("work", "x", "")
    assert pm.matches("work", "x", "pm") and not pm.matches("work", "x", "dev")


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ('[[checkin]]\nname = "a"\nmessage = "m"\n', 1, "exactly one of every or cron"),
        ('[daemon]\n\n[[checkin]]\nname="a"\nevery="5q"\nmessage="m"\n', 3, "5q"),
        ('[[checkin]]\nname="a"\nevery="1m"\nmessage="m"\n[[checkin]]\nname="b"\ncron="61 * * * *"'
         '\nmessage="m"\n', 5, "minute"),
        ('[[checkin]]\nname="a"\nevery="1m"\nmessage="m"\ntz="Mars/Base"\n', 1, "Mars/Base"),
        ('[delivery]\nsettle = 1\n', 1, "unknown key"),
        ('[delivery]\ncopy_mode = "drop"\n', 1, "copy_mode"),
        ('[delivery]\ncontrol_client = "yes"\n', 1, "control_client"),
        ('[daemon]\nlog_level = "loud"\n', 1, "log_level"),
        ('[[checkin]]\nname="a b"\nevery="1m"\nmessage="m"\n', 1, "name"),
        ("[daemon\n", 1, "line 1"),
    ],
)  # fmt: skip
def test_bad_files_name_the_line(text: str, line: int, needle: str) -> None:
    with pytest.raises(UsageError) as err:
        config.parse(text, Path("/etc/x.toml"))
    msg = str(err.value)
    assert "\n" not in msg
    assert needle in msg
    assert f"/etc/x.toml:{line}:" in msg or f"line {line}" in msg


def test_config_check_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[checkin]]\nname = "a"\nevery = "soon"\nmessage = "m"\n')
    out = asched_process("config", "check", str(bad))
    assert out.returncode == 2
    assert out.stderr.startswith(f"asched: {bad}:1:") and "Traceback" not in out.stderr
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    out = asched_process("config", "check", str(good))
    assert out.returncode == 0 and "dev" in out.stdout


async def test_reconcile_creates_changes_and_retires(tmp_path: Path) -> None:
    store = await AsyncStore.open(tmp_path / "a.db")
    try:
        now = datetime.now(UTC)
        user = await store.add_checkin(
            NewCheckIn(target="proj-a:0", message="mine", rule=Once(now), next_due=now)
        )
        entries = config.parse(GOOD).checkins
        windows = [Window("proj-a", 0, "edit", ""), Window("work", 1, "x", "pm")]
        assert await reconcile(store, entries, windows, now) == 2
        assert await reconcile(store, entries, windows, now) == 0  # nothing changed
        rows = {c.key: c for c in await store.list_by_origin(ORIGIN)}
        assert set(rows) == {"config:dev:proj-a:0", "config:pm:work:1"}
        assert isinstance(rows["config:dev:proj-a:0"].rule, Every)
        changed = config.parse(GOOD.replace('"dev check-in"', '"new words"')).checkins
        assert await reconcile(store, changed, windows, now) == 1
        got = await store.get_by_key("config:dev:proj-a:0")
        assert got is not None and got.message == "new words"
        assert await reconcile(store, changed, windows[1:], now) == 1  # proj-a is gone
        assert await store.get_by_key("config:dev:proj-a:0") is None
        assert await store.get_checkin(user.id) == user  # never touched
    finally:
        await store.aclose()


def _config_rows(state: Path) -> dict[str, str]:
    if not (state / DB_NAME).exists():
        return {}
    with Store.open(state / DB_NAME) as store:
        return {c.key or "": c.message for c in store.list_by_origin(ORIGIN)}


def test_daemon_follows_sessions_and_reloads(
    spawner: Spawner, short_tmp: Path, server: Server
) -> None:
    state = short_tmp / "state"
    cfg = short_tmp / "config.toml"
    cfg.write_text(GOOD)
    out = server.root / "a.txt"
    server.new_session("other", "cat > /dev/null")
    d: DaemonProc = spawner.spawn(
        state, extra=["--tmux-socket", server.sock, "--config", str(cfg)], lock_timeout=5
    )
    d.notify.wait_for("READY", "1", timeout=15)
    asched_process("add", "other:0", "user's own", "--in", "1h", state=state, check=True)
    with Store.open(state / DB_NAME) as store:
        (user,) = [c for c in store.list_checkins() if c.origin == "user"]
    server.new_session("proj-a", f"cat > {out}")
    assert wait_until(lambda: "config:dev:proj-a:0" in _config_rows(state), timeout=10)
    # It fires: every second into the new session.
    assert wait_until(lambda: out.exists() and out.read_text().count("dev check-in") >= 2, 10)
    cfg.write_text(GOOD.replace('"dev check-in"', '"reloaded words"'))
    d.signal(signal.SIGHUP)
    assert wait_until(
        lambda: _config_rows(state).get("config:dev:proj-a:0") == "reloaded words", timeout=10
    )
    server.tmux("kill-session", "-t", "=proj-a")
    assert wait_until(lambda: "config:dev:proj-a:0" not in _config_rows(state), timeout=10)
    with Store.open(state / DB_NAME) as store:
        assert store.get_checkin(user.id) == user  # the user's check-in was never touched
    # The row goes before its log line is written: wait for the line (a partial last line of a
    # log still being written is skipped).
    logged = {"config.reloaded", "fleet.checkin_retired"}
    assert wait_until(lambda: logged <= {e["event"] for e in d.events(strict=False)}, timeout=10)
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    assert json.loads(json.dumps(_config_rows(state))) == {}


def test_a_message_the_daemon_would_refuse_is_refused_with_its_line() -> None:
    text = '[[checkin]]\nname = "a"\nevery = "1m"\nmessage = "bell \\u0007 here"\n'
    with pytest.raises(UsageError, match=r"x.toml:1: .*control characters"):
        config.parse(text, Path("x.toml"))
    with pytest.raises(UsageError, match="prefix"):
        config.parse('[delivery]\nprefix = "\\u001b[31m"\n', Path("x.toml"))


async def test_a_changed_entry_keeps_a_pause(tmp_path: Path) -> None:
    store = await AsyncStore.open(tmp_path / "a.db")
    try:
        now = datetime.now(UTC)
        windows = [Window("proj-a", 0, "edit", "")]
        await reconcile(store, config.parse(GOOD).checkins, windows, now)
        row = await store.get_by_key("config:dev:proj-a:0")
        assert row is not None
        await store.set_paused(row.id, True)
        changed = config.parse(GOOD.replace('"dev check-in"', '"new words"')).checkins
        assert await reconcile(store, changed, windows, now) == 1
        after = await store.get_by_key("config:dev:proj-a:0")
        assert after is not None and after.message == "new words" and after.paused
    finally:
        await store.aclose()


def test_the_example_config_matches_tmux_orchestrators_windows() -> None:
    # Tmux-Orchestrator names its windows Orchestrator, Project-Manager, Developer (and never
    # sets @asched_role): the example's entries match them whatever the case, and nothing else.
    example = Path(__file__).resolve().parents[2] / "deploy" / "asched.example.toml"
    entries = {e.name: e for e in config.load(example).checkins}
    for window, name in (
        ("Orchestrator", "orchestrator"),
        ("Project-Manager", "project-manager"),
        ("Developer", "developer"),
        ("developer-2", "developer"),
    ):
        matched = [e.name for e in entries.values() if e.matches("proj", window, "")]
        assert matched == [name], (window, matched)
    assert not any(e.matches("proj", "Shell", "") for e in entries.values())


def test_ignore_case_must_be_a_boolean(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[checkin]]\nname = "x"\nmatch = { window = "a", ignore_case = "yes" }\n'
        'every = "5m"\nmessage = "m"\n'
    )
    with pytest.raises(UsageError, match="ignore_case must be true or false"):
        config.load(cfg)


ZONED = """
[[checkin]]
name = "standup"
cron = "0 9 * * MON-FRI"
message = "stand-up"

[[checkin]]
name = "berlin"
cron = "0 9 * * MON-FRI"
tz = "Europe/Berlin"
message = "stand-up in Berlin"

[[checkin]]
name = "orch"
every = "20min"
match = { window = "Orchestrator" }
message = "status"
"""


async def test_cron_entries_use_the_systems_zone_as_add_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One zone rule (issue 17, item 5): a [[checkin]] cron entry without tz is in the system's
    # zone, as `asched add --cron` without --tz; not in UTC.
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    entries = config.parse(ZONED).checkins
    assert [e.tz for e in entries] == [None, "Europe/Berlin", None]
    assert entries[2].every_s == 1200  # a systemd time span, as anywhere else
    store = await AsyncStore.open(tmp_path / "a.db")
    try:
        now = datetime.now(UTC)
        windows = [Window("proj", 0, "Orchestrator", "")]
        assert await reconcile(store, entries, windows, now) == 3
        rows = {c.key: c.rule for c in await store.list_by_origin(ORIGIN)}
        assert rows["config:standup:proj:0"] == Cron("0 9 * * MON-FRI", "Asia/Tokyo")
        assert rows["config:berlin:proj:0"] == Cron("0 9 * * MON-FRI", "Europe/Berlin")
        # The system's zone changes: the next round moves the entry without tz, and only it.
        assert await reconcile(store, entries, windows, now, local_zone="America/New_York") == 1
        standup = await store.get_by_key("config:standup:proj:0")
        assert standup is not None
        assert standup.rule == Cron("0 9 * * MON-FRI", "America/New_York")
    finally:
        await store.aclose()
    env = {**os.environ, "TZ": "Asia/Tokyo", "ASCHED_TMUX_SOCKET": str(tmp_path / "no-tmux")}
    add = ["add", "w:0", "m", "--cron", "0 9 * * MON-FRI", "--json"]
    cli = asched_process(*add, state=tmp_path / "state", env=env)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["rule"]["tz"] == "Asia/Tokyo"  # the same zone as the config's


def test_config_check_prints_durations_and_zones_as_people_write_them(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(ZONED)
    out = asched_process("config", "check", str(cfg), env={**os.environ, "TZ": "Asia/Tokyo"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()[1:]
    assert lines == [
        "  [[checkin]] standup: cron '0 9 * * MON-FRI' Asia/Tokyo (this system's zone),"
        " session=* window=*",
        "  [[checkin]] berlin: cron '0 9 * * MON-FRI' Europe/Berlin, session=* window=*",
        "  [[checkin]] orch: every 20m, session=* window=Orchestrator",
    ]
