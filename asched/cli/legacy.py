"""``asched import-legacy``: the old scheduler's ``tasks`` table, turned into check-ins once.

The file is read by :mod:`asched.cli.legacy_source` (only ever read) and every row judged by
:mod:`asched.cli.legacy_plan`; here the verdicts are written, and the report printed.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from asched.cli.legacy_plan import GONE, ORIGIN, ROW_KEY, Outcome, Status, pile_ups, plan_import
from asched.cli.legacy_source import read_tasks, source_id
from asched.cli.shared import (
    current_time,
    open_existing,
    open_for_write,
    state_dir,
    wake_or_warn,
    warn_if_no_daemon,
)
from asched.cli.views import (
    checkin_json,
    iso,
    local_time,
    print_json,
    print_lines,
    render_table,
    rule_json,
    terminal_width,
)
from asched.core.errors import EXIT_OK
from asched.core.models import Every
from asched.core.paths import path_arg
from asched.core.ruletext import format_duration

__all__ = ["add_legacy_command"]

DESCRIPTION: Final = """\
Import the check-ins of Tmux-Orchestrator's scheduler (its SQLite file with a `tasks` table,
usually task_queue.db) as asched check-ins. PATH is only read, never written: no lock, no
-wal/-shm files. Rows that cannot be imported are listed with the reason and left alone.
Running it again imports nothing twice. Stop the old scheduler first: both would deliver."""

EPILOG: Final = """\
examples:
  asched import-legacy ~/Tmux-Orchestrator/task_queue.db --dry-run   see what would happen
  asched import-legacy ~/Tmux-Orchestrator/task_queue.db             do it
  asched import-legacy task_queue.db --json                          the report as JSON

how rows map (target session_name:window_index, message "SCHEDULED CHECK-IN: <note>", as
the old scheduler typed it; a [delivery] prefix of the same words is not added again):
  interval_minutes > 0    every interval; first at next_run, or the next slot after now
  interval_minutes = 0    once at next_run; more than 5 min in the past: skipped (not replayed)
  retry_count < 0         imported paused (it was disabled), first at the next slot from now;
                          asched resume ID to start it (a disabled one-shot is skipped)
  empty note              the old default: "SCHEDULED CHECK-IN: Time for your regular status
                          update"
  identical rows          imported once, the others reported as duplicates
The check-ins get the key legacy:<row id> (a hash of what the row says: a copy of the file
elsewhere imports nothing twice) and origin "legacy" (see asched ls). A check-in removed
after its import is not imported again. A -wal left by the old scheduler is read (through a
private copy) and never changed.
Exit 2, with nothing written, when PATH is not such a database.
"""


def add_legacy_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``import-legacy`` to the CLI's subparsers."""
    p = sub.add_parser(
        "import-legacy",
        parents=[common],
        help="import Tmux-Orchestrator's scheduled tasks (reads its database only)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="PATH", help="the old scheduler's database (task_queue.db)")
    p.add_argument("--dry-run", action="store_true", help="report what would happen; write nothing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "-l", "--full", action="store_true", help="do not shorten columns to the terminal width"
    )
    p.set_defaults(handler=_cmd_import_legacy)


def _write(state: Path, outcomes: list[Outcome]) -> list[Outcome]:
    """Store the planned check-ins whose keys are still free; the outcomes as they turned out."""
    todo = [i for i, o in enumerate(outcomes) if o.status is Status.WOULD_IMPORT]
    # Found under a key of an older asched: remember this one too, so that a removal sticks.
    seen = [
        o.key
        for o in outcomes
        if o.status is Status.ALREADY and o.checkin is not None and o.checkin.key != o.key
    ]
    if not todo and not seen:
        return outcomes
    done = list(outcomes)
    with open_for_write(state) as store:
        store.remember_imported(seen)
        planned = [o.planned for o in (outcomes[i] for i in todo) if o.planned is not None]
        results = store.add_new(planned, remember=True)
        for i, stored in zip(todo, results, strict=True):
            if stored is not None:
                done[i] = replace(outcomes[i], status=Status.IMPORTED, checkin=stored)
            else:  # another import got there between our look and our write
                found = store.get_by_key(outcomes[i].key)
                done[i] = replace(
                    outcomes[i],
                    status=Status.ALREADY,
                    checkin=found,
                    reason=None if found is not None else GONE,
                )
    return done


def _cmd_import_legacy(args: argparse.Namespace) -> int:
    path = Path(path_arg(args.path, "PATH"))
    tasks = read_tasks(path)  # every problem with PATH ends here, before the state is touched
    ident = source_id(path)
    now = current_time()
    state = state_dir(args)
    store = open_existing(state)
    if store is None:
        outcomes = plan_import(tasks, ident, now, lambda _key: None)
    else:
        with store:
            earlier = [
                c
                for c in store.list_checkins()
                if c.origin == ORIGIN and c.key is not None and not ROW_KEY.fullmatch(c.key)
            ]
            outcomes = plan_import(tasks, ident, now, store.get_by_key, store.was_imported, earlier)
    if not args.dry_run:
        outcomes = _write(state, outcomes)
        if any(o.status is Status.IMPORTED for o in outcomes):
            warn_if_no_daemon(wake_or_warn(state))
    warnings = pile_ups(outcomes)
    if args.json:
        _print_json(path, ident, args.dry_run, outcomes, warnings)
    else:
        _print_report(path, ident, args.dry_run, outcomes, warnings, args.full)
    return EXIT_OK


def _outcome_json(o: Outcome) -> dict[str, Any]:
    planned = None
    if o.planned is not None and o.checkin is None:
        p = o.planned
        planned = {
            "target": p.target,
            "message": p.message,
            "rule": rule_json(p.rule),
            "next_due": iso(p.next_due),
            "paused": p.paused,
        }
    return {
        "row": o.row,
        "key": o.key,
        "status": o.status.value,
        "target": o.target,
        "agent_role": o.role,
        "reason": o.reason,
        "remarks": list(o.remarks),
        "checkin": None if o.checkin is None else checkin_json(o.checkin),
        "planned": planned,
    }


def _counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts = Counter(o.status.value for o in outcomes)
    return {s.value: counts.get(s.value, 0) for s in Status}


def _print_json(
    path: Path,
    ident: str,
    dry_run: bool,
    outcomes: Sequence[Outcome],
    warnings: Sequence[str],
) -> None:
    print_json(
        {
            "source": str(Path(path).absolute()),
            "source_id": ident,
            "dry_run": dry_run,
            "counts": _counts(outcomes),
            "rows": [_outcome_json(o) for o in outcomes],
            "warnings": list(warnings),
        }
    )


def _detail(o: Outcome) -> str:
    if o.status is Status.SKIPPED:
        return o.reason or ""
    if o.status is Status.ALREADY:
        return o.reason or "" if o.checkin is None else f"as check-in {o.checkin.id}"
    c = o.checkin
    rule = c.rule if c is not None else o.planned.rule if o.planned is not None else None
    due = c.next_due if c is not None else o.planned.next_due if o.planned is not None else None
    parts = [] if c is None else [f"id {c.id}"]
    if isinstance(rule, Every):
        parts.append(f"every {format_duration(rule.interval_s)}")
    elif rule is not None:
        parts.append("once")
    if due is not None:
        parts.append(f"next {local_time(due)}")
    return ", ".join(parts) + "".join(f"; {r}" for r in o.remarks)


_RESULT_TEXT: Final = {
    Status.IMPORTED: "imported",
    Status.WOULD_IMPORT: "would import",
    Status.ALREADY: "already imported",
    Status.SKIPPED: "skipped",
}


def _print_report(
    path: Path,
    ident: str,
    dry_run: bool,
    outcomes: Sequence[Outcome],
    warnings: Sequence[str],
    full: bool,
) -> None:
    rows = [
        [str(o.row), o.target or "-", o.role or "-", _RESULT_TEXT[o.status], _detail(o)]
        for o in outcomes
    ]
    headers = ["ROW", "TARGET", "ROLE", "RESULT", "DETAIL"]
    lines = render_table(headers, rows, terminal_width(full), right=frozenset({0})) if rows else []
    n = _counts(outcomes)
    new = n[Status.IMPORTED.value] + n[Status.WOULD_IMPORT.value]
    verb = "would be imported" if dry_run else "imported"
    rows_text = "1 row" if len(outcomes) == 1 else f"{len(outcomes)} rows"
    summary = (
        f"{rows_text} in {path} (source id {ident}): {new} {verb},"
        f" {n[Status.ALREADY.value]} already imported, {n[Status.SKIPPED.value]} skipped."
    )
    tail = [summary]
    if dry_run:
        tail.append("Dry run: nothing was written.")
    tail += [f"warning: {w}" for w in warnings]
    if new:
        tail.append("Keep the old scheduler stopped: it would deliver these check-ins too.")
    print_lines([*lines, *([""] if lines else []), *tail])
