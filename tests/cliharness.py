"""CLI runs for tests: in process, ``run(...)`` calls ``asched.cli.main`` with a state dir; as
real processes, :func:`asched_process` and :func:`run_process`.

conftest.py re-exports the fixtures. A module of CLI tests says
``pytestmark = pytest.mark.usefixtures("wakes")``: then none of its tests talks to a real daemon
and none believes it runs in tmux.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from asched.cli.main import main
from asched.core.models import CheckIn
from asched.core.paths import DB_NAME
from asched.daemon import control
from asched.store.store import Store
from tests.support.daemons import PYTHON


@dataclass
class Result:
    """What one command did."""

    code: int
    out: str
    err: str


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory that does not exist yet."""
    return tmp_path / "state"


@pytest.fixture
def wakes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records the daemon wake-ups the commands send (there is no daemon in these tests);
    also: not inside tmux, and no terminal width from the environment."""
    sent: list[Path] = []

    def fake_send(
        state_dir: Path, command: str, timeout_s: float = 0.5, *, queued_is_told: bool = False
    ) -> bool:
        assert command == "wake"
        sent.append(state_dir)
        return False  # as if no daemon ran: must be harmless

    monkeypatch.setattr(control, "send", fake_send)
    for var in ("COLUMNS", "TMUX_PANE", "TMUX"):
        monkeypatch.delenv(var, raising=False)
    # No tmux server either: `add` and `next` look their target up on one (asched.cli.lookup).
    monkeypatch.setenv("ASCHED_TMUX_SOCKET", "/nonexistent/asched-test-no-tmux")
    return sent


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], state: Path) -> Any:
    """``run("add", ...)``: cli.main with --state-dir; exit code, stdout and stderr."""

    def call(*argv: str, state_dir: Path | None = state) -> Result:
        args = list(argv)
        if state_dir is not None:
            args += ["--state-dir", str(state_dir)]
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's own usage errors and --help
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def stored(state: Path) -> list[CheckIn]:
    """Every check-in in the state dir's database."""
    with Store.open(state / DB_NAME) as store:
        return store.list_checkins()


NO_DAEMON = "asched: no daemon is running on "  # the warning of add, next and import-legacy


def without_no_daemon(text: str) -> str:
    """``text`` (stderr, or a pane's output) without the line that says no daemon runs: the
    tests that run with no daemon on purpose look at the rest."""
    return "".join(
        line for line in text.splitlines(keepends=True) if not line.startswith(NO_DAEMON)
    )


def assert_usage_error(result: Result) -> None:
    """Exit 2, nothing on stdout, one line on stderr beginning "asched: ", no traceback."""
    assert result.code == 2, result
    assert result.out == ""
    assert "Traceback" not in result.err
    assert result.err.startswith("asched: ")
    assert result.err.count("\n") == 1, result.err


def run_process(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = False,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to its end (bounded by ``timeout``), stdout and stderr captured as text;
    ``check`` raises on a non-zero exit. ``env`` None: this process's environment."""
    return subprocess.run(
        list(argv), capture_output=True, text=True, env=env, timeout=timeout, check=check
    )


def asched_process(
    *args: str,
    state: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = False,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """``python -m asched ARGS [--state-dir STATE]`` as a real process (see :func:`run_process`)."""
    argv = [PYTHON, "-m", "asched", *args]
    if state is not None:
        argv += ["--state-dir", str(state)]
    return run_process(argv, env=env, check=check, timeout=timeout)
