#!/usr/bin/env python3
"""scheduler.py --add SESSION ROLE WINDOW INTERVAL NOTE | --list | --remove ID

Drop-in for the command line of Tmux-Orchestrator's scheduler.py, for agents whose instructions
call it: each form is mapped onto asched, which delivers from then on (the old database is read by
nobody once asched runs; see the README, "Migrating from Tmux-Orchestrator").

  --add    a check-in for SESSION:WINDOW every INTERVAL minutes, the first INTERVAL minutes from
           now, typing "SCHEDULED CHECK-IN: NOTE" as the old scheduler did (an empty NOTE: its
           default text). INTERVAL 0 is once, now (the old scheduler typed it again on every pass,
           forever). ROLE is accepted and not stored: asched targets the window.
  --list   asched ls (the ids it shows are the ones --remove takes)
  --remove asched rm ID (the ids of asched ls, not those of the old database)
  --daemon, --queue-daemon: refused (exit 2): asched's daemon delivers now, and the old one must
           stay stopped.

asched is $ASCHED_BIN when set, else `asched` on PATH; the state directory is asched's usual one
(ASCHED_STATE_DIR, ...). Exit status: asched's (0 ok, 2 bad input), 127 without asched. Only the
standard library: it runs with the python3 that ran the old script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

PREFIX = "SCHEDULED CHECK-IN: "
DEFAULT_NOTE = "Time for your regular status update"  # what the old scheduler typed for no note
PROG = "scheduler.py"


def _asched() -> str | None:
    """The asched to run: $ASCHED_BIN, else the one on PATH."""
    chosen = os.environ.get("ASCHED_BIN")
    if chosen:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    return shutil.which("asched")


def _fail(text: str, code: int = 2) -> int:
    print(f"{PROG}: {text}", file=sys.stderr)
    return code


def _add_argv(session: str, window: str, interval: str, note: str) -> list[str] | str:
    """asched's arguments for --add, or the error text."""
    if not (interval.strip().isascii() and interval.strip().isdigit()):
        return f"INTERVAL must be a whole number of minutes, not {interval!r}"
    minutes = int(interval)
    when = ["--every", f"{minutes}m"] if minutes > 0 else ["--in", "1s"]
    message = PREFIX + (note if note.strip() else DEFAULT_NOTE)
    # "--" ends asched's options: a NOTE that starts with "-" is still the message.
    return ["add", f"{session}:{window}", *when, "--", message]


def main(argv: list[str] | None = None) -> int:
    """Parse the old command line and run the asched command it maps to."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tmux-Orchestrator's scheduler.py command line, mapped onto asched.",
    )
    form = parser.add_mutually_exclusive_group(required=True)
    form.add_argument("--add", nargs=5, metavar=("SESSION", "ROLE", "WINDOW", "INTERVAL", "NOTE"))
    form.add_argument("--list", action="store_true", help="asched ls")
    form.add_argument("--remove", type=int, metavar="ID", help="asched rm ID")
    form.add_argument("--daemon", action="store_true", help=argparse.SUPPRESS)
    form.add_argument("--queue-daemon", action="store_true", help=argparse.SUPPRESS)
    raw = sys.argv[1:] if argv is None else argv
    if len(raw) == 6 and raw[0] == "--add":
        # The five values as given: a NOTE such as "--urgent" is a note, not an option.
        args = argparse.Namespace(add=raw[1:], list=False, remove=None, daemon=False)
        args.queue_daemon = False
    else:
        args = parser.parse_args(raw)
    if args.daemon or args.queue_daemon:
        return _fail(
            "asched's daemon delivers check-ins now (systemctl --user status asched); keep the"
            " old scheduler stopped: both would type every check-in"
        )
    if args.add:
        session, _role, window, interval, note = args.add
        mapped = _add_argv(session, window, interval, note)
        if isinstance(mapped, str):
            return _fail(mapped)
        command = mapped
    elif args.list:
        command = ["ls"]
    else:
        command = ["rm", str(args.remove)]
    asched = _asched()
    if asched is None:
        return _fail("asched is not on PATH (install it, or set ASCHED_BIN)", 127)
    return subprocess.run([asched, *command], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
