"""``asched mcp``: the MCP server, driven by the SDK's own client over stdio (mcpclient.py).

Each tool with good input, checked in the real SQLite store; with bad input, the tool error must
be the very line the command line prints for the same input. The server runs as a real process
with a temp HOME and state directory, ``$TMUX_PANE`` set as in an agent's pane, and either no
tmux server at all or a private one (tests/support/tmux.py). One test has a real daemon deliver
what the tools scheduled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asched.core.models import CatchUp, CheckIn, Cron, Every, NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.core.states import DeliveryState
from asched.store.store import Store
from tests.cli.mcpclient import McpClient
from tests.support.daemons import Spawner, wait_until
from tests.support.tmux import Server

PANE = "%5"
TOOLS = {
    "schedule_checkin", "set_next_checkin", "list_checkins", "pause_checkins",
    "resume_checkins", "cancel_checkin", "checkin_history",
}  # fmt: skip
Start = Callable[..., McpClient]


@pytest.fixture
def agent_env(tmp_path: Path) -> dict[str, str]:
    """What an agent in pane %5 passes on: a HOME, a state directory, no tmux server."""
    (tmp_path / "home").mkdir()
    return {
        "HOME": str(tmp_path / "home"),
        "ASCHED_STATE_DIR": str(tmp_path / "state"),
        "ASCHED_TMUX_SOCKET": str(tmp_path / "no-tmux-here"),
        "TMUX_PANE": PANE,
    }


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """``start(env, *args)``: an ``asched mcp`` session; all of them closed at teardown."""
    clients: list[McpClient] = []

    def go(env: dict[str, str], *args: str) -> McpClient:
        clients.append(McpClient(env, tmp_path / f"mcp-{len(clients)}.stderr", args))
        return clients[-1]

    yield go
    for client in clients:
        client.close()


@pytest.fixture
def mcp(start: Start, agent_env: dict[str, str]) -> McpClient:
    """A session of the agent in pane %5."""
    return start(agent_env)


def checkins(env: dict[str, str]) -> dict[int, CheckIn]:
    with Store.open(Path(env["ASCHED_STATE_DIR"]) / DB_NAME) as store:
        return {c.id: c for c in store.list_checkins()}


def cli_error(env: dict[str, str], *argv: str) -> str:
    """The one line ``asched ARGV`` prints for a usage error, run with the agent's env."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "ASCHED_"))}
    done = subprocess.run(
        [sys.executable, "-m", "asched", *argv],
        capture_output=True, text=True, timeout=30, env={**full, **env},
    )  # fmt: skip
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr.rstrip("\n")


def soon(delta: timedelta) -> datetime:
    return datetime.now(UTC) + delta


# -- the tools --------------------------------------------------------------------------------


def test_lists_every_tool_with_a_description(mcp: McpClient) -> None:
    tools = {t.name: t for t in mcp.tools()}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 150, tool.name
        assert tool.input_schema["type"] == "object"
    assert tools["schedule_checkin"].input_schema["required"] == ["message"]
    assert tools["set_next_checkin"].input_schema["required"] == ["delay", "message"]
    assert tools["list_checkins"].annotations is not None
    assert tools["list_checkins"].annotations.read_only_hint is True
    assert mcp.init.server_info.name == "asched"
    assert mcp.init.instructions and "set_next_checkin" in mcp.init.instructions


def test_schedule_checkin(mcp: McpClient, agent_env: dict[str, str]) -> None:
    before = soon(timedelta(0)).replace(microsecond=0)
    r = mcp.ok("schedule_checkin", message="check the build", delay="30m")
    assert (r["id"], r["target"], r["replaced"], r["origin"]) == (1, PANE, False, "mcp")
    assert r["summary"].startswith(f"added check-in 1 for {PANE}, next ")
    assert r["summary"].endswith("(in 30m)")
    c = checkins(agent_env)[1]
    assert (c.target, c.message, c.key) == (PANE, "check the build", None)
    assert isinstance(c.rule, Once)
    assert c.next_due is not None
    assert before + timedelta(minutes=30) <= c.next_due <= soon(timedelta(minutes=30))

    r = mcp.ok("schedule_checkin", message="status?", every="1h", count=3, key="status")
    c = checkins(agent_env)[r["id"]]
    assert isinstance(c.rule, Every)
    assert (c.rule.interval_s, c.remaining, c.key) == (3600, 3, "status")
    again = mcp.ok("schedule_checkin", message="status now", delay="10m", key="status")
    assert (again["id"], again["replaced"]) == (r["id"], True)
    assert again["summary"].startswith(f"replaced check-in {r['id']} for {PANE}")
    assert isinstance(checkins(agent_env)[r["id"]].rule, Once)

    r = mcp.ok(
        "schedule_checkin", message="stand-up", cron="0 9 * * MON-FRI", tz="Europe/Berlin",
        target="work:0.1", grace="10m", catch_up="once", when_idle="2m",
    )  # fmt: skip
    c = checkins(agent_env)[r["id"]]
    assert (c.target, c.rule) == ("work:0.1", Cron("0 9 * * MON-FRI", "Europe/Berlin"))
    assert (c.grace_s, c.catch_up, c.idle_s, c.idle_wait) == (600.0, CatchUp.ONCE, 120.0, True)
    # No tmux server answered: nothing to say about the target. No daemon runs: that is said.
    assert r["warning"] == (
        f"no daemon is running on {agent_env['ASCHED_STATE_DIR']}, so nothing will deliver this"
        f" yet; start one: asched daemon --state-dir {agent_env['ASCHED_STATE_DIR']}"
    )

    at = soon(timedelta(hours=2)).replace(microsecond=0)
    r = mcp.ok("schedule_checkin", message="later", at=at.isoformat())
    assert checkins(agent_env)[r["id"]].rule == Once(at)
    assert len(checkins(agent_env)) == 4


def test_set_next_checkin_keeps_one_per_pane(mcp: McpClient, agent_env: dict[str, str]) -> None:
    first = mcp.ok("set_next_checkin", delay="30m", message="first")
    assert first["summary"].startswith(f"set the next check-in of {PANE} (id 1): in 30m, at ")
    second = mcp.ok("set_next_checkin", delay="1h", message="second")
    assert (second["id"], second["replaced"]) == (1, True)
    assert second["summary"].startswith(f"replaced the next check-in of {PANE} (id 1): in 1h")
    (c,) = checkins(agent_env).values()
    assert (c.target, c.key, c.origin, c.message) == (PANE, f"next:{PANE}", "next", "second")
    # As `asched next`: a paused next check-in stays paused when replaced.
    mcp.ok("pause_checkins")
    third = mcp.ok("set_next_checkin", delay="2h", message="third")
    assert third["paused"] is True
    assert "(paused: resume_checkins to deliver it)" in third["summary"]
    other = mcp.ok("set_next_checkin", delay="5m", message="theirs", target="%9")
    assert (other["key"], other["target"]) == ("next:%9", "%9")
    assert len(checkins(agent_env)) == 2


def test_list_pause_resume_cancel(mcp: McpClient, agent_env: dict[str, str]) -> None:
    a = mcp.ok("schedule_checkin", message="a", delay="10m")["id"]
    b = mcp.ok("schedule_checkin", message="b", every="1h", key="bee")["id"]
    c = mcp.ok("schedule_checkin", message="c", delay="20m", target="%9")["id"]

    mine = mcp.ok("list_checkins")
    assert (mine["pane"], [x["id"] for x in mine["checkins"]]) == (PANE, [a, b])
    assert mine["finished_hidden"] == 0
    assert [x["id"] for x in mcp.ok("list_checkins", all_targets=True)["checkins"]] == [a, c, b]
    assert [x["id"] for x in mcp.ok("list_checkins", target="%9")["checkins"]] == [c]

    paused = mcp.ok("pause_checkins")
    assert (paused["target"], paused["paused"], paused["changed"]) == (PANE, True, 2)
    assert {i: x.paused for i, x in checkins(agent_env).items()} == {a: True, b: True, c: False}
    assert mcp.ok("pause_checkins")["changed"] == 0
    one = mcp.ok("resume_checkins", id=a)
    assert (one["id"], one["paused"], one["changed"]) == (a, False, True)
    assert mcp.ok("resume_checkins", key="bee")["paused"] is False
    assert mcp.ok("pause_checkins", target="%9")["changed"] == 1
    assert {i: x.paused for i, x in checkins(agent_env).items()} == {a: False, b: False, c: True}

    gone = mcp.ok("cancel_checkin", id=a)
    assert (gone["id"], gone["summary"]) == (a, f"removed check-in {a} for {PANE}")
    assert mcp.ok("cancel_checkin", key="bee")["id"] == b
    assert list(checkins(agent_env)) == [c]
    assert mcp.ok("list_checkins")["checkins"] == []
    nothing = mcp.error("resume_checkins")  # none of its own left: as `--target` with none
    assert nothing == cli_error(agent_env, "resume", "--target", PANE)
    assert mcp.ok("checkin_history") == {"deliveries": []}
    assert mcp.ok("checkin_history", id=c, limit=5) == {"deliveries": []}


def test_state_dir_option(start: Start, agent_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in agent_env.items() if k != "ASCHED_STATE_DIR"}
    client = start(env, "--state-dir", str(tmp_path / "given"))
    client.ok("set_next_checkin", delay="5m", message="here")
    assert len(checkins({"ASCHED_STATE_DIR": str(tmp_path / "given")})) == 1
    assert not (tmp_path / "state").exists()


# -- bad input: the command line's own words ----------------------------------------------------

# schedule_checkin's arguments and asched add's options: the same names (delay is --in).
BAD_SCHEDULE: list[dict[str, Any]] = [
    {"message": "x", "delay": "soon"},
    {"message": "x", "delay": "5"},
    {"message": "  ", "delay": "5m"},
    {"message": "x"},
    {"message": "x", "cron": "61 * * * *"},
    {"message": "x", "delay": "5m", "tz": "Mars/Base"},
    {"message": "x", "delay": "5m", "at": "09:00"},
    {"message": "x", "at": "2001-01-01T00:00Z"},
    {"message": "x", "delay": "5m", "target": "work"},
    {"message": "x", "every": "1h", "count": 0},
    {"message": "x", "every": "1h", "cron": "0 * * * *"},
    {"message": "x", "delay": "5m", "catch_up": "all"},
    {"message": "x", "delay": "5m", "grace": "long"},
    {"message": "x", "delay": "5m", "key": "bad key\n"},
    {"message": "x", "delay": "5m", "if_idle": "1m", "when_idle": "1m"},
]
BAD_NEXT = [("soon", "x"), ("0s", "x"), ("5m", ""), ("1h30", "x")]
BAD: list[tuple[str, dict[str, Any], list[str]]] = [
    ("cancel_checkin", {"id": 99}, ["rm", "99"]),
    ("cancel_checkin", {"id": 0}, ["rm", "0"]),
    ("cancel_checkin", {"key": "nope"}, ["rm", "--key", "nope"]),
    ("cancel_checkin", {}, ["rm"]),
    ("cancel_checkin", {"id": 1, "key": "k"}, ["rm", "1", "--key", "k"]),
    ("pause_checkins", {"id": 99}, ["pause", "99"]),
    ("pause_checkins", {"id": 1, "target": PANE}, ["pause", "1", "--target", PANE]),
    ("resume_checkins", {"target": "nowhere:0"}, ["resume", "--target", "nowhere:0"]),
    ("checkin_history", {"id": 99}, ["history", "99"]),
    ("checkin_history", {"limit": 0}, ["history", "--limit", "0"]),
    ("list_checkins", {"target": "work"}, ["ls", "--target", "work"]),
]
BAD += [("schedule_checkin", a, []) for a in BAD_SCHEDULE]
BAD += [("set_next_checkin", {"delay": d, "message": m}, ["next", d, m]) for d, m in BAD_NEXT]


def add_argv(arguments: dict[str, Any]) -> list[str]:
    """``asched add`` with the options a schedule_checkin call names."""
    rest = {k: v for k, v in arguments.items() if k not in ("message", "target")}
    argv = ["add", arguments.get("target", PANE), arguments["message"]]
    for name, value in rest.items():
        argv += ["--" + ("in" if name == "delay" else name.replace("_", "-")), str(value)]
    return argv


def test_bad_input_fails_with_the_cli_line(mcp: McpClient, agent_env: dict[str, str]) -> None:
    mcp.ok("schedule_checkin", message="exists", delay="1h")  # a database to look things up in
    before = checkins(agent_env)
    for tool, arguments, argv in BAD:
        text = mcp.error(tool, **arguments)
        if tool == "schedule_checkin":
            argv = add_argv(arguments)
        elif tool == "set_next_checkin":
            argv += ["--target", PANE]
        assert text == cli_error(agent_env, *argv), (tool, arguments)
        assert text.startswith("asched: ") and "\n" not in text
    assert checkins(agent_env) == before  # nothing written


def test_outside_tmux_needs_a_target(start: Start, agent_env: dict[str, str]) -> None:
    env = {k: v for k, v in agent_env.items() if k != "TMUX_PANE"}
    mcp = start(env)
    text = mcp.error("set_next_checkin", delay="30m", message="x")
    assert text == cli_error(env, "next", "30m", "x")
    hint = "not inside tmux ($TMUX_PANE is not set); give --target session:window[.pane]"
    assert text == f"asched: next: {hint}"
    for tool, command in (
        ("schedule_checkin", "add"), ("list_checkins", "ls"), ("pause_checkins", "pause"),
        ("resume_checkins", "resume"), ("checkin_history", "history"),
    ):  # fmt: skip
        arguments = {"message": "x", "delay": "5m"} if tool == "schedule_checkin" else {}
        assert mcp.error(tool, **arguments) == f"asched: {command}: {hint}"
    # An explicit target, or all of them, needs no pane.
    assert mcp.ok("schedule_checkin", message="x", delay="5m", target="work:0")["id"] == 1
    assert len(mcp.ok("list_checkins", all_targets=True)["checkins"]) == 1
    env["TMUX_PANE"] = "not-a-pane"
    text = start(env).error("set_next_checkin", delay="30m", message="x")
    assert text == cli_error(env, "next", "30m", "x")


# -- with tmux, and with a daemon ----------------------------------------------------------------


def test_own_pane_by_any_name(start: Start, agent_env: dict[str, str], server: Server) -> None:
    pane = server.new_session("agent", "cat")
    server.new_session("other", "cat")
    env = {**agent_env, "TMUX_PANE": pane, "ASCHED_TMUX_SOCKET": server.sock}
    state = Path(env["ASCHED_STATE_DIR"])
    state.mkdir(mode=0o700)
    due = soon(timedelta(hours=1))
    with Store.open(state / DB_NAME) as store:  # as `asched add` by a person would store them
        for target in ("agent:0", "other:0", "agent:0.0"):
            store.add_checkin(
                NewCheckIn(target=target, message=target, rule=Once(due), next_due=due)
            )
    mcp = start(env)
    listed = mcp.ok("list_checkins")
    assert [c["target"] for c in listed["checkins"]] == ["agent:0", "agent:0.0"]
    assert mcp.ok("pause_checkins")["changed"] == 2
    assert {c.target: c.paused for c in checkins(env).values()} == {
        "agent:0": True, "other:0": False, "agent:0.0": True,
    }  # fmt: skip
    r = mcp.ok("schedule_checkin", message="x", delay="5m", target="agent:nowhere")
    assert "; warning: agent:nowhere names no pane on " in r["warning"]


@pytest.mark.timeout(90)
def test_a_daemon_delivers_what_the_tools_set(
    start: Start, agent_env: dict[str, str], server: Server, short_tmp: Path
) -> None:
    out = server.root / "typed"
    pane = server.new_session("agent", f"cat > {out}")
    env = {**agent_env, "TMUX_PANE": pane, "ASCHED_TMUX_SOCKET": server.sock}
    env["ASCHED_STATE_DIR"] = str(short_tmp / "state")  # the control socket's path is short
    spawner = Spawner(short_tmp, "asyncio")
    try:
        d = spawner.spawn(short_tmp / "state", extra=["--tmux-socket", server.sock])
        d.notify.wait_for("READY", "1", timeout=15)
        mcp = start(env)
        r = mcp.ok("set_next_checkin", delay="1s", message="mcp-hello")
        # Woken by the tool, the daemon delivers at once (asleep, it would look in 30 s).
        assert wait_until(lambda: out.exists() and "mcp-hello" in out.read_text(), 10, 0.05)

        def final() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = mcp.ok("checkin_history")["deliveries"]
            return [x for x in rows if x["state"] in ("verified", "unverified", "failed")]

        assert wait_until(lambda: bool(final()), 10, 0.2)
        (row,) = mcp.ok("checkin_history")["deliveries"]
        assert (row["checkin_id"], row["pane"], row["state"]) == (
            r["id"], pane, DeliveryState.VERIFIED.value,
        )  # fmt: skip
        assert mcp.ok("checkin_history", id=r["id"])["deliveries"] == [row]
        assert mcp.ok("list_checkins") == {"pane": pane, "checkins": [], "finished_hidden": 1}
        (done,) = mcp.ok("list_checkins", finished=True)["checkins"]
        assert (done["id"], done["next_due"], done["last_due"]) == (r["id"], None, row["due_at"])
        assert out.read_text() == "mcp-hello\n"
    finally:
        spawner.cleanup()


# -- the command line of `asched mcp` -------------------------------------------------------------


def test_mcp_command_line(agent_env: dict[str, str], tmp_path: Path) -> None:
    assert cli_error(agent_env, "mcp", "--force").endswith(
        "mcp: --claude and --force go with install or uninstall"
    )
    assert cli_error(agent_env, "mcp", "install") == (
        "asched: mcp install: name the agent: claude or gemini"
    )
    assert "invalid choice" in cli_error(agent_env, "mcp", "install", "codex")
    # Only `asched mcp` loads the SDK (a second's import): not --version, ls or next.
    probe = (
        "import sys; from asched.cli.main import main\n"
        "for argv in (['ls'], ['next', '5m', 'x', '--target', '%1']): main(argv)\n"
        "assert not [m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30,
        env={**os.environ, **agent_env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
