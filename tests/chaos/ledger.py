"""What reached the panes against what the journal says: duplicates, lost and interrupted.

Receiving panes run ``cat >> FILE``: a line lands in FILE only when its Enter was pressed, so FILE
holds exactly the check-ins that were submitted, in order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from asched.core.paths import DB_NAME
from asched.core.states import DeliveryState
from asched.store.store import Store

FINAL = {
    DeliveryState.VERIFIED,
    DeliveryState.UNVERIFIED,
    DeliveryState.FAILED,
    DeliveryState.SKIPPED,
}


@dataclass
class Ledger:
    """The outcome of a chaos case, message by message."""

    checkins: int = 0
    delivered: int = 0  # seen exactly once, in the right pane
    duplicates: int = 0  # extra copies, copies in a wrong pane, or two rows for one occurrence
    lost: int = 0  # silently gone: no final row, or "verified" but not in the pane
    interrupted: int = 0  # not in the pane, and the journal says so with a reason
    misreported: int = 0  # in the pane, but the journal says failed or skipped
    skipped: int = 0  # not in the pane because its policy said so (skipped with a reason)
    states: Counter[str] = field(default_factory=Counter)
    garbled: list[str] = field(default_factory=list)  # lines that are no whole message

    @property
    def missing(self) -> int:
        """The "lost" column of the summary: not in the pane as the journal says, or not at all."""
        return self.lost + self.misreported + len(self.garbled) + self.interrupted

    @property
    def bad(self) -> int:
        """The counts that must be zero."""
        return self.duplicates + self.lost + self.misreported + len(self.garbled)


def seen_lines(files: dict[str, Path]) -> dict[str, list[str]]:
    """Target -> the lines its receiving pane got so far."""
    return {
        target: (f.read_text(errors="replace").splitlines() if f.exists() else [])
        for target, f in files.items()
    }


def all_final(state: Path, expected: int) -> bool:
    """True once every one of ``expected`` occurrences has a final journal row."""
    with Store.open(state / DB_NAME) as store:
        rows = store.history(limit=expected * 4 + 100)
    return len(rows) >= expected and all(r.state in FINAL for r in rows)


def reconcile(state: Path, files: dict[str, Path], ids: set[int] | None = None) -> Ledger:
    """Compare each one-shot check-in's journal rows with what its pane (and others) received.

    ``ids`` limits the comparison to those check-ins (the others may repeat).
    """
    with Store.open(state / DB_NAME) as store:
        checkins = [c for c in store.list_checkins() if ids is None or c.id in ids]
        rows = store.history(limit=100_000)
    by_checkin: dict[int, list[DeliveryState]] = {}
    reasons: dict[int, str | None] = {}
    for r in rows:
        by_checkin.setdefault(r.checkin_id, []).append(r.state)
        reasons[r.checkin_id] = r.reason
    lines = seen_lines(files)
    messages = {c.message for c in checkins}
    where: dict[str, Counter[str]] = {}
    out = Ledger(checkins=len(checkins))
    for target, got in lines.items():
        for line in got:
            if line in messages:
                where.setdefault(line, Counter())[target] += 1
            elif line.strip():
                out.garbled.append(line)
    for c in checkins:
        states = by_checkin.get(c.id, [])
        places = where.get(c.message, Counter())
        copies = sum(places.values())
        out.duplicates += max(0, copies - 1) + sum(n for t, n in places.items() if t != c.target)
        out.duplicates += max(0, len(states) - 1)
        state = states[0] if states else None
        out.states[str(state) if state else "none"] += 1
        if state is None or state not in FINAL:
            out.lost += 1
        elif copies:
            out.delivered += places[c.target] == copies == 1
            out.misreported += state in (DeliveryState.FAILED, DeliveryState.SKIPPED)
        elif state is DeliveryState.VERIFIED:
            out.lost += 1
        elif state is DeliveryState.SKIPPED and reasons.get(c.id):
            out.skipped += 1
        elif reasons.get(c.id):
            out.interrupted += 1
        else:
            out.lost += 1
    return out
