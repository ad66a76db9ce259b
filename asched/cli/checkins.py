"""The data commands: ``add``, ``ls``, ``rm``, ``pause``, ``resume`` and ``history``.

They work on the database directly, whether a daemon runs or not; after a write they wake the
daemon so that it re-plans at once (an idle daemon sleeps until its next due time; a write it is
not told of waits for its next wake-up, and the command says so). The work
itself is in :mod:`asched.cli.actions` (shared with the MCP server); the handlers of ``pause``
and ``resume`` are in :mod:`asched.cli.pausing`.

Order of work in every handler: parse and validate everything, then open the store. A usage error
(exit 2) therefore never creates the state directory or the database, and the read-only commands
never create anything either: no database means an empty schedule.

Each handler imports what it uses when it runs: the parser loads this module for any of its six
commands, and ``ls --json`` needs neither the planning of ``add`` (time zones, cron) nor the
tables (tests/cli/test_imports.py).
"""

from __future__ import annotations

import argparse

from asched.cli.shared import current_time, state_dir
from asched.core.errors import EXIT_OK

Subparsers = argparse._SubParsersAction  # the type add_subparsers() returns

DEFAULT_HISTORY_LIMIT = 20
_FORMATTER = argparse.RawDescriptionHelpFormatter

DESCRIPTIONS = {
    "add": "When it falls due, the daemon types MESSAGE into the pane TARGET and presses\n"
    "Enter (never into a shell prompt). Works whether the daemon runs or not; a running one\n"
    "is woken to re-plan at once. With --key, a check-in with the same key is replaced:\n"
    'the way to say "my next check-in is now this one".',
    "ls": "Soonest first, like systemctl list-timers. Finished check-ins (nothing left to do)\n"
    "are hidden unless --all is given.",
    "history": "One row per occurrence: delivered (verified/unverified), skipped or failed,\n"
    "and why. Rows stay after their check-in is removed.",
}

ADD_EPILOG = """\
when (one of):
  --in DUR                  once, DUR from now
  --at TIME                 once, at TIME
  --every DUR [--in|--at]   repeating; the first one at --in/--at, else one DUR from now
  --cron EXPR [--tz ZONE]   five-field cron, in ZONE (default: this system's zone)

DUR is a time span as systemd writes it (systemd.time(7)), largest unit first:
  90s, 5m or 5min, 1.5h, 2 h, 1h 30min, 1h30m, 2d, 1w
  units: s sec second(s), m min minute(s), h hr hour(s), d day(s), w week(s), month(s),
  y year(s), ms, us; a bare number is refused (seconds or minutes?), and so is M (months
  to systemd, minutes to most people)
TIME is a time of day, the next such local time (today or tomorrow):
  14:30, 14:30:15, 9am, 9:30pm, 12am (midnight)
  or a date and time in ISO 8601, local (or in --tz) unless it has an offset:
  2026-03-29T09:00, "2026-03-29 09:00", 2026-03-29T09:00:00Z, 2026-03-29T09:00+02:00

examples:
  asched add work:0.1 "status report please" --in 30m
  asched add work:0 "stand-up time" --at 09:00     (or --at 9am; --at 9:30pm)
  asched add work:0 "wrap up" --in "1h 30min"
  asched add work:agent "check the build" --every 1h --in 5m --count 8
  asched add work:0 "weekly review" --cron "0 9 * * MON" --tz Europe/Berlin
  asched add work:0.1 "next check-in" --in 20m --key agent1-next    (replaces agent1-next)
  asched add work:0 --in 1m -- "-x starts with a dash"             (-- ends the options)
  asched add work:0 "stuck?" --every 30m --if-idle 10m      (only when the agent has gone quiet)
  asched add work:0 "review" --in 1h --when-idle 2m --grace 30m   (waits for a quiet moment)

Prints the check-in's id and next time (--json: the stored check-in). Exit 2, with nothing
written, for any invalid option.
"""

LS_EPILOG = """\
examples:
  asched ls                      what is scheduled, soonest first
  asched ls --target work:0.1    one pane's check-ins
  asched ls --all --json         everything, finished ones too, as JSON

LEFT says "paused" for a paused check-in and "overdue" when a due time passed while no
daemon ran; LAST is the previous occurrence. Times are local; --json gives them in UTC.
"""

RM_EPILOG = """\
examples:
  asched rm 12
  asched rm --key agent1-next

The check-in's delivery history stays (asched history 12). Exit 2 for an unknown id or key.
"""

PAUSE_EPILOG = """\
examples:
  asched pause 12      asched resume 12      asched pause --key agent1-next
  asched pause --target work:0.1             every check-in aimed at that pane
  asched resume --target %5

A paused check-in keeps its place in the schedule; occurrences that fall due while it is paused
meet its misfire policy (--grace, --catch-up) when it is resumed. --target acts on the
check-ins the target has now; one an agent replaces later with `asched next` stays paused.
asched ls lists the paused targets below the table.
"""

HISTORY_EPILOG = """\
examples:
  asched history                 the latest deliveries, newest first
  asched history 12 --limit 5    one check-in's last five
  asched history --target work:0.1 --json

States: claimed, typing, typed, submitted (in flight); verified, unverified, failed, skipped
(final). "late" marks an occurrence delivered after its due time within its grace window.
TRIES counts the tries at delivering it, the first included (0: skipped before any, as missed).
MESSAGE is the check-in's text, its first line cut to 40 columns (--full: all of it; "-" once
the check-in is removed); --json gives it whole, as "message".
"""


def add_checkin_commands(
    sub: Subparsers[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    only: str | None = None,
) -> None:
    """Add the data commands to the CLI's subparsers; ``common`` carries ``--state-dir``.
    ``only``: that command alone (the parser of one command line: :mod:`asched.cli.parser`)."""
    if only in (None, "add"):
        _add_parser(sub, common)
    if only in (None, "ls"):
        _ls_parser(sub, common)
    if only in (None, "rm"):
        rm = _parser(sub, common, "rm", "remove a check-in", RM_EPILOG)
        _selector_args(rm)
        rm.set_defaults(handler=_cmd_rm)
    for name, verb in (("pause", "pause"), ("resume", "resume")):
        if only not in (None, name):
            continue
        p = _parser(sub, common, name, f"{verb} a check-in, or all of one target's", PAUSE_EPILOG)
        _selector_args(p)
        p.add_argument(
            "--target", metavar="T", help=f"{verb} every check-in of this target, instead of one"
        )
        p.set_defaults(handler=_cmd_pause if name == "pause" else _cmd_resume)
    if only in (None, "history"):
        _history_parser(sub, common)


def _history_parser(
    sub: Subparsers[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    history = _parser(sub, common, "history", "show the delivery journal", HISTORY_EPILOG)
    history.add_argument("id", nargs="?", metavar="ID", help="only this check-in's deliveries")
    history.add_argument("--target", metavar="T", help="only deliveries to this target")
    history.add_argument(
        "--limit",
        metavar="N",
        default=str(DEFAULT_HISTORY_LIMIT),
        help=f"at most N rows (default {DEFAULT_HISTORY_LIMIT})",
    )
    _output_args(history, full_help="show whole messages; do not shorten to the terminal width")
    history.set_defaults(handler=_cmd_history)


def _parser(
    sub: Subparsers[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    summary: str,
    epilog: str,
) -> argparse.ArgumentParser:
    description = summary[0].upper() + summary[1:] + "."
    if name in DESCRIPTIONS:
        description += "\n" + DESCRIPTIONS[name]
    return sub.add_parser(
        name,
        parents=[common],
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=_FORMATTER,
    )


def _output_args(
    p: argparse.ArgumentParser,
    table: bool = True,
    full_help: str = "do not shorten columns to the terminal width",
) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (times in UTC)")
    if table:
        p.add_argument("-l", "--full", action="store_true", help=full_help)


def _selector_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", nargs="?", metavar="ID", help="the check-in's id (see asched ls)")
    p.add_argument("--key", metavar="KEY", help="the check-in with this key, instead of an id")
    _output_args(p, table=False)


def _add_parser(sub: Subparsers[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    add = _parser(sub, common, "add", "schedule a check-in message for a tmux pane", ADD_EPILOG)
    add.add_argument("target", metavar="TARGET", help="tmux pane: session:window[.pane] or %%N")
    add.add_argument("message", metavar="MESSAGE", help="the text typed into the pane")
    when = add.add_argument_group("when")
    when.add_argument("--in", dest="in_", metavar="DUR", help="first (or only) one DUR from now")
    when.add_argument("--at", metavar="TIME", help="first (or only) one at TIME")
    when.add_argument("--every", metavar="DUR", help="repeat every DUR")
    when.add_argument("--cron", metavar="EXPR", help="repeat on a five-field cron schedule")
    when.add_argument(
        "--tz", metavar="ZONE", help="IANA zone for --cron and for times without an offset"
    )
    when.add_argument("--count", metavar="N", help="stop after N occurrences")
    when.add_argument("--until", metavar="TIME", help="no occurrence after TIME")
    policy = add.add_argument_group("policy")
    policy.add_argument(
        "--key", metavar="KEY", help="replace the check-in with this key, if any (an upsert)"
    )
    policy.add_argument(
        "--grace", metavar="DUR", default="5m", help="deliver late by at most DUR (default 5m)"
    )
    policy.add_argument(
        "--catch-up",
        metavar="skip|once",
        default="skip",
        help="past the grace window: skip the missed one, or deliver it once (default skip)",
    )
    policy.add_argument(
        "--jitter", metavar="DUR", default="0s", help="random delay up to DUR (default 0)"
    )
    policy.add_argument(
        "--if-idle",
        metavar="DUR",
        help="deliver only if the pane showed no output for DUR and its agent does not show that"
        " it is working, else skip it (skipped(busy))",
    )
    policy.add_argument(
        "--when-idle",
        metavar="DUR",
        help="wait (within --grace) until the pane showed no output for DUR and its agent is not"
        " working, then deliver",
    )
    _output_args(add, table=False)
    add.set_defaults(handler=_cmd_add)


def _ls_parser(sub: Subparsers[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    ls = _parser(sub, common, "ls", "list scheduled check-ins", LS_EPILOG)
    ls.add_argument("--target", metavar="T", help="only this target's check-ins")
    ls.add_argument(
        "-a", "--all", action="store_true", help="include finished check-ins (nothing left to do)"
    )
    _output_args(ls)
    ls.set_defaults(handler=_cmd_ls)


# -- handlers --------------------------------------------------------------------------------------


def _cmd_add(args: argparse.Namespace) -> int:
    # Lazy, here and in the other handlers: see the module's docstring.
    from asched.cli import lookup
    from asched.cli.actions import store_checkin
    from asched.cli.addplan import AddRequest, plan_checkin
    from asched.cli.selection import next_text
    from asched.cli.shared import warn_if_no_daemon, warn_if_nowhere
    from asched.cli.views import checkin_json, print_json

    now = current_time()
    request = AddRequest(
        target=args.target,
        message=args.message,
        at=args.at,
        in_=args.in_,
        every=args.every,
        cron=args.cron,
        tz=args.tz,
        occurrences=args.count,
        until=args.until,
        key=args.key,
        grace=args.grace,
        catch_up=args.catch_up,
        jitter=args.jitter,
        if_idle=args.if_idle,
        when_idle=args.when_idle,
    )
    new = plan_checkin(request, now)
    state = state_dir(args)
    # tmux lists its panes while the check-in is stored: the look-up adds little to the wait.
    with lookup.Listing(lookup.tmux_socket(state, lookup.environ())) as listing:
        stored, replaced, no_daemon = store_checkin(state, new)
        found = lookup.look_up(stored.target, listing.socket, listing)
    warn_if_no_daemon(no_daemon)
    warn_if_nowhere(state, stored.target, found)
    if args.json:
        print_json({**checkin_json(stored), "replaced": replaced})
    else:
        verb = "replaced" if replaced else "added"
        print(f"{verb} check-in {stored.id} for {stored.target}, {next_text(stored, now)}")
    return EXIT_OK


def _cmd_ls(args: argparse.Namespace) -> int:
    from asched.cli.actions import read_checkins
    from asched.cli.selection import canonical_target
    from asched.cli.views import checkin_json, print_json

    target = canonical_target(args.target)
    now = current_time()
    checkins = read_checkins(state_dir(args), target)
    shown = checkins if args.all else [c for c in checkins if c.next_due is not None]
    if args.json:
        print_json([checkin_json(c) for c in shown])
    else:
        from asched.cli.views import checkins_table, print_lines, terminal_width
        from asched.core.zones import local_zone_name

        hidden = len(checkins) - len(shown)
        zone = local_zone_name()
        print_lines(checkins_table(shown, now, terminal_width(args.full), zone, hidden=hidden))
    return EXIT_OK


def _cmd_rm(args: argparse.Namespace) -> int:
    from asched.cli.actions import remove
    from asched.cli.selection import selector
    from asched.cli.views import checkin_json, print_json

    checkin_id, key = selector(args)
    gone = remove(state_dir(args), checkin_id, key)
    if args.json:
        print_json(checkin_json(gone))
    else:
        print(f"removed check-in {gone.id} for {gone.target}")
    return EXIT_OK


def _cmd_history(args: argparse.Namespace) -> int:
    from asched.cli.actions import read_history_with_messages
    from asched.cli.selection import canonical_target, parse_id, whole
    from asched.cli.views import (
        deliveries_table,
        delivery_json,
        print_json,
        print_lines,
        terminal_width,
    )

    checkin_id = None if args.id is None else parse_id(args.id)
    target = canonical_target(args.target)
    limit = whole(args.limit, "--limit", "a number of rows, at least 1")
    rows, messages = read_history_with_messages(state_dir(args), checkin_id, target, limit)
    if args.json:
        print_json([{**delivery_json(d), "message": messages.get(d.checkin_id)} for d in rows])
    else:
        width = terminal_width(args.full)
        print_lines(deliveries_table(rows, width, messages, full=args.full))
    return EXIT_OK


def _cmd_pause(args: argparse.Namespace) -> int:
    from asched.cli.pausing import cmd_pause

    return cmd_pause(args)


def _cmd_resume(args: argparse.Namespace) -> int:
    from asched.cli.pausing import cmd_resume

    return cmd_resume(args)
