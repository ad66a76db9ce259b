"""The delivery journal's state machine, defined once: the states, which are final, the legal moves.

Everything else derives from this module: the store's transition check
(:meth:`asched.store.journal.DeliveryJournal.transition`), the CHECK constraints, trigger and
partial index of the ``deliveries`` table (:mod:`asched.store.schema` generates their SQL from the
sets below), and the table in the documentation (:func:`transition_table_markdown`).

A new state is a schema change: the DDL of a released schema is frozen, so the generated CHECK
text would no longer match a database that exists, and it needs a migration step (tests compare
the generated text with the released one, so that this cannot happen by accident).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

# The reasons that alone let a delivery go back from typing/typed to claimed: before the Enter,
# the tmux server went away, or the pane got another program, and the typed text with either
# (asched/delivery, asched/store/journal.py).
SERVER_LOST: Final = "server-lost"
PANE_REPLACED: Final = "pane-replaced"
TEXT_LOST: Final = frozenset({SERVER_LOST, PANE_REPLACED})


class DeliveryState(enum.StrEnum):
    """The delivery journal's state machine (drawn in docs/ARCHITECTURE.md)."""

    CLAIMED = "claimed"
    TYPING = "typing"
    TYPED = "typed"
    SUBMITTED = "submitted"
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def final(self) -> bool:
        """True when no further transition may follow."""
        return self in FINAL_STATES


FINAL_STATES: Final = frozenset(
    {DeliveryState.VERIFIED, DeliveryState.UNVERIFIED, DeliveryState.FAILED, DeliveryState.SKIPPED}
)
"""States a delivery ends in; the journal never rewrites them."""

IN_FLIGHT_STATES: Final = frozenset(s for s in DeliveryState if s not in FINAL_STATES)
"""The states that are not final: a delivery under way (what crash recovery looks at)."""

# Legal moves of the delivery state machine. Staying in CLAIMED is allowed to record a failed
# attempt before typing (retried with backoff). TYPING/TYPED may end UNVERIFIED: after a crash the
# pane may not tell whether the text went through, and "unknown" must never lead to a re-type.
NEXT: Final[Mapping[DeliveryState, frozenset[DeliveryState]]] = {
    DeliveryState.CLAIMED: frozenset({DeliveryState.CLAIMED, DeliveryState.TYPING}),
    DeliveryState.TYPING: frozenset({DeliveryState.TYPED, DeliveryState.UNVERIFIED}),
    DeliveryState.TYPED: frozenset({DeliveryState.SUBMITTED, DeliveryState.UNVERIFIED}),
    # submitted -> submitted: one more Enter for a swallowed one (reason "enter-again").
    DeliveryState.SUBMITTED: frozenset(
        {DeliveryState.SUBMITTED, DeliveryState.VERIFIED, DeliveryState.UNVERIFIED}
    ),
}
# Reachable from any state that is not final, and only with a reason (the journal says why).
ABORT_STATES: Final = frozenset({DeliveryState.FAILED, DeliveryState.SKIPPED})
# The one way back: typing or typed -> claimed, and only with a TEXT_LOST reason, when the tmux
# server or the pane's program went away before the Enter and took the text along
# (asched/delivery/pasting.py).
BACK_TO_CLAIMED: Final = frozenset({DeliveryState.TYPING, DeliveryState.TYPED})
# The states a journal row is born in: claimed to deliver, or at once skipped/failed (a misfire
# past grace, a gone target).
CLAIM_STATES: Final = frozenset({DeliveryState.CLAIMED, *ABORT_STATES})


def needs_reason(state: DeliveryState) -> bool:
    """True when a delivery may enter ``state`` only with a reason (failed, skipped)."""
    return state in ABORT_STATES


def allowed_next(current: DeliveryState, reason: str | None) -> frozenset[DeliveryState]:
    """The states a delivery in ``current`` may move to, given the move's ``reason``.

    Nothing after a final state; failed and skipped after any other one (their reason is checked
    apart, see :func:`needs_reason`); back to claimed from typing/typed only with a
    :data:`TEXT_LOST` reason.
    """
    allowed = NEXT.get(current, frozenset()) | (frozenset() if current.final else ABORT_STATES)
    if current in BACK_TO_CLAIMED and reason in TEXT_LOST:
        allowed |= {DeliveryState.CLAIMED}
    return allowed


def in_order(states: frozenset[DeliveryState]) -> tuple[DeliveryState, ...]:
    """``states`` in declaration order (the order a delivery goes through them): stable output."""
    return tuple(s for s in DeliveryState if s in states)


def transition_table_markdown() -> str:
    """The transition table as a Markdown table: one row per state, the states it may move to.

    For the documentation, which a test keeps equal to this output.
    """
    lost = " or ".join(f"`{r}`" for r in sorted(TEXT_LOST))
    rows = ["| From | Allowed next states |", "| --- | --- |"]
    for state in DeliveryState:
        always = allowed_next(state, None)
        cells = []
        for nxt in in_order(always):
            cells.append(f"`{nxt}` (with a reason)" if needs_reason(nxt) else f"`{nxt}`")
        # The moves that only a TEXT_LOST reason opens (typing/typed -> claimed).
        only_lost = frozenset(n for r in TEXT_LOST for n in allowed_next(state, r)) - always
        cells += [f"`{n}` (only with reason {lost})" for n in in_order(only_lost)]
        rows.append(f"| `{state}` | {', '.join(cells) or 'none (final)'} |")
    return "\n".join(rows) + "\n"
