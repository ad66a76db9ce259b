"""Fixtures that boot a real systemd in a throw-away container (tests/support/nspawn.py, set up
for asched by tests/support/systemd.py).

The tests here run when root and systemd-nspawn are available and skip, with the reason,
elsewhere. With ``ASCHED_REQUIRE_SYSTEMD=1`` (CI) a missing prerequisite is a failure.

One box per test module (``box``, about 0.5 s to boot); ``svc`` puts asched@asched-t.service back
to a known state before each test: stopped, no drop-ins, no state, no tmux server, no failures.
The box is always torn down, also when a test fails, times out (pytest-timeout's signal method)
or the run is interrupted (Ctrl-C, or SIGTERM, which is turned into KeyboardInterrupt meanwhile).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from asched.install.interpreter import interpreter
from tests.support.nspawn import Box, prerequisites
from tests.support.systemd import (
    DROPIN_DIR,
    HOME,
    STATE,
    TMUX_UNIT,
    UNIT,
    USER,
    Svc,
    add_user,
    new_box,
)

REQUIRE = os.environ.get("ASCHED_REQUIRE_SYSTEMD", "") == "1"


def require(problem: str | None, what: str) -> None:
    """Skip (or, under ASCHED_REQUIRE_SYSTEMD=1, fail) when ``problem`` is set."""
    if problem is None:
        return
    if REQUIRE:
        pytest.fail(f"{what}: {problem} (ASCHED_REQUIRE_SYSTEMD=1 makes this a failure)", False)
    pytest.skip(f"{what}: {problem}")


def require_analyze() -> str:
    """The path of systemd-analyze, or skip/fail."""
    tool = shutil.which("systemd-analyze")
    require(None if tool else "systemd-analyze is missing (apt-get install systemd)", "units")
    assert tool is not None
    return tool


@pytest.fixture(scope="session")
def python() -> str:
    """The interpreter install-service would put into ExecStart (this venv's)."""
    return interpreter()[0]


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While a box is up, SIGTERM (CI cancelling the job) unwinds like Ctrl-C, so that the
    fixture's teardown still runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.getsignal(signal.SIGTERM)
    replace = previous in (signal.SIG_DFL, None)
    if replace:
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if replace:
            signal.signal(signal.SIGTERM, previous)


def boot(python: str) -> Iterator[Box]:
    """A booted box with the test user, torn down when the generator is closed."""
    require(prerequisites(), "no systemd box")
    box = new_box(python)
    with _sigterm_interrupts():
        try:
            box.up()
            add_user(box, python)
            yield box
        finally:
            problems = box.down()
            if problems:
                pytest.fail(f"box {box.name} not fully cleaned up: {problems}", False)


@pytest.fixture(scope="module")
def box(python: str) -> Iterator[Box]:
    """A booted systemd 252 (or whatever the host has) with user asched-t; one per module."""
    yield from boot(python)


def reset(box: Box) -> None:
    """Back to a known state: the unit stopped, no drop-ins, no state, no tmux, no failures."""
    box.run(["systemctl", "stop", UNIT, TMUX_UNIT, "asched-hand.scope"], check=False, timeout=60)
    box.run(
        [
            "rm",
            "-rf",
            DROPIN_DIR,
            STATE,
            f"{HOME}/recv",
            f"{HOME}/.config/asched",
            f"/tmp/asched-tmux-{USER}",
        ]
    )
    box.run(["systemctl", "daemon-reload"], timeout=60)
    box.run(["systemctl", "reset-failed"], check=False)


@pytest.fixture
def svc(box: Box, python: str) -> Iterator[Svc]:
    """asched@asched-t.service installed (rendered for this interpreter) and reset."""
    svc = Svc(box, python)
    svc.install()
    reset(box)
    # Enabled, as install-service leaves it: an enabled unit stays loaded when it stops, so
    # `systemctl show` still has its exit status (a disabled instance is garbage-collected).
    box.run(["systemctl", "enable", "--quiet", UNIT])
    yield svc
    reset(box)
