"""The whole command line: ``asched`` and every subcommand, each family's added by its module.

The order of the calls in :func:`build_parser` is the order of the commands in ``asched --help``.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from asched import __version__
from asched.cli.checkins import add_checkin_commands
from asched.cli.completion import add_completion_command
from asched.cli.daemonctl import add_config, add_daemon, add_demo, add_reload, add_send, add_status
from asched.cli.doctor import add_doctor
from asched.cli.hook import add_hook_command
from asched.cli.hooks_install import add_hooks_commands
from asched.cli.legacy import add_legacy_command
from asched.cli.mcp_command import add_mcp_command
from asched.cli.selfsched import add_next_command
from asched.cli.service import add_service_commands
from asched.cli.shared import error_line, state_dir_option
from asched.core.errors import EXIT_USAGE

DESCRIPTION = """\
asched types scheduled check-in messages into tmux panes: "in 30 minutes, ask the orchestrator
for a status report". A daemon keeps the schedule (one per state directory); these commands
talk to it, and work whether it runs or not.
"""

EPILOG = """\
examples:
  asched daemon                      run the scheduler in the foreground (JSON logs on stderr)
  asched status                      is a daemon running on this state directory?
  asched doctor                      check daemon, state, config, tmux, targets; say what to fix
  asched add work:0.1 "status report please" --in 30m
                                     type that into pane 1 of window 0 of session work, once
  asched add work:0 "check the build" --every 1h --key build
                                     hourly; a second add with --key build replaces it
  asched add work:0 "stand-up" --cron "0 9 * * MON-FRI" --tz Europe/Berlin
  asched ls                          what is scheduled (--json for scripts)
  asched pause 12 / resume 12 / rm 12
  asched history                     what was delivered, skipped or failed
  asched send work:0 "hello"         deliver now, no daemon needed
  asched mcp install claude          give Claude Code (or gemini) check-in tools over MCP
  asched demo                        see it work in about ten seconds
  asched config check                validate the config file (declarative check-ins)
  asched hooks install claude        Claude Code confirms each check-in it received
  asched completion bash             a completion script for bash (or zsh, fish); man asched
  asched COMMAND --help              each command's options and examples

state directory: --state-dir, else $ASCHED_STATE_DIR, else $STATE_DIRECTORY (systemd),
else $XDG_STATE_HOME/asched (~/.local/state/asched) when a daemon runs there, else the one
a running daemon of yours published (asched@USER: /var/lib/asched/USER), else the default.
exit codes: 0 ok, 1 runtime error, 2 bad usage, 3 not running (status),
4 database replaced under the running daemon, 75 lock held.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors, like every other error of asched (exit 2).

    argparse prints the whole usage block and then the error; and "unrecognized arguments"
    repeats the user's words raw, newlines and all. Subparsers inherit this class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USAGE, f"{self.prog}: error: {error_line(message)} (see {self.prog} --help)\n"
        )


def build_parser() -> argparse.ArgumentParser:
    """The full parser; every subcommand takes --state-dir."""
    parser: argparse.ArgumentParser = _Parser(  # subparsers are _Parser too (type(self))
        prog="asched", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"asched {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = state_dir_option()
    add_daemon(sub, common)
    add_status(sub, common)
    add_doctor(sub, common)
    add_checkin_commands(sub, common)  # add, ls, rm, pause, resume, history
    add_next_command(sub, common)
    add_mcp_command(sub, common)
    add_legacy_command(sub, common)
    add_send(sub, common)
    add_config(sub)
    add_reload(sub, common)
    add_demo(sub)
    add_service_commands(sub)
    add_hook_command(sub, common)
    add_hooks_commands(sub, common)
    add_completion_command(sub, parser)
    return parser
