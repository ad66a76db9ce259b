"""``systemctl`` for one scope (``--user`` or the system manager): queries, and actions that are
reported one line each and end the command when they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from typing import TextIO

from asched.core.errors import AschedError
from asched.install.scope import Scope

SYSTEMCTL_TIMEOUT_S = 60.0  # above TimeoutStartSec=30s: `systemctl start` waits for READY=1

Runner = Callable[[Sequence[str], float], "subprocess.CompletedProcess[str]"]


def run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """The :data:`Runner` of a real install: ``argv`` run with its output captured."""
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class SystemctlSession:
    """Runs systemctl for one scope and reports every action on ``out``."""

    def __init__(self, scope: Scope, out: TextIO, runner: Runner | None = None) -> None:
        self.scope = scope
        self.out = out
        self.runner = runner or run
        self.actions = 0

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def query(self, *args: str) -> str:
        """A read-only systemctl call's first output line ('' when it printed nothing)."""
        r = self.call([*self.scope.systemctl, *args], SYSTEMCTL_TIMEOUT_S)
        return r.stdout.strip().splitlines()[0] if r.stdout.strip() else ""

    def act(self, *args: str, why: str = "") -> None:
        """Run a systemctl command that changes something; a failure ends the command."""
        argv = [*self.scope.systemctl, *args]
        r = self.call(argv, SYSTEMCTL_TIMEOUT_S)
        if r.returncode != 0:
            detail = first_line(r.stderr) or f"exit status {r.returncode}"
            journal = "journalctl" + ("" if self.scope.system else " --user")
            raise AschedError(
                f"{' '.join(argv)} failed: {detail} (see: {journal} -u {self.scope.unit})"
            )
        self.actions += 1
        self.say(f"ran: {' '.join(argv)}" + (f"  ({why})" if why else ""))

    def require_manager(self) -> None:
        """Fail before changing anything when the service manager cannot be reached."""
        if self.scope.system and not os.path.isdir("/run/systemd/system"):  # sd_booted(3)
            raise AschedError("systemd is not running on this machine (PID 1 is something else)")
        r = self.call([*self.scope.systemctl, "is-system-running"], SYSTEMCTL_TIMEOUT_S)
        state = r.stdout.strip()
        if state and state != "offline":  # running, degraded, starting...: a manager answered
            return
        detail = first_line(r.stderr) or f"systemctl is-system-running: {state or r.returncode}"
        if self.scope.system:
            raise AschedError(f"cannot talk to systemd: {detail}")
        raise AschedError(
            f"cannot talk to your systemd user manager: {detail} (log in to start it, or"
            f" run: loginctl enable-linger {self.scope.user}; as root, use --system USER)"
        )

    def call(self, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return self.runner(argv, timeout)
        except FileNotFoundError:
            raise AschedError(
                "systemctl not found: install-service needs systemd (is this a systemd host?)"
            ) from None
        except subprocess.TimeoutExpired:
            raise AschedError(f"{' '.join(argv)} did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise AschedError(f"cannot run {argv[0]}: {exc.strerror}") from None


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def require_systemctl() -> None:
    if shutil.which("systemctl") is None:
        raise AschedError(
            "systemctl not found: install-service needs systemd (is this a systemd host?)"
        )
