"""The delivery state machine's one definition (asched.core.states), spelled out.

The store's check, the journal DDL and the documentation all derive from it; these tests make a
change to it a conscious one (and tests/test_store.py checks that the DDL it generates is still
the released text).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asched.core.states import (
    CLAIM_STATES,
    FINAL_STATES,
    IN_FLIGHT_STATES,
    PANE_REPLACED,
    SERVER_LOST,
    DeliveryState,
    allowed_next,
    needs_reason,
    transition_table_markdown,
)

S = DeliveryState

# Without a reason that says the text was lost: from -> the states it may move to.
EXPECTED = {
    S.CLAIMED: {S.CLAIMED, S.TYPING, S.FAILED, S.SKIPPED},
    S.TYPING: {S.TYPED, S.UNVERIFIED, S.FAILED, S.SKIPPED},
    S.TYPED: {S.SUBMITTED, S.UNVERIFIED, S.FAILED, S.SKIPPED},
    S.SUBMITTED: {S.SUBMITTED, S.VERIFIED, S.UNVERIFIED, S.FAILED, S.SKIPPED},
    S.VERIFIED: set(),
    S.UNVERIFIED: set(),
    S.FAILED: set(),
    S.SKIPPED: set(),
}


def test_the_states_and_which_are_final() -> None:
    assert [s.value for s in DeliveryState] == [
        "claimed", "typing", "typed", "submitted", "verified", "unverified", "failed", "skipped",
    ]  # fmt: skip
    assert {s for s in DeliveryState if s.final} == FINAL_STATES
    assert {S.VERIFIED, S.UNVERIFIED, S.FAILED, S.SKIPPED} == FINAL_STATES
    assert set(DeliveryState) - FINAL_STATES == IN_FLIGHT_STATES
    assert {S.CLAIMED, S.FAILED, S.SKIPPED} == CLAIM_STATES
    assert {s for s in DeliveryState if needs_reason(s)} == {S.FAILED, S.SKIPPED}


@pytest.mark.parametrize("reason", [None, "timeout", "enter-again", ""])
def test_the_moves_without_a_text_lost_reason(reason: str | None) -> None:
    assert {s: set(allowed_next(s, reason)) for s in DeliveryState} == EXPECTED


@pytest.mark.parametrize("reason", [SERVER_LOST, PANE_REPLACED])
def test_a_lost_text_is_the_one_way_back_to_claimed(reason: str) -> None:
    back = {s: set(allowed_next(s, reason)) - EXPECTED[s] for s in DeliveryState}
    assert back == {s: {S.CLAIMED} if s in (S.TYPING, S.TYPED) else set() for s in DeliveryState}


def test_every_state_can_reach_a_final_one() -> None:
    for start in DeliveryState:
        seen, todo = {start}, [start]
        while todo:
            for nxt in allowed_next(todo.pop(), None) - seen:
                seen.add(nxt)
                todo.append(nxt)
        assert seen & FINAL_STATES, start


def test_the_transition_table_in_markdown() -> None:
    lost = "(only with reason `pane-replaced` or `server-lost`)"
    assert transition_table_markdown() == (
        "| From | Allowed next states |\n"
        "| --- | --- |\n"
        "| `claimed` | `claimed`, `typing`, `failed` (with a reason), `skipped` (with a reason) |\n"
        "| `typing` | `typed`, `unverified`, `failed` (with a reason), `skipped` (with a reason), "
        f"`claimed` {lost} |\n"
        "| `typed` | `submitted`, `unverified`, `failed` (with a reason), "
        f"`skipped` (with a reason), `claimed` {lost} |\n"
        "| `submitted` | `submitted`, `verified`, `unverified`, `failed` (with a reason), "
        "`skipped` (with a reason) |\n"
        "| `verified` | none (final) |\n"
        "| `unverified` | none (final) |\n"
        "| `failed` | none (final) |\n"
        "| `skipped` | none (final) |\n"
    )


def test_the_architecture_doc_shows_the_table_this_module_renders() -> None:
    """docs/ARCHITECTURE.md draws the machine from this module's output, not from memory."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md").read_text()
    begin, end = "<!-- states:begin -->\n", "<!-- states:end -->"
    assert begin in doc and end in doc, "the state table's markers are missing"
    shown = doc.split(begin, 1)[1].split(end, 1)[0]
    assert shown == transition_table_markdown(), (
        "docs/ARCHITECTURE.md's state table differs from asched.core.states: paste the output of "
        "transition_table_markdown() between the markers"
    )
