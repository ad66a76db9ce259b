"""``asched demo``: see it work in about ten seconds, on a private tmux server it starts and stops.

The demo is the one place that starts a tmux server, and only a private one (its own socket in a
temp dir), which it ends by pid when done. It runs a small interactive "agent" in one window and
a bash shell in another, schedules a few check-ins a second or two apart, runs the real daemon
in-process, then prints what the agent's pane shows and the delivery journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asched.core.logs import configure as configure_logs
from asched.core.models import Every, NewCheckIn, Once
from asched.core.paths import DB_NAME, ensure_state_dir
from asched.daemon.process import Daemon, DaemonOptions
from asched.daemon.wiring import scheduling
from asched.store.store import Store

# The stand-in agent: reads a line, answers it. Any interactive program would do.
AGENT = (
    "import sys\n"
    "print('agent ready; waiting for check-ins')\n"
    "while True:\n"
    "    try:\n"
    "        line = input('agent> ')\n"
    "    except EOFError:\n"
    "        break\n"
    "    print(f'agent: got {line!r}, working on it')\n"
)


def _tmux(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tmux", "-S", str(sock), "-f", "/dev/null", *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def _schedule(state: Path) -> None:
    now = datetime.now(UTC)

    def once(target: str, message: str, after_s: float) -> NewCheckIn:
        due = now + timedelta(seconds=after_s)
        return NewCheckIn(target=target, message=message, rule=Once(due), next_due=due)

    first = now + timedelta(seconds=4)
    with Store.open(state / DB_NAME) as store:
        store.add_checkin(once("demo:agent", "status report, please", 1.5))
        store.add_checkin(once("demo:agent", "SCHEDULED CHECK-IN: are tests green? $(not run)", 3))
        store.add_checkin(
            NewCheckIn(
                target="demo:agent",
                message="keep going; next check-in in 2s",
                rule=Every(2, first),
                next_due=first,
                remaining=2,
            )
        )
        store.add_checkin(once("demo:shell", "this must never reach a shell", 2))


def _journal(state: Path) -> str:
    lines = [f"{'ID':>3}  {'TARGET':<12} {'STATE':<11} {'REASON':<10} LATE  MESSAGE"]
    with Store.open(state / DB_NAME) as store:
        messages = {c.id: c for c in store.list_checkins()}
        for d in reversed(store.history(limit=50)):
            c = messages.get(d.checkin_id)
            lines.append(
                f"{d.id:>3}  {d.target:<12} {d.state:<11} {d.reason or '-':<10} "
                f"{'yes' if d.late else 'no ':<4}  {(c.message if c else '?')[:40]}"
            )
    return "\n".join(lines)


async def _run_daemon(options: DaemonOptions, seconds: float) -> int:
    daemon = Daemon(options, {"scheduling": scheduling})
    asyncio.get_running_loop().call_later(seconds, daemon.request_stop, "demo-finished")
    return await daemon.run()


def run_demo(seconds: float = 10.0) -> int:
    """Run the demo; returns 0 when every check-in ended as expected."""
    if shutil.which("tmux") is None:
        print("asched demo: tmux is not installed (apt-get install tmux)", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="asched-demo-"))
    sock = tmp / "tmux.sock"
    state = tmp / "state"
    server_pid: int | None = None
    try:
        # Several arguments: tmux runs the program directly, no shell in between.
        made = _tmux(
            sock, "new-session", "-d", "-s", "demo", "-n", "agent", "-x", "100", "-y", "30",
            sys.executable, "-u", "-c", AGENT,
        )  # fmt: skip
        if made.returncode != 0:
            print(f"asched demo: cannot start tmux: {made.stderr.strip()}", file=sys.stderr)
            return 1
        pid = _tmux(sock, "display-message", "-p", "#{pid}").stdout.strip()
        server_pid = int(pid) if pid.isdigit() else None
        _tmux(
            sock, "new-window", "-d", "-t", "=demo:", "-n", "shell", "bash", "--norc", "--noprofile"
        )
        ensure_state_dir(state)
        _schedule(state)
        print(f"asched demo: tmux server on {sock}; daemon runs for {seconds:g} s ...")
        configure_logs("warning")
        options = DaemonOptions(
            state_dir=state,
            config_path=tmp / "no-config.toml",
            lock_timeout_s=1.0,
            log_level="warning",
            tmux_socket=str(sock),
        )
        code = asyncio.run(_run_daemon(options, seconds))
        screen = _tmux(sock, "capture-pane", "-p", "-t", "=demo:agent").stdout.rstrip()
        print("\n--- the agent's pane ---------------------------------------------")
        print(screen)
        print("\n--- the delivery journal ------------------------------------------")
        print(_journal(state))
        print("\nThe shell window got nothing: asched never types into a shell.")
        return code
    finally:
        if server_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server_pid, signal.SIGTERM)
        shutil.rmtree(tmp, ignore_errors=True)
