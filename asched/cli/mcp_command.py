"""``asched mcp``: the command line of the MCP server and of its registration with agent UIs.

The work is in :mod:`asched.cli.mcp_server` (which loads the ``mcp`` SDK, about a second) and
:mod:`asched.cli.mcp_install`, imported by the handler only: the parser loads this module for
every command, and ``asched --version``, ``next`` or ``ls`` must not pay for the SDK.
"""

from __future__ import annotations

import argparse
import sys

from asched.cli.shared import state_dir
from asched.core.errors import UsageError

__all__ = ["add_mcp_command"]

AGENT_NAMES = ("claude", "gemini")

DESCRIPTION = """\
Serve asched's check-in tools to an AI agent over MCP (stdio), or register that server with an
agent UI. The agent starts `asched mcp` itself, with its own environment: the tools act on the
agent's own tmux pane ($TMUX_PANE) unless given a target, and use the state directory the
command line would (--state-dir, $ASCHED_STATE_DIR, ...). Tools: schedule_checkin,
set_next_checkin, list_checkins, pause_checkins, resume_checkins, cancel_checkin,
checkin_history."""

EPILOG = """\
examples:
  asched mcp install claude          claude mcp add -s user asched -- PYTHON -P -m asched mcp
  asched mcp install gemini          adds mcpServers.asched to ~/.gemini/settings.json
  asched mcp install claude --claude ~/.local/bin/claude --force
  asched mcp uninstall gemini
  asched mcp                         serve on stdin/stdout (what the agent runs)

install is idempotent: the same entry again changes nothing (exit 0); an asched entry with
another command is replaced only with --force. Every other server and setting is kept.
The command registered is this Python, with --state-dir when one is given here.
"""


def add_mcp_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``mcp`` to the CLI's subparsers."""
    p = sub.add_parser(
        "mcp",
        parents=[common],
        help="MCP server for agents (Claude Code, Gemini CLI); install|uninstall AGENT",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("install", "uninstall"),
        metavar="install|uninstall",
        help="register the server with an agent UI, or remove it (default: serve on stdio)",
    )
    p.add_argument(
        "agent",
        nargs="?",
        choices=AGENT_NAMES,
        metavar="claude|gemini",
        help="the agent UI: claude (Claude Code) or gemini (Gemini CLI)",
    )
    p.add_argument(
        "--claude", metavar="PATH", help="the claude program to run (default: claude on PATH)"
    )
    p.add_argument(
        "--force", action="store_true", help="replace an asched entry that runs another command"
    )
    p.set_defaults(handler=_cmd_mcp)


def _cmd_mcp(args: argparse.Namespace) -> int:
    if args.action is None:
        if args.claude is not None or args.force:
            raise UsageError("mcp: --claude and --force go with install or uninstall")
        state_dir(args)  # a bad --state-dir is refused now, not at the first tool call
        if sys.stdin.isatty():
            print(
                "asched mcp: serving MCP on stdin/stdout (an agent runs this; to register it:"
                " asched mcp install claude|gemini)",
                file=sys.stderr,
            )
        from asched.cli import mcp_server  # lazy: the SDK (see the module's docstring)

        return mcp_server.serve(lambda: state_dir(args))
    if args.agent is None:
        raise UsageError(f"mcp {args.action}: name the agent: claude or gemini")
    if args.force and args.action == "uninstall":
        raise UsageError("mcp uninstall: --force goes with install")
    from asched.cli import mcp_install  # lazy

    return int(mcp_install.run(args.action, args.agent, args.claude, args.force, args.state_dir))
