"""``python -m asched --daemon`` alone (the units' ExecStart) starts without the parser: the same
options as ``asched daemon`` with no option, the same one-line errors.

The daemon itself is not started here (``serve`` is replaced by a recorder); the real start under
systemd is the systemd suite's (tests/systemd/), which runs exactly that command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import asched.daemon.start as start
from asched.cli.main import run_module
from asched.core.errors import UsageError
from asched.daemon.options import DaemonOptions

SETTINGS = ("ASCHED_STATE_DIR", "STATE_DIRECTORY", "XDG_STATE_HOME", "ASCHED_CONFIG",
            "XDG_CONFIG_HOME", "ASCHED_TMUX_SOCKET", "HOME")  # fmt: skip


def _options(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> DaemonOptions:
    got: list[DaemonOptions] = []

    def serve(options: DaemonOptions) -> int:
        got.append(options)
        return 0

    monkeypatch.setattr(start, "serve", serve)
    assert run_module(argv) == 0
    (options,) = got
    return options


@pytest.mark.parametrize(
    "env",
    [
        {"HOME": "/home/u"},
        {"HOME": "/home/u", "XDG_STATE_HOME": "/x/state", "XDG_CONFIG_HOME": "/x/config"},
        {"HOME": "/h", "STATE_DIRECTORY": "/var/lib/asched/u", "ASCHED_TMUX_SOCKET": "/t/sock"},
        {"HOME": "/h", "ASCHED_STATE_DIR": "rel/state", "ASCHED_CONFIG": "c.toml"},
    ],
    ids=["home", "xdg", "systemd", "asched-vars"],
)
def test_the_bare_flag_gets_the_options_of_the_daemon_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]
) -> None:
    monkeypatch.chdir(tmp_path)  # relative settings are made absolute from here, both ways
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bare = _options(monkeypatch, ["--daemon"])
    command = _options(monkeypatch, ["daemon"])
    assert bare == command
    assert bare.argv == tuple(sys.argv)
    if "ASCHED_TMUX_SOCKET" in env:
        assert bare.tmux_socket == env["ASCHED_TMUX_SOCKET"]
    if "ASCHED_STATE_DIR" in env:
        assert bare.state_dir == tmp_path / "rel" / "state"


def test_the_bare_flag_reports_an_error_as_one_line_and_its_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def serve(options: DaemonOptions) -> int:
        raise UsageError("bad setting\nsecond line")

    monkeypatch.setattr(start, "serve", serve)
    assert run_module(["--daemon"]) == UsageError.exit_code
    assert capsys.readouterr().err == "asched: bad setting\\nsecond line\n"
