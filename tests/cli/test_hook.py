"""``asched hook`` and ``asched hooks install|uninstall claude``, as real processes.

The hook runs inside an agent: whatever happens it exits 0, and a problem costs one line on
stderr. The install merges into Claude Code's settings and touches nothing else.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from asched.cli.hooks_install import EVENTS
from asched.daemon import control
from tests.cliharness import asched_process
from tests.support.daemons import PYTHON, Spawner

PROMPT = {"hook_event_name": "UserPromptSubmit", "session_id": "s1", "prompt": "hello"}


def _hook(
    stdin: str, state: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "ASCHED_"))}
    full.update(env if env is not None else {"TMUX_PANE": "%3"})
    return subprocess.run(
        [PYTHON, "-m", "asched", "hook", "--state-dir", str(state)],
        input=stdin, capture_output=True, text=True, env=full, timeout=10,
    )  # fmt: skip


def test_with_no_daemon_the_hook_exits_0_with_one_line(tmp_path: Path) -> None:
    r = _hook(json.dumps(PROMPT), tmp_path / "state")
    assert r.returncode == 0 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "no daemon answered" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("stdin", "env", "says"),
    [
        ("not json", {"TMUX_PANE": "%3"}, "ignored"),
        (json.dumps(PROMPT), {}, "not in a tmux pane"),
        (json.dumps({**PROMPT, "prompt": 42}), {"TMUX_PANE": "%3"}, "not text"),
        ("", {"TMUX_PANE": "%3"}, "ignored"),
    ],
)
def test_bad_input_is_one_line_and_exit_0(
    tmp_path: Path, stdin: str, env: dict[str, str], says: str
) -> None:
    r = _hook(stdin, tmp_path / "state", env)
    assert r.returncode == 0 and r.stderr.count("\n") == 1 and says in r.stderr, r.stderr


def test_an_event_asched_does_not_use_is_ignored_silently(tmp_path: Path) -> None:
    r = _hook(json.dumps({"hook_event_name": "PreToolUse"}), tmp_path / "state")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_a_running_daemon_takes_the_event(short_tmp: Path) -> None:
    spawner = Spawner(short_tmp, "uvloop")
    try:
        state = short_tmp / "state"
        d = spawner.spawn(state, extra=["--log-level", "debug"])
        d.notify.wait_for("READY", "1", timeout=15)
        r = _hook(json.dumps({"hook_event_name": "Stop"}), state)
        assert (r.returncode, r.stderr) == (0, ""), r
        # A payload that is no event (not through `asched hook`, which checks it first).
        assert control.send(state, "hook", 2.0, '{"pane": "not-a-pane"}') is False
    finally:
        spawner.cleanup()
    got = [e for e in d.events() if e.get("event") in ("hook.received", "hook.refused")]
    assert [(e["event"], e.get("kind")) for e in got][:1] == [("hook.received", "stop")], got
    assert any(e["event"] == "hook.refused" for e in got), got


# -- hooks install / uninstall ----------------------------------------------------------------


def _settings(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text()))


def test_install_adds_one_group_per_event_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "claude" / "settings.json"
    path.parent.mkdir()
    theirs = {"hooks": [{"type": "command", "command": "notify-send done"}]}
    path.write_text(json.dumps({"model": "opus", "hooks": {"Stop": [theirs]}}))
    path.chmod(0o640)
    state = tmp_path / "state"
    r = asched_process("hooks", "install", "claude", "--settings", str(path), state=state)
    assert r.returncode == 0 and "hooks installed" in r.stdout, r
    data = _settings(path)
    assert data["model"] == "opus"
    hooks = data["hooks"]
    assert isinstance(hooks, dict) and sorted(hooks) == sorted(EVENTS)
    assert hooks["Stop"][0] == theirs  # theirs first and untouched
    for event in EVENTS:
        ours = hooks[event][-1]["hooks"]
        assert len(ours) == 1 and ours[0]["type"] == "command"
        words = shlex.split(ours[0]["command"])
        assert words == [PYTHON, "-m", "asched", "hook", "--state-dir", str(state)], words
    assert path.stat().st_mode & 0o777 == 0o640
    again = asched_process("hooks", "install", "claude", "--settings", str(path), state=state)
    assert again.returncode == 0 and "no change" in again.stdout, again
    assert _settings(path) == data


def test_uninstall_removes_ours_only(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    theirs = {"hooks": [{"type": "command", "command": "notify-send done"}]}
    path.write_text(json.dumps({"hooks": {"Stop": [theirs]}}))
    assert asched_process("hooks", "install", "claude", "--settings", str(path)).returncode == 0
    r = asched_process("hooks", "uninstall", "claude", "--settings", str(path))
    assert r.returncode == 0 and "removed" in r.stdout, r
    assert _settings(path) == {"hooks": {"Stop": [theirs]}}
    r = asched_process("hooks", "uninstall", "claude", "--settings", str(path))
    assert r.returncode == 0 and "no change" in r.stdout, r


def test_install_into_claude_config_dir_when_set(tmp_path: Path) -> None:
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(tmp_path / "cfg"), "HOME": str(tmp_path)}
    r = asched_process("hooks", "install", "claude", env=env)
    assert r.returncode == 0, r
    assert (tmp_path / "cfg" / "settings.json").exists()
    assert not (tmp_path / ".claude").exists()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"hooks": []}'])
def test_a_settings_file_asched_cannot_read_is_left_alone(tmp_path: Path, text: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(text)
    r = asched_process("hooks", "install", "claude", "--settings", str(path))
    assert (r.returncode == 2 and r.stderr.count("\n") == 1 and str(path) in r.stderr) or (
        r.returncode == 2 and "hooks" in r.stderr
    ), r
    assert path.read_text() == text
