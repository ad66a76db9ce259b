"""``asched mcp install claude`` with the real Claude Code (offline, a temp HOME prepared as
tests/agents/uis.py does): ``claude mcp list`` starts ``asched mcp`` and reports it connected; a
second install changes nothing; another ``asched`` entry is replaced only with ``--force``;
uninstall removes it. And the same for Gemini CLI's ``gemini mcp list``.

``claude mcp list`` prints its list within about a second, then lingers about 18 s before it
exits: the test reads its output until the line it needs shows, then ends it, and every process
under it (the MCP server it checks), by pid.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.agents import uis
from tests.agents.fakeapi import FakeApi
from tests.support.daemons import wait_until
from tests.support.tmux import Server

pytestmark = pytest.mark.usefixtures("agent_uis")

LIST_TIMEOUT_S = 40.0
CONNECTED = "✔ Connected"  # Claude Code 2.1.197: "asched: CMD ARGS - ✔ Connected"
COMMAND = shlex.join([sys.executable, "-P", "-m", "asched", "mcp"])


@pytest.fixture
def home_env(api: FakeApi) -> Iterator[dict[str, str]]:
    """The environment of a user whose HOME is a fresh temp dir, prepared as uis does."""
    with tempfile.TemporaryDirectory(prefix="asched-mcp-") as root:
        home, cwd = Path(root) / "home", Path(root) / "project"
        home.mkdir(mode=0o700)
        cwd.mkdir()
        env = clean_env()
        env.update(HOME=str(home), PWD=str(cwd), **uis._claude_home(home, cwd, api.url))
        yield env


def _end(proc: subprocess.Popen[bytes]) -> None:
    """End ``proc`` and whatever it started (the MCP server it checks), by pid."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    psutil.wait_procs(family, timeout=5)


def mcp_list(env: dict[str, str], done: Callable[[str], bool], agent: str = "claude") -> str:
    """``AGENT mcp list``'s output, read until ``done(output)`` holds or it exits (at most
    LIST_TIMEOUT_S); the process is ended then, by pid."""
    proc = subprocess.Popen(
        [str(uis.bin_dir() / agent), "mcp", "list"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env, cwd=env["PWD"], start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    out = b""
    deadline = time.monotonic() + LIST_TIMEOUT_S
    try:
        while time.monotonic() < deadline and not done(out.decode(errors="replace")):
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
    finally:
        _end(proc)
        proc.stdout.close()
    return out.decode(errors="replace")


def asched_line(output: str) -> str | None:
    """The finished line about the asched server (with its status), if shown yet."""
    for line in output.splitlines():
        if line.startswith("asched: ") and (" - " in line):
            return line
    return None


def install(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    claude = ["--claude", str(uis.bin_dir() / "claude")] if "claude" in args else []
    return subprocess.run(
        [sys.executable, "-m", "asched", "mcp", *args, *claude],
        capture_output=True, text=True, timeout=90, env=env, cwd=env.get("PWD"),
    )  # fmt: skip


def claude(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(uis.bin_dir() / "claude"), "mcp", *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=env["PWD"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.timeout(240)
def test_claude_code_connects_to_asched_mcp(home_env: dict[str, str]) -> None:
    # Someone else's "asched" server is there: install refuses to clobber it without --force.
    assert claude(home_env, "add", "-s", "user", "asched", "--", "/bin/true").returncode == 0
    refused = install(home_env, "install", "claude")
    assert refused.returncode == 2, refused
    assert refused.stderr == (
        "asched: Claude Code already has an MCP server named asched: /bin/true"
        " (pass --force to replace it)\n"
    )
    done = install(home_env, "install", "claude", "--force")
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.splitlines()[0] == f"replaced asched with Claude Code (user scope): {COMMAND}"
    )

    output = mcp_list(home_env, lambda out: asched_line(out) is not None)
    assert asched_line(output) == f"asched: {COMMAND} - {CONNECTED}", output

    again = install(home_env, "install", "claude")
    assert (again.returncode, again.stdout) == (
        0, f"asched is already registered with Claude Code (user scope): {COMMAND}\n",
    )  # fmt: skip

    gone = install(home_env, "uninstall", "claude")
    assert (gone.returncode, gone.stdout) == (0, "removed asched from Claude Code (user scope)\n")
    output = mcp_list(home_env, lambda out: "No MCP servers configured" in out)
    assert "No MCP servers configured" in output and "asched" not in output, output
    again = install(home_env, "uninstall", "claude")
    assert again.returncode == 0
    assert again.stdout.startswith("asched is not registered with Claude Code")


@pytest.mark.timeout(120)
def test_gemini_cli_connects_to_asched_mcp(home_env: dict[str, str], api: FakeApi) -> None:
    env = {**home_env, **uis._gemini_home(Path(home_env["HOME"]), api.url)}
    settings = Path(env["HOME"]) / ".gemini" / "settings.json"
    done = install(env, "install", "gemini")
    assert done.returncode == 0, done.stderr
    output = mcp_list(
        env, lambda out: "asched:" in out and "\n" in out.split("asched:")[1], "gemini"
    )
    line = f"✓ asched: {COMMAND} (stdio) - Connected"  # Gemini CLI 0.61.0
    assert line in output.splitlines(), output
    assert install(env, "uninstall", "gemini").returncode == 0
    assert "mcpServers" not in settings.read_text()


@pytest.mark.parametrize("kind", ["claude", "gemini"])
@pytest.mark.timeout(120)
def test_the_agent_starts_asched_mcp_with_its_pane(server: Server, api: FakeApi, kind: str) -> None:
    """In a real pane, the agent starts the registered server with its own environment: the
    tools' default target, $TMUX_PANE, is the agent's pane."""

    def register(env: dict[str, str]) -> None:
        done = install({**clean_env(), **env}, "install", kind)
        assert done.returncode == 0, done.stderr

    agent = uis.start(server, server.root, kind, api.url, f"{kind}1", prepare=register)
    try:
        found: list[psutil.Process] = []

        def started() -> bool:
            found[:] = [p for p in _family(agent.pid) if _cmdline(p) == shlex.split(COMMAND)]
            return bool(found)

        assert wait_until(started, timeout=30, step=0.2), "the agent did not start asched mcp"
        (mcp,) = found
        assert mcp.environ().get("TMUX_PANE") == agent.pane
    finally:
        agent.stop()


def clean_env() -> dict[str, str]:
    """This process's environment without tmux's, asched's or CI's variables."""
    drop = ("TMUX", "ASCHED_", "CI_")
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(drop) and k not in ("CI", "CONTINUOUS_INTEGRATION")
    }


def _family(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []
