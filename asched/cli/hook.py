"""``asched hook``: an agent's hook event, passed on to the daemon; fast, and never in the way.

Claude Code runs it on UserPromptSubmit, Stop, StopFailure and SessionStart (``asched hooks
install claude`` registers it), inside the agent's pane, with the event as JSON on stdin. It sends
the pane (``$TMUX_PANE``), the kind of event and, for a prompt, its exact text to the daemon's
control socket (what the daemon makes of them: :mod:`asched.delivery.hookbook`), and exits 0
whatever happens. A daemon that is down or does not answer within :data:`TIMEOUT_S`, a process
outside tmux, bad input: each costs one line on stderr and nothing else, since Claude Code waits
for a UserPromptSubmit hook before it takes the prompt. For the same reason this path loads the
standard library and asched's light modules only.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Mapping

from asched.cli.shared import help_width, state_dir, state_dir_option
from asched.daemon import control
from asched.delivery.hookbook import HookEvent

# Claude Code's event names -> the kinds the daemon knows.
EVENTS = {
    "UserPromptSubmit": "prompt",
    "Stop": "stop",
    "StopFailure": "stop-failure",
    "SessionStart": "session-start",
}
TIMEOUT_S = 0.3  # the daemon answers a local socket in well under a millisecond when it runs
MAX_INPUT = 4 << 20  # a prompt is at most a few MiB: more is not an event of ours

DESCRIPTION = (
    "Pass one hook event of an agent (JSON on stdin, as Claude Code sends it) to the daemon: the"
    " prompt it received, a turn ended. Meant to be run by the agent (asched hooks install"
    " claude), in its tmux pane. Always exits 0; a daemon that is down costs one line on stderr."
)


def add_hook_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``hook``."""
    p = sub.add_parser(
        "hook",
        parents=[common],
        help="pass an agent's hook event (JSON on stdin) to the daemon",
        description=DESCRIPTION,
    )
    p.set_defaults(handler=_cmd_hook)


def main(argv: list[str]) -> int:
    """``asched hook [--state-dir DIR]`` without the rest of the command line (see cli/main.py)."""
    parser = argparse.ArgumentParser(
        prog="asched hook",
        parents=[state_dir_option()],
        description=DESCRIPTION,
        # Sized here: argparse would import shutil to ask (see shared.help_width).
        formatter_class=functools.partial(argparse.HelpFormatter, width=help_width()),
    )
    return _cmd_hook(parser.parse_args(argv))


def read_event(raw: bytes, env: Mapping[str, str]) -> HookEvent | None:
    """The event to pass on from a hook's stdin and environment; None for events asched does
    not use. ValueError when the input is not a hook event, or the agent is not in tmux."""
    if len(raw) > MAX_INPUT:
        raise ValueError(f"input over {MAX_INPUT} bytes")
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    kind = EVENTS.get(str(data.get("hook_event_name")))
    if kind is None:
        return None
    pane = env.get("TMUX_PANE", "")
    if not pane:
        raise ValueError("not in a tmux pane ($TMUX_PANE is not set)")
    prompt = data.get("prompt") if kind == "prompt" else None
    if prompt is not None and not isinstance(prompt, str):
        raise ValueError("the prompt is not text")
    # $TMUX is "SOCKET,PID,SESSION": the daemon ignores events from another server's panes.
    tmux = env.get("TMUX", "").split(",", 1)[0] or None
    return HookEvent.parse(HookEvent(pane, kind, prompt, tmux).payload())


def _cmd_hook(args: argparse.Namespace) -> int:
    try:
        event = read_event(sys.stdin.buffer.read(MAX_INPUT + 1), os.environ)
        if event is None:
            return 0
        state = state_dir(args)
        if not control.send(state, "hook", TIMEOUT_S, event.payload()):
            _say(f"no daemon answered on {state}; the {event.kind} event is dropped")
    except Exception as exc:  # never the agent's problem: one line, exit 0
        _say(f"ignored: {exc}")
    return 0


def _say(text: str) -> None:
    print(f"asched hook: {text}", file=sys.stderr)
