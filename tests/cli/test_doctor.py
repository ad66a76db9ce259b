"""``asched doctor``: the whole chain, checked against a real daemon, a private tmux server with
a pane running a shell and one running ``cat``, and real command-line processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import Spawner
from tests.support.tmux import Server

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def loop_name() -> str:
    """One loop is enough here (the conftest's spawner otherwise runs every test under both)."""
    return "asyncio"


@pytest.fixture
def env(short_tmp: Path) -> dict[str, str]:
    """No asched setting and no tmux of the caller's; a HOME of the test's own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ASCHED_", "TMUX"))}
    (short_tmp / "home").mkdir()
    clean["HOME"] = str(short_tmp / "home")
    clean["XDG_RUNTIME_DIR"] = str(short_tmp / "home")
    return clean


def asched(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asched", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def wait_for_program(server: Server, pane: str, name: str) -> None:
    """Until tmux says the pane runs ``name`` (not tmux's own fork that is still starting)."""
    deadline = time.monotonic() + 10
    while server.tmux("display-message", "-p", "-t", pane, "#{pane_current_command}").strip() != (
        name
    ):
        assert time.monotonic() < deadline, f"{pane} never ran {name}"
        time.sleep(0.05)


def checks(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(done.stdout)["checks"]
    return found


def test_doctor_walks_the_chain_and_names_each_fix(
    env: dict[str, str], spawner: Spawner, server: Server, short_tmp: Path
) -> None:
    state = short_tmp / "state"
    config = short_tmp / "config.toml"
    config.write_text("[delivery]\nsettle_s = 0.2\n")
    agent = server.new_session("agent", ["cat", "-"])
    shell = server.new_session("shell", ["sh", "-i"])
    wait_for_program(server, agent, "cat")
    wait_for_program(server, shell, "sh")
    d = spawner.spawn(state, extra=["--tmux-socket", server.sock, "--config", str(config)])
    d.wait_ready()
    where = ["--state-dir", str(state)]
    ids = {}
    for target in ("agent:0", "shell:0", "gone:0"):
        added = asched(env, "add", target, "status?", "--in", "1h", "--json", *where)
        assert added.returncode == 0, added
        ids[target] = json.loads(added.stdout)["id"]

    done = asched(env, "doctor", "--config", str(config), *where)
    assert done.returncode == 1, done
    lines = done.stdout.splitlines()
    print("\n" + done.stdout)
    assert lines[0] == f"ok    daemon: pid {d.pid} (asched {version()}) runs on {state}"
    assert lines[1] == f"ok    state: {state}/asched.db: 3 check-ins, 3 pending (0 paused)"
    assert lines[2] == f"ok    config: {config}"
    assert lines[3].startswith(f"ok    tmux: the server on {server.sock} answers (2 panes)")
    assert lines[4] == f"ok    target: agent:0 (check-in {ids['agent:0']}) is pane {agent}"
    assert lines[5].startswith(f"ok    program: pane {agent} runs cat: no agent profile (generic")
    assert lines[6].startswith(f"FAIL  target: gone:0 (check-in {ids['gone:0']}) names no pane")
    assert lines[6].endswith(
        f"; fix: start that session or window before it is due, or asched rm {ids['gone:0']}"
    )
    assert lines[7] == f"ok    target: shell:0 (check-in {ids['shell:0']}) is pane {shell}"
    assert lines[8].startswith(f"FAIL  program: pane {shell} runs sh, an interactive shell:")
    assert f"; fix: start the agent in pane {shell}" in lines[8]
    assert len(lines) == 9
    assert done.stderr == "asched: doctor: 2 of 9 checks failed (FAIL ...; fix: ...)\n"

    # Fixed: the shell's and the missing window's check-ins removed. All is well: exit 0.
    for target in ("shell:0", "gone:0"):
        assert asched(env, "rm", str(ids[target]), *where).returncode == 0
    well = asched(env, "doctor", "--config", str(config), "--json", *where)
    assert well.returncode == 0, well
    assert json.loads(well.stdout)["ok"] is True
    assert [c["check"] for c in checks(well)] == [
        "daemon", "state", "config", "tmux", "target", "program",
    ]  # fmt: skip
    assert all(c["ok"] and c["fix"] is None for c in checks(well))


def test_doctor_with_nothing_running_and_a_bad_config(env: dict[str, str], short_tmp: Path) -> None:
    state = short_tmp / "state"
    config = short_tmp / "config.toml"
    config.write_text("[daemon]\nbogus = 1\n")
    done = asched(
        env, "doctor", "--json", "--state-dir", str(state), "--config", str(config),
        "--tmux-socket", str(short_tmp / "no-tmux"),
    )  # fmt: skip
    assert done.returncode == 1, done
    found = {c["check"]: c for c in checks(done)}
    assert list(found) == ["daemon", "state", "config", "tmux"]
    assert not found["daemon"]["ok"]
    assert found["daemon"]["fix"] == f"asched daemon --state-dir {state}"
    assert found["state"]["ok"] and "does not exist yet" in found["state"]["detail"]
    assert not found["config"]["ok"] and "bogus" in found["config"]["detail"]
    assert found["config"]["fix"].startswith(f"edit {config} ")
    assert not found["tmux"]["ok"]
    assert found["tmux"]["detail"].startswith(f"no tmux server answers on {short_tmp}/no-tmux")


def test_doctor_refuses_a_state_directory_others_can_write(
    env: dict[str, str], short_tmp: Path
) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    done = asched(env, "doctor", "--json", "--state-dir", str(state))
    found = {c["check"]: c for c in checks(done)}
    assert done.returncode == 1 and not found["state"]["ok"], done
    assert found["state"]["fix"] == f"chmod 700 {state}"


def version() -> str:
    from asched import __version__

    return __version__
