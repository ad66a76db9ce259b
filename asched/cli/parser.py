"""The command line: ``asched`` and its subcommands, each family's added by its module.

Every command line parses with the whole parser's rules, but only ``asched --help``, an unknown
command, the man page and the completion scripts build the whole parser: :func:`parser_for` builds
the top level with the command given alone, added by its family's module (:data:`FAMILIES`), so
that ``asched add`` imports ``asched.cli.checkins`` and not the MCP server's command line, the
legacy importer or the doctor (together about 20 ms of imports; tests/cli/test_imports.py keeps
the budget). A command's part of the parser is the same whichever way it is built, so its --help
and its errors are too (tests/cli/test_parser.py compares them).

The order of :data:`FAMILIES` is the order of the commands in ``asched --help``.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from asched import __version__
from asched.cli.shared import error_line, help_width, state_dir_option
from asched.core.errors import EXIT_USAGE

Subparsers = argparse._SubParsersAction  # the type add_subparsers() returns

# Each family of commands, by the name :func:`_add_family` knows it by: the commands it adds, in
# the order of `asched --help`.
FAMILIES: dict[str, tuple[str, ...]] = {
    "daemon": ("daemon",),
    "status": ("status",),
    "doctor": ("doctor",),
    "checkins": ("add", "ls", "rm", "pause", "resume", "history"),
    "next": ("next",),
    "mcp": ("mcp",),
    "import-legacy": ("import-legacy",),
    "send": ("send",),
    "config": ("config",),
    "reload": ("reload",),
    "demo": ("demo",),
    "service": ("install-service", "uninstall-service"),
    "hook": ("hook",),
    "hooks": ("hooks",),
    "completion": ("completion",),
}
FAMILY_OF: dict[str, str] = {cmd: family for family, cmds in FAMILIES.items() for cmd in cmds}

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
    repeats the user's words raw, newlines and all. Subparsers inherit this class. Its
    formatters are given their width (:func:`asched.cli.shared.help_width`).
    """

    def __init__(self, *, formatter_class: Any = argparse.HelpFormatter, **kwargs: Any) -> None:
        # argparse makes a formatter for every add_argument (to check the metavar), and an
        # unsized one imports shutil to size itself.
        sized = functools.partial(formatter_class, width=help_width())
        super().__init__(formatter_class=sized, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USAGE, f"{self.prog}: error: {error_line(message)} (see {self.prog} --help)\n"
        )


def build_parser() -> argparse.ArgumentParser:
    """The whole parser, every command of every family (every subcommand takes --state-dir)."""
    return _build(FAMILIES)


def parser_for(args: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for the command line ``args``: when it starts with a command, the top level
    with that command's family only; otherwise (options first, no command, an unknown one) the
    whole parser, whose help and "invalid choice" error list every command."""
    family = FAMILY_OF.get(args[0]) if args else None
    return build_parser() if family is None else _build((family,), args[0])


def _build(families: Iterable[str], only: str | None = None) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(  # subparsers are _Parser too (type(self))
        prog="asched", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"asched {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = state_dir_option(_Parser)
    for family in families:
        _add_family(family, sub, common, only)
    return parser


def _add_family(
    family: str,
    sub: Subparsers[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    only: str | None = None,
) -> None:
    """Add the commands of ``family`` (see :data:`FAMILIES`), importing its module only now;
    ``only``: of a family of several commands, that one alone, where it saves time."""
    # Imports inside the branches: the point of this module (see its docstring).
    match family:
        case "daemon" | "status" | "send" | "reload":
            from asched.cli import daemonctl

            adders = {
                "daemon": daemonctl.add_daemon,
                "status": daemonctl.add_status,
                "send": daemonctl.add_send,
                "reload": daemonctl.add_reload,
            }
            adders[family](sub, common)
        case "config" | "demo":
            from asched.cli import daemonctl

            (daemonctl.add_config if family == "config" else daemonctl.add_demo)(sub)
        case "doctor":
            from asched.cli.doctor import add_doctor

            add_doctor(sub, common)
        case "checkins":
            from asched.cli.checkins import add_checkin_commands

            add_checkin_commands(sub, common, only)
        case "next":
            from asched.cli.selfsched import add_next_command

            add_next_command(sub, common)
        case "mcp":
            from asched.cli.mcp_command import add_mcp_command

            add_mcp_command(sub, common)
        case "import-legacy":
            from asched.cli.legacy import add_legacy_command

            add_legacy_command(sub, common)
        case "service":
            from asched.cli.service import add_service_commands

            add_service_commands(sub)
        case "hook":
            from asched.cli.hook import add_hook_command

            add_hook_command(sub, common)
        case "hooks":
            from asched.cli.hooks_install import add_hooks_commands

            add_hooks_commands(sub, common)
        case "completion":
            from asched.cli.completion import add_completion_command

            # The script describes the whole parser, whichever part parsed `completion SHELL`.
            add_completion_command(sub, build_parser)
        case _:
            raise ValueError(f"no family of commands named {family!r}")
