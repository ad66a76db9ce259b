"""How check-ins and deliveries look on the terminal: JSON objects and tables.

JSON field names are a contract (agents parse them): add fields, never rename or drop one. Times
in JSON are ISO 8601 UTC with a trailing ``Z``; tables show local time, which is what a person
reading ``ls`` at their terminal compares against their clock.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from asched.core.models import PAUSED, REMOVED, CheckIn, Delivery, Every, Once, Rule, utc
from asched.core.ruletext import format_duration, rule_to_text

__all__ = [
    "checkin_json",
    "checkins_table",
    "deliveries_table",
    "delivery_json",
    "duration_text",
    "iso",
    "local_time",
    "one_line",
    "paused_summary",
    "print_json",
    "print_lines",
    "render_table",
    "rule_json",
    "terminal_width",
    "tries",
]

ELLIPSIS = "…"
# Below this the message column is unreadable; the row overflows the terminal instead.
MIN_FLEX_WIDTH = 16
_GAP = "  "


# -- JSON ------------------------------------------------------------------------------------------


def iso(ts: datetime | None) -> str | None:
    """``2026-11-30T14:05:00Z``; with milliseconds only when the time has some."""
    if ts is None:
        return None
    ts = utc(ts)
    spec = "seconds" if ts.microsecond == 0 else "milliseconds"
    return ts.isoformat(timespec=spec).replace("+00:00", "Z")


def rule_json(rule: Rule) -> dict[str, Any]:
    """``{"kind": "once", "at": ...}``, ``{"kind": "every", "interval_s": ..., "anchor": ...}``
    or ``{"kind": "cron", "expr": ..., "tz": ...}``."""
    if isinstance(rule, Once):
        return {"kind": "once", "at": iso(rule.at)}
    if isinstance(rule, Every):
        return {"kind": "every", "interval_s": rule.interval_s, "anchor": iso(rule.anchor)}
    return {"kind": "cron", "expr": rule.expr, "tz": rule.tz}


def checkin_json(c: CheckIn) -> dict[str, Any]:
    """A check-in as printed by ``add``, ``ls``, ``rm``, ``pause`` and ``resume`` with --json."""
    return {
        "id": c.id,
        "key": c.key,
        "target": c.target,
        "message": c.message,
        "rule": rule_json(c.rule),
        "rule_text": rule_to_text(c.rule),
        "next_due": iso(c.next_due),
        "last_due": iso(c.last_due),
        "paused": c.paused,
        "grace_s": c.grace_s,
        "catch_up": c.catch_up.value,
        "jitter_s": c.jitter_s,
        "remaining": c.remaining,
        "until": iso(c.until),
        "origin": c.origin,
        "idle_s": c.idle_s,
        "idle_wait": c.idle_wait,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }


# Reasons an occurrence ends with before anything was tried in its pane: claimed past its grace
# (missed), a bad rule, or settled by recovery because its check-in was paused or removed.
NOT_TRIED = frozenset({"missed", "bad-rule", PAUSED, REMOVED})
HISTORY_MESSAGE_WIDTH = 40
"""``history`` cuts messages to this many columns (and to the terminal) unless --full."""


def tries(d: Delivery) -> int:
    """How many times asched tried to deliver ``d``: the failed attempts the journal counts
    (``attempts``) plus the last one, so a delivery verified at once has 1; 0 for one that
    ended before any try (skipped as missed, paused or removed)."""
    if d.state.final and d.attempts == 0 and d.reason in NOT_TRIED:
        return 0
    return d.attempts + 1


def delivery_json(d: Delivery) -> dict[str, Any]:
    """A journal row as printed by ``history --json``; ``target`` is the one it was claimed for."""
    return {
        "id": d.id,
        "checkin_id": d.checkin_id,
        "target": d.target or None,
        "pane": d.pane,
        "due_at": iso(d.due_at),
        "state": d.state.value,
        "reason": d.reason,
        "late": d.late,
        "attempts": d.attempts,
        "tries": tries(d),
        "started_at": iso(d.started_at),
        "finished_at": iso(d.finished_at),
        # When the agent itself reported this text as a prompt it received (its hooks).
        "confirmed_at": iso(d.confirmed_at),
    }


# -- human text ------------------------------------------------------------------------------------


def local_time(ts: datetime) -> str:
    """``2026-11-30 14:05:00`` in the system's local zone."""
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration_text(seconds: float) -> str:
    """The two largest units of a duration, ``4m 59s``, ``1d 2h``, ``45s``: a glance, not a
    calculation (``--json`` has the exact times)."""
    parts = format_duration(max(0, round(seconds)))
    # format_duration writes "1d2h3m4s"; split it after each unit letter.
    units: list[str] = []
    current = ""
    for ch in parts:
        current += ch
        if ch.isalpha():
            units.append(current)
            current = ""
    return " ".join(units[:2])


def _ago(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "-"
    return f"{duration_text((now - ts).total_seconds())} ago"


def _left(c: CheckIn, now: datetime) -> str:
    if c.next_due is None:
        return "done"
    if c.paused:
        return "paused"
    seconds = (c.next_due - now).total_seconds()
    if seconds < 0:
        # Only while no daemon runs (or it is catching up): say so rather than show "0s".
        return f"overdue {duration_text(-seconds)}"
    return duration_text(seconds)


def _rule_cell(c: CheckIn, local_zone: str) -> str:
    rule = c.rule
    if isinstance(rule, Once):
        text = "once"
    elif isinstance(rule, Every):
        text = f"every {format_duration(rule.interval_s)}"
    else:
        text = f"cron {rule.expr}" + ("" if rule.tz == local_zone else f" {rule.tz}")
    if c.remaining is not None and c.next_due is not None and not isinstance(rule, Once):
        text += f", {c.remaining} left"
    return text


def one_line(text: str) -> str:
    """``text`` safe for one table cell: newlines shown as ``↵``, other control characters as
    ``?`` (a stored message may come from a config file and hold anything)."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("↵")
        elif ch == "\t":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cell_width(text: str) -> int:
    """Terminal columns ``text`` takes (wide CJK characters count two, combining marks none)."""
    return sum(_char_width(ch) for ch in text)


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns, ending in ``…`` when something was cut."""
    if cell_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = _char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + ELLIPSIS


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - cell_width(text))
    return fill + text if right else text + fill


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None,
    right: frozenset[int] = frozenset(),
) -> list[str]:
    """Align ``rows`` under ``headers``; the last column takes what is left of ``width`` columns
    (None: no limit) and is truncated with ``…``. Columns in ``right`` are right-aligned."""
    cells = [[one_line(cell) for cell in row] for row in rows]
    widths = [cell_width(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], cell_width(cell))
    if width is not None:
        fixed = sum(widths[:-1]) + len(_GAP) * (len(headers) - 1)
        flex = max(width - fixed, MIN_FLEX_WIDTH)
        cells = [[*row[:-1], truncate(row[-1], flex)] for row in cells]
    lines = []
    for row in [list(headers), *cells]:
        padded = [_pad(cell, widths[i], i in right) for i, cell in enumerate(row[:-1])]
        lines.append(_GAP.join([*padded, row[-1]]).rstrip())
    return lines


def _message_cell(message: str | None, full: bool) -> str:
    if message is None:
        return "-"
    if full:
        return message  # one_line (render_table) shows its line ends as ↵
    first, _, rest = message.partition("\n")
    return truncate(first + (ELLIPSIS if rest.strip() else ""), HISTORY_MESSAGE_WIDTH)


def _plural(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular}" if n == 1 else f"{n} {plural or singular + 's'}"


def checkins_table(
    checkins: Sequence[CheckIn],
    now: datetime,
    width: int | None,
    local_zone: str,
    hidden: int = 0,
) -> list[str]:
    """The ``ls`` listing, after ``systemctl list-timers``: ID, NEXT, LEFT, LAST, TARGET, RULE,
    KEY (only when some check-in has one), MESSAGE, and a footer. ``hidden`` finished check-ins
    were left out (the footer says how to see them)."""
    with_key = any(c.key is not None for c in checkins)
    headers = ["ID", "NEXT", "LEFT", "LAST", "TARGET", "RULE"]
    headers += ["KEY"] if with_key else []
    headers.append("MESSAGE")
    rows = []
    for c in checkins:
        row = [
            str(c.id),
            "-" if c.next_due is None else local_time(c.next_due),
            _left(c, now),
            _ago(c.last_due, now),
            c.target,
            _rule_cell(c, local_zone),
        ]
        row += [c.key or "-"] if with_key else []
        row.append(c.message)
        rows.append(row)
    lines = render_table(headers, rows, width, right=frozenset({0})) if rows else []
    footer = f"{_plural(len(checkins), 'check-in')} listed."
    if hidden:
        footer += f" Pass --all to see {_plural(hidden, 'finished one')} too."
    return [*lines, *([""] if lines else []), footer, *paused_summary(checkins)]


def paused_summary(checkins: Sequence[CheckIn]) -> list[str]:
    """One line naming the targets with paused check-ins, ``work:0 (all 2), %5 (1 of 3)``, and
    how to resume them; nothing when none is paused. A glance at "which agents are on hold",
    which the per-row LEFT column cannot give once the list is long."""
    totals: dict[str, int] = {}
    paused: dict[str, int] = {}
    for c in checkins:
        if c.next_due is None:
            continue  # a finished check-in has nothing to hold back
        totals[c.target] = totals.get(c.target, 0) + 1
        if c.paused:
            paused[c.target] = paused.get(c.target, 0) + 1
    if not paused:
        return []
    parts = [
        f"{t} (all {n})" if n == totals[t] else f"{t} ({n} of {totals[t]})"
        for t, n in sorted(paused.items())
    ]
    return [f"Paused: {', '.join(parts)}. Resume a target with: asched resume --target TARGET"]


def deliveries_table(
    deliveries: Sequence[Delivery],
    width: int | None,
    messages: Mapping[int, str] | None = None,
    full: bool = False,
) -> list[str]:
    """The ``history`` listing, newest first: ID, DUE, CHECK-IN, TARGET, PANE, STATE, TRIES
    (see :func:`tries`), REASON (why it was skipped or failed), MESSAGE (``messages``, by
    check-in id: its first line, cut to :data:`HISTORY_MESSAGE_WIDTH` columns unless ``full``;
    ``-`` for a check-in removed since)."""
    headers = ["ID", "DUE", "CHECK-IN", "TARGET", "PANE", "STATE", "TRIES", "REASON", "MESSAGE"]
    texts = messages or {}
    rows = []
    for d in deliveries:
        state = d.state.value + (" (late)" if d.late else "")
        state += ", confirmed" if d.confirmed_at is not None else ""
        rows.append(
            [
                str(d.id),
                local_time(d.due_at),
                str(d.checkin_id),
                d.target or "-",
                d.pane or "-",
                state,
                str(tries(d)),
                d.reason or "-",
                _message_cell(texts.get(d.checkin_id), full),
            ]
        )
    lines = render_table(headers, rows, width, right=frozenset({0, 2, 6})) if rows else []
    footer = f"{_plural(len(deliveries), 'delivery', 'deliveries')} listed."
    return [*lines, *([""] if lines else []), footer]


# -- output ----------------------------------------------------------------------------------------


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    # ASCII-only JSON: correct whatever the locale of the reader (a systemd unit may have none).
    print(json.dumps(data, indent=2))


def print_lines(lines: Sequence[str]) -> None:
    """Print ``lines`` on stdout."""
    print("\n".join(lines))


def terminal_width(full: bool) -> int | None:
    """Columns to fit a table into: $COLUMNS, else the terminal's width. None (no shortening)
    for ``--full`` or when stdout is not a terminal, like systemctl: a pipe gets whole messages."""
    if full:
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if sys.stdout.isatty():
            return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        pass
    return None
