"""Never silent: a check-in stored where no daemon runs says so, and the command line finds the
daemon that serves its user (published in its runtime directory: asched/daemon/published.py).

Real daemons (tests/support/daemons.py), real command-line processes with a clean environment
(no ASCHED_* variables, a HOME and XDG_RUNTIME_DIR of the test's own).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asched.daemon import published
from asched.daemon.lock import LOCK_NAME, read_holder
from tests.cli.test_legacy import make_db, row
from tests.cliharness import NO_DAEMON, stored
from tests.support.daemons import Spawner

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def loop_name() -> str:
    """One loop is enough here (the conftest's spawner otherwise runs every test under both)."""
    return "asyncio"


@pytest.fixture
def home(short_tmp: Path) -> dict[str, str]:
    """A user's environment with no asched setting: its own HOME and runtime directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASCHED_", "XDG_", "TMUX"))}
    env.pop("RUNTIME_DIRECTORY", None)
    env.pop("STATE_DIRECTORY", None)
    (short_tmp / "home").mkdir()
    (short_tmp / "run").mkdir(mode=0o700)
    env["HOME"] = str(short_tmp / "home")
    env["XDG_RUNTIME_DIR"] = str(short_tmp / "run")
    env["ASCHED_TMUX_SOCKET"] = str(short_tmp / "no-tmux")  # no server: no target warnings
    return env


def asched(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asched", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def default_dir(env: dict[str, str]) -> Path:
    return Path(env["HOME"]) / ".local" / "state" / "asched"


# -- no daemon: stored, and one line says so -----------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("add", "work:0", "status?", "--in", "30m"),
        ("next", "30m", "status?", "--target", "work:0"),
        ("add", "work:0", "status?", "--in", "30m", "--json"),
    ],
)
def test_a_write_with_no_daemon_is_stored_with_one_line(
    home: dict[str, str], argv: tuple[str, ...]
) -> None:
    done = asched(home, *argv)
    assert done.returncode == 0, done
    state = default_dir(home)
    assert [c.message for c in stored(state)] == ["status?"]
    assert done.stderr == (
        f"{NO_DAEMON}{state}, so nothing will deliver this yet; start one:"
        " asched daemon (or as a service: asched install-service --user)\n"
    )


def test_the_hint_names_the_state_directory_and_the_user_unit(home: dict[str, str]) -> None:
    other = Path(home["HOME"]) / "elsewhere"
    done = asched(home, "add", "w:0", "x", "--in", "1h", "--state-dir", str(other))
    assert done.stderr.endswith(f"start one: asched daemon --state-dir {other}\n"), done
    unit = Path(home["HOME"]) / ".config" / "systemd" / "user" / "asched.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\n")
    done = asched(home, "add", "w:0", "x", "--in", "1h")
    assert done.stderr.endswith("start one: systemctl --user start asched\n"), done


def test_import_legacy_with_no_daemon_says_so_once(home: dict[str, str], short_tmp: Path) -> None:
    src = make_db(short_tmp / "task_queue.db", [row(note="one"), row(note="two", window=1)])
    done = asched(home, "import-legacy", str(src))
    assert done.returncode == 0, done
    assert len(stored(default_dir(home))) == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"{NO_DAEMON}{default_dir(home)}, ")
    again = asched(home, "import-legacy", str(src))  # nothing new stored: nothing to say
    assert again.returncode == 0 and again.stderr == "", again


def test_a_running_daemon_means_no_warning(home: dict[str, str], spawner: Spawner) -> None:
    state = default_dir(home)
    d = spawner.spawn(state)
    d.wait_ready()
    for argv in (("add", "w:0", "x", "--in", "1h"), ("next", "1h", "y", "--target", "w:1")):
        done = asched(home, *argv)
        assert done.returncode == 0 and done.stderr == "", done


def test_a_wake_up_written_to_a_daemon_kept_off_the_cpu_counts_as_told(
    home: dict[str, str], spawner: Spawner
) -> None:
    """A daemon that cannot answer within the command's 0.5 s (stopped here; under 50 commands at
    once on two cores, busy) reads the wake-up when it runs again: no warning (the chaos suite's
    contention case once got one)."""
    state = default_dir(home)
    d = spawner.spawn(state)
    d.wait_ready()
    os.kill(d.pid, signal.SIGSTOP)
    try:
        done = asched(home, "add", "w:0", "x", "--in", "1h")
    finally:
        os.kill(d.pid, signal.SIGCONT)
    assert done.returncode == 0 and done.stderr == "", done


def test_a_daemon_that_does_not_answer_the_wake_up_is_named(
    home: dict[str, str], spawner: Spawner
) -> None:
    """An idle daemon sleeps until its next due time: a write it was not told of (its control
    socket gone) would wait for its next wake-up. The command says so, with the way to wake it."""
    state = default_dir(home)
    d = spawner.spawn(state)
    d.wait_ready()
    sock = read_holder(state / LOCK_NAME).socket
    assert sock
    os.unlink(sock)
    done = asched(home, "add", "w:0", "x", "--in", "1h")
    assert done.returncode == 0, done
    (line,) = done.stderr.splitlines()
    assert "did not answer its wake-up" in line and f"kill -HUP {d.pid}" in line, line


# -- the daemon that serves this user, found with no setting -------------------------------------


def test_the_cli_follows_a_published_daemon(
    home: dict[str, str], spawner: Spawner, short_tmp: Path
) -> None:
    """A daemon as systemd runs it (RUNTIME_DIRECTORY), on a state directory the command line
    does not know (as /var/lib/asched/USER under asched@USER): found, written to, no warning."""
    runtime = Path(home["XDG_RUNTIME_DIR"]) / "asched"
    runtime.mkdir(mode=0o700)
    served = short_tmp / "var-lib-asched-user"
    d = spawner.spawn(served, env={"RUNTIME_DIRECTORY": str(runtime)})
    d.wait_ready()
    assert os.readlink(runtime / published.POINTER_NAME) == str(served)
    assert any(e["event"] == "state.published" for e in d.events())

    status: dict[str, Any] = json.loads(asched(home, "status", "--json").stdout)
    assert (status["running"], status["state_dir"], status["pid"]) == (True, str(served), d.pid)
    done = asched(home, "next", "1h", "found it", "--target", "w:0")
    assert done.returncode == 0 and done.stderr == "", done
    assert [c.message for c in stored(served)] == ["found it"]
    assert not default_dir(home).exists()

    # A setting still wins, and a daemon on the default directory comes first.
    mine = short_tmp / "mine"
    explicit = asched({**home, "ASCHED_STATE_DIR": str(mine)}, "status", "--json")
    assert json.loads(explicit.stdout)["state_dir"] == str(mine)
    first = spawner.spawn(default_dir(home))
    first.wait_ready()
    assert json.loads(asched(home, "status", "--json").stdout)["pid"] == first.pid
    first.stop()

    # Stopped: the pointer goes, and the command line is back on the default, and says so.
    d.stop()
    assert not (runtime / published.POINTER_NAME).exists()
    done = asched(home, "add", "w:0", "later", "--in", "1h")
    assert done.stderr.startswith(f"{NO_DAEMON}{default_dir(home)}, "), done


def test_a_pointer_to_no_live_daemon_is_ignored(home: dict[str, str], short_tmp: Path) -> None:
    runtime = Path(home["XDG_RUNTIME_DIR"]) / "asched"
    runtime.mkdir()
    dead = short_tmp / "dead"
    dead.mkdir()
    (dead / "asched.lock").write_text("{}")  # left by a daemon that is gone: nobody holds it
    (runtime / published.POINTER_NAME).symlink_to(dead)
    env = {"HOME": home["HOME"], "XDG_RUNTIME_DIR": home["XDG_RUNTIME_DIR"]}
    assert published.cli_state_dir(None, env) == default_dir(home)
    (runtime / published.POINTER_NAME).unlink()
    (runtime / published.POINTER_NAME).symlink_to("relative/dir")
    assert published.cli_state_dir(None, env) == default_dir(home)


def test_a_daemon_started_by_hand_publishes_nothing(tmp_path: Path) -> None:
    assert published.publish(tmp_path, {}) is None
    assert published.publish(tmp_path, {"RUNTIME_DIRECTORY": "relative"}) is None


def test_the_mcp_tools_warn_and_find_a_daemon_started_later(
    home: dict[str, str], spawner: Spawner, short_tmp: Path
) -> None:
    """The MCP server lives as long as the agent's session: a daemon started after it is found
    at the next tool call; before that, the result says that nothing will deliver."""
    from tests.cli.mcpclient import McpClient

    client = McpClient({**home, "TMUX_PANE": "%5"}, short_tmp / "mcp.stderr", ())
    try:
        first = client.ok("set_next_checkin", delay="30m", message="first")
        assert first["warning"].startswith(f"no daemon is running on {default_dir(home)}, ")
        runtime = Path(home["XDG_RUNTIME_DIR"]) / "asched"
        runtime.mkdir(mode=0o700)
        served = short_tmp / "served"
        spawner.spawn(served, env={"RUNTIME_DIRECTORY": str(runtime)}).wait_ready()
        second = client.ok("set_next_checkin", delay="30m", message="second")
        assert "warning" not in second, second
        assert [c.message for c in stored(served)] == ["second"]
    finally:
        client.close()
