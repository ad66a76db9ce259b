"""``asched mcp``: an MCP server over stdio, the check-in tools of the agent that starts it.

Built on the official SDK's high-level server (``mcp.server.mcpserver.MCPServer``), which this
module imports at the top: it is itself imported only by the ``asched mcp`` handler, since the
SDK takes about a second to load and no other command needs it. The tools' work is in
:mod:`asched.cli.mcp_tools`; here are the descriptions a model reads, the parameters' schemas
and the results: a compact JSON text (and the same object as structured content), or, for an
error, a tool error whose text is the line the command line prints for the same input
(``asched: <message>``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from asched import __version__
from asched.cli.mcp_tools import DEFAULT_HISTORY_LIMIT, AgentTools
from asched.cli.shared import error_line
from asched.core.errors import AschedError

__all__ = ["build_server", "serve"]

INSTRUCTIONS = """\
asched types check-in messages into tmux panes at the times you choose: the message arrives in \
your own input box as if a person had typed it and pressed Enter. Use it to come back to work \
later: "in 30m, check whether the CI run finished". Every tool acts on your own pane (from \
$TMUX_PANE) unless you give a target.
- One follow-up you keep moving: set_next_checkin (one per pane; a new call replaces it).
- A fixed time, a repeat (every, cron) or several at once: schedule_checkin (key= makes it \
replaceable).
- See them: list_checkins; hold them: pause_checkins / resume_checkins; drop one: \
cancel_checkin; what was delivered, skipped or failed: checkin_history.
Durations: systemd time spans, largest unit first: 90s, 20m or 20min, 1.5h, 1h 30min, 2d, 1w \
(a bare 5 is refused). Times of day: 14:30, 9am, 9:30pm (the next such local time); or ISO 8601. \
Times in results are UTC (ISO 8601, Z); 'summary' says it in local time. Errors are asched's \
command-line messages: --in means delay, DUR means delay, --at at, --every every, --cron cron, \
--tz tz, --key key, --target target, ID id, --limit limit."""

Target = Annotated[
    str | None,
    Field(
        description="tmux pane: session:window[.pane] (work:0.1, work:editor) or a pane id %N."
        " Default: your own pane."
    ),
]
Id = Annotated[int | None, Field(description="a check-in's id, as list_checkins shows it")]
Key = Annotated[str | None, Field(description="a check-in's key (see schedule_checkin)")]

SCHEDULE = """\
Schedule a check-in: at the time given, MESSAGE is typed into the target pane (default: yours) \
and Enter pressed. Say when with exactly one of: delay (once, that long from now), at (once, at \
a time), every (repeating; first one delay/at from now, else one interval from now), cron \
(five-field, in tz). With key, a check-in already under that key is replaced (an upsert): the \
way to keep exactly one 'build check' and move it. For a single follow-up of your own pane, \
set_next_checkin is simpler.
Examples: {"message": "check the CI run", "delay": "30m"}; {"message": "stand-up notes", "cron": \
"0 9 * * MON-FRI", "tz": "Europe/Berlin"}; {"message": "status?", "every": "1h", "count": 8, \
"key": "status"}; {"message": "review the PR", "at": "14:30"}.
Returns the stored check-in (id, target, rule, next_due in UTC, ...), replaced, and a summary."""

SET_NEXT = """\
Set your pane's one next check-in: MESSAGE is typed into your pane once, DELAY from now. There \
is one per pane: calling it again replaces the previous one (same id), so rescheduling yourself \
after every check-in never piles them up. This is `asched next DELAY MESSAGE`. If the pane's next \
check-in is paused, the replacement stays paused.
Example: {"delay": "45m", "message": "check-in: is the migration done? if not, what blocks it?"}"""

LIST = """\
List check-ins, soonest first: by default those aimed at your own pane; target= for another \
pane, all_targets=true for every check-in. Finished ones (nothing left to deliver) are hidden \
unless finished=true. Each has id, key, target, message, rule, next_due (UTC), paused. \
Example: {} (yours), {"all_targets": true}."""

PAUSE = """\
{verb} check-ins: one by id or key, every check-in of a target, or, with none of them, all of \
your own pane's. A paused check-in keeps its place in the schedule; one that fell due while \
paused meets its grace/catch_up policy on resume. Example: {{}} (all of yours), {{"id": 3}}. \
Returns what changed."""

CANCEL = """\
Cancel (remove) one check-in for good, by id or by key (list_checkins shows both); its delivery \
history stays. To hold it for a while instead, use pause_checkins. Example: {"id": 3}, \
{"key": "status"}. Returns the removed check-in."""

HISTORY = """\
Recent deliveries, newest first: by default those to your own pane; id= for one check-in, \
target= for another pane, all_targets=true for all. Each has due_at (UTC), state (verified: typed \
and taken by the program; unverified: typed, not confirmed; skipped or failed, with a reason; \
claimed/typing/typed/submitted: in flight), late, tries (1: went through at once), and \
confirmed_at (when your \
own hooks reported the text as a prompt you received: asched hooks install claude). \
Example: {"limit": 5}."""


def _result(work: Callable[[], dict[str, Any]]) -> CallToolResult:
    """Run a tool's work: its dict as compact JSON, or asched's error line as a tool error."""
    try:
        data = work()
    except AschedError as exc:
        text = f"asched: {error_line(str(exc))}"
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
    text = json.dumps(data, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def build_server(tools: AgentTools) -> MCPServer:
    """The MCP server with the check-in tools of ``tools``."""
    server: MCPServer = MCPServer(
        name="asched", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )
    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
    reads = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(description=SCHEDULE, annotations=writes)
    def schedule_checkin(
        message: Annotated[str, Field(description="the text typed into the pane")],
        delay: Annotated[str | None, Field(description="once, this long from now: 20m")] = None,
        at: Annotated[
            str | None,
            Field(description="once, at 14:30 or 9:30pm (the next such local time) or ISO 8601"),
        ] = None,
        every: Annotated[str | None, Field(description="repeat at this interval: 1h")] = None,
        cron: Annotated[str | None, Field(description="five-field cron: 0 9 * * MON-FRI")] = None,
        tz: Annotated[
            str | None, Field(description="IANA zone for cron and for times without offset")
        ] = None,
        key: Annotated[
            str | None, Field(description="replace the check-in with this key, if any")
        ] = None,
        target: Target = None,
        count: Annotated[
            int | None, Field(description="repeating: stop after this many occurrences")
        ] = None,
        until: Annotated[str | None, Field(description="repeating: none after this time")] = None,
        grace: Annotated[
            str, Field(description="deliver late by at most this (the daemon was down, ...)")
        ] = "5m",
        catch_up: Annotated[
            str, Field(description="past the grace: skip the missed one, or deliver it once")
        ] = "skip",
        if_idle: Annotated[
            str | None,
            Field(description="deliver only if the pane showed no output this long, else skip"),
        ] = None,
        when_idle: Annotated[
            str | None,
            Field(description="wait (within grace) until the pane is quiet this long"),
        ] = None,
    ) -> CallToolResult:
        when = {"delay": delay, "at": at, "every": every, "cron": cron, "tz": tz, "until": until}
        idle = {"if_idle": if_idle, "when_idle": when_idle}
        return _result(
            lambda: tools.schedule(
                message,
                target,
                key=key,
                count=count,
                grace=grace,
                catch_up=catch_up,
                **when,
                **idle,
            )
        )

    @server.tool(description=SET_NEXT, annotations=writes)
    def set_next_checkin(
        delay: Annotated[str, Field(description="how long from now: 90s, 20min, 1.5h, 2d")],
        message: Annotated[str, Field(description="the text typed into the pane")],
        target: Target = None,
    ) -> CallToolResult:
        return _result(lambda: tools.set_next(delay, message, target))

    @server.tool(description=LIST, annotations=reads)
    def list_checkins(
        target: Target = None,
        all_targets: Annotated[bool, Field(description="every check-in, any pane")] = False,
        finished: Annotated[bool, Field(description="include finished check-ins")] = False,
    ) -> CallToolResult:
        return _result(lambda: tools.checkins(target, all_targets, finished))

    for paused, verb in ((True, "Pause"), (False, "Resume")):
        _add_pause_tool(server, tools, paused, verb)

    @server.tool(description=CANCEL, annotations=ToolAnnotations(open_world_hint=False))
    def cancel_checkin(id: Id = None, key: Key = None) -> CallToolResult:
        return _result(lambda: tools.cancel(id, key))

    @server.tool(description=HISTORY, annotations=reads)
    def checkin_history(
        id: Id = None,
        target: Target = None,
        all_targets: Annotated[bool, Field(description="deliveries to every pane")] = False,
        limit: Annotated[int, Field(description="at most this many rows")] = DEFAULT_HISTORY_LIMIT,
    ) -> CallToolResult:
        return _result(lambda: tools.history(id, target, all_targets, limit))

    return server


def _add_pause_tool(server: MCPServer, tools: AgentTools, paused: bool, verb: str) -> None:
    def pause_or_resume(id: Id = None, key: Key = None, target: Target = None) -> CallToolResult:
        return _result(lambda: tools.pause(paused, id, key, target))

    annotations = ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )
    server.add_tool(
        pause_or_resume,
        name=f"{verb.lower()}_checkins",
        description=PAUSE.format(verb=verb),
        annotations=annotations,
    )


def serve(state: Path | Callable[[], Path]) -> int:
    """Serve the tools on stdin/stdout until the client closes them; the agent's environment
    (``$TMUX_PANE``) is this process's."""
    build_server(AgentTools(state, os.environ)).run("stdio")
    return 0
