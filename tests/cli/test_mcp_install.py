"""``asched mcp install|uninstall gemini``: ``mcpServers.asched`` merged into a temp HOME's
``~/.gemini/settings.json``, as a real process. (Claude Code's side runs the real ``claude``:
tests/agents/test_mcp_claude.py.)"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.mcpclient import McpClient

ARGS = ["-P", "-m", "asched", "mcp"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def settings(home: Path) -> Path:
    return home / ".gemini" / "settings.json"


def asched(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "ASCHED_"))}
    return subprocess.run(
        [sys.executable, "-m", "asched", "mcp", *argv],
        capture_output=True, text=True, timeout=30, env={**env, "HOME": str(home)},
    )  # fmt: skip


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def test_creates_the_file(home: Path, settings: Path) -> None:
    done = asched(home, "install", "gemini")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"registered asched with Gemini CLI ({settings}): ")
    entry = read(settings)["mcpServers"]["asched"]
    assert entry["args"] == ARGS
    assert os.path.isabs(entry["command"])
    assert Path(entry["command"]) == Path(sys.executable)  # this venv's python, not resolved
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert [p.name for p in settings.parent.iterdir()] == ["settings.json"]  # no temp file left


def test_merges_keeps_everything_else_and_is_idempotent(home: Path, settings: Path) -> None:
    settings.parent.mkdir()
    before = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "mcpServers": {"other": {"command": "/usr/bin/other", "args": ["--x"], "trust": True}},
        "ui": {"theme": "Dracula", "note": "ünïcödé"},
    }
    settings.write_text(json.dumps(before))
    settings.chmod(0o640)
    assert asched(home, "install", "gemini").returncode == 0
    after = read(settings)
    assert list(after) == ["security", "mcpServers", "ui"]
    assert after["mcpServers"]["other"] == before["mcpServers"]["other"]  # type: ignore[index]
    assert list(after["mcpServers"]) == ["other", "asched"]
    assert {k: v for k, v in after.items() if k != "mcpServers"} == {
        k: v for k, v in before.items() if k != "mcpServers"
    }
    assert stat.S_IMODE(settings.stat().st_mode) == 0o640
    text, inode = settings.read_bytes(), settings.stat().st_ino
    again = asched(home, "install", "gemini")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("asched is already registered with Gemini CLI")
    assert (settings.read_bytes(), settings.stat().st_ino) == (text, inode)  # not rewritten

    gone = asched(home, "uninstall", "gemini")
    assert (gone.returncode, gone.stdout) == (0, f"removed asched from Gemini CLI ({settings})\n")
    assert read(settings) == before
    again = asched(home, "uninstall", "gemini")
    assert again.returncode == 0
    assert again.stdout.startswith("asched is not registered with Gemini CLI")


def test_another_asched_entry_needs_force(home: Path, settings: Path) -> None:
    settings.parent.mkdir()
    theirs = {"mcpServers": {"asched": {"command": "/opt/old/asched-mcp"}}, "general": {}}
    settings.write_text(json.dumps(theirs))
    done = asched(home, "install", "gemini")
    assert done.returncode == 2
    assert done.stderr == (
        f"asched: {settings} already has an MCP server named asched: /opt/old/asched-mcp"
        " (pass --force to replace it)\n"
    )
    assert read(settings) == theirs
    assert asched(home, "install", "gemini", "--force").returncode == 0
    assert read(settings)["mcpServers"]["asched"]["args"] == ARGS
    assert read(settings)["general"] == {}
    # The last one standing: uninstall leaves no empty mcpServers behind.
    assert asched(home, "uninstall", "gemini").returncode == 0
    assert read(settings) == {"general": {}}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"ui": {"theme": "x",}}', "is not valid JSON (line 1, column 22: Expecting"),
        ("// comment\n{}", "is not valid JSON (line 1, column 1: Expecting value)"),
        ("[1, 2]", "holds no JSON object; left unchanged"),
        ('{"mcpServers": []}', ": mcpServers is not an object; left unchanged"),
    ],
)
def test_refuses_what_it_cannot_merge(home: Path, settings: Path, text: str, says: str) -> None:
    settings.parent.mkdir()
    settings.write_text(text)
    for action in ("install", "uninstall"):
        done = asched(home, action, "gemini")
        assert done.returncode == 2, done
        assert done.stderr.startswith(f"asched: {settings}")
        assert says in done.stderr
        assert done.stderr.count("\n") == 1
        assert settings.read_text() == text


def test_a_symlinked_file_stays_a_symlink(home: Path, settings: Path, tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "gemini.json"
    real.parent.mkdir()
    real.write_text('{"ui": {}}')
    settings.parent.mkdir()
    settings.symlink_to(real)
    assert asched(home, "install", "gemini").returncode == 0
    assert settings.is_symlink()
    assert read(real)["mcpServers"]["asched"]["args"] == ARGS


def test_state_dir_is_registered(home: Path, settings: Path, tmp_path: Path) -> None:
    done = asched(home, "install", "gemini", "--state-dir", "rel/state")
    assert done.returncode == 0, done.stderr
    args = read(settings)["mcpServers"]["asched"]["args"]
    assert args == [*ARGS, "--state-dir", str(Path.cwd() / "rel" / "state")]
    assert asched(home, "install", "claude", "--claude", str(tmp_path / "nope")).returncode == 2
    done = asched(home, "install", "gemini", "--claude", "/bin/true")
    assert done.stderr == "asched: --claude goes with claude, not gemini\n"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[list[McpClient]]:
    clients: list[McpClient] = []
    yield clients
    for c in clients:
        c.close()


def test_the_registered_command_serves_from_any_directory(
    home: Path, settings: Path, tmp_path: Path, client: list[McpClient]
) -> None:
    """What Gemini CLI will run, run from a project directory that holds a package named asched
    of its own: ``-P`` keeps it off sys.path."""
    assert asched(home, "install", "gemini").returncode == 0
    entry = read(settings)["mcpServers"]["asched"]
    project = tmp_path / "project"
    (project / "asched").mkdir(parents=True)
    (project / "asched" / "__init__.py").write_text("raise SystemExit('the wrong asched')\n")
    env = {"HOME": str(home), "ASCHED_STATE_DIR": str(tmp_path / "state"), "TMUX_PANE": "%3"}
    env["ASCHED_TMUX_SOCKET"] = str(tmp_path / "no-tmux")
    argv = [entry["command"], *entry["args"]]
    client.append(McpClient(env, tmp_path / "mcp.stderr", argv=argv, cwd=project))
    result = client[0].ok("set_next_checkin", delay="10m", message="hello")
    assert (result["target"], result["key"]) == ("%3", "next:%3")
