"""What the agents' hooks say, kept by the daemon: confirmations and turns (logic only).

The real pipeline, from Claude Code's hooks to the journal, is tested in
tests/agents/test_hooks_claude.py and tests/daemon/test_hooks.py.
"""

from __future__ import annotations

import pytest

from asched.delivery.hookbook import EXPECT_S, TURN_STALE_S, HookBook, HookEvent, same_prompt


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_prompt_with_the_typed_text_confirms_that_delivery_once(clock: Clock) -> None:
    book = HookBook(clock)
    book.expect("%3", 7, "check-in: status?\nline two")
    assert book.record(HookEvent("%3", "prompt", "someone else's prompt")) is None
    assert book.record(HookEvent("%3", "prompt", "check-in: status?  \nline two\n")) == 7
    assert book.record(HookEvent("%3", "prompt", "check-in: status?\nline two")) is None


def test_a_prompt_in_another_pane_confirms_nothing(clock: Clock) -> None:
    book = HookBook(clock)
    book.expect("%3", 7, "hello")
    assert book.record(HookEvent("%4", "prompt", "hello")) is None
    assert book.record(HookEvent("%3", "prompt", "hello")) == 7


def test_a_queued_prompt_confirms_within_the_hour_and_not_after(clock: Clock) -> None:
    book = HookBook(clock)
    book.expect("%1", 1, "late one")
    book.expect("%1", 2, "too late")
    clock.now += EXPECT_S - 1
    assert book.record(HookEvent("%1", "prompt", "late one")) == 1
    clock.now += 2
    assert book.record(HookEvent("%1", "prompt", "too late")) is None


def test_a_pane_is_busy_from_a_prompt_until_its_turn_ends_and_idle_s_after(clock: Clock) -> None:
    book = HookBook(clock)
    assert not book.hooked("%2")
    book.record(HookEvent("%2", "session-start"))
    assert book.hooked("%2") and not book.busy("%2", idle_s=5)
    book.record(HookEvent("%2", "prompt", "work"))
    clock.now += 600
    assert book.busy("%2", idle_s=5)  # a long turn, silent on screen: still busy
    book.record(HookEvent("%2", "stop-failure"))
    assert book.busy("%2", idle_s=5)
    clock.now += 5.1
    assert not book.busy("%2", idle_s=5)


def test_a_turn_that_never_reported_its_end_is_not_believed_forever(clock: Clock) -> None:
    book = HookBook(clock)
    book.record(HookEvent("%2", "prompt", "work"))
    clock.now += TURN_STALE_S + 1
    assert not book.busy("%2", idle_s=5)


@pytest.mark.parametrize(
    "payload",
    [
        "[]",
        '{"pane": "3", "kind": "stop"}',
        '{"pane": "%3", "kind": "bogus"}',
        '{"pane": "%3", "kind": "prompt", "prompt": 5}',
        "not json",
    ],
)
def test_a_bad_event_is_refused(payload: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (json's errors and ours alike)
        HookEvent.parse(payload)


def test_an_event_goes_through_its_payload_unchanged() -> None:
    event = HookEvent("%12", "prompt", 'a "quoted"\nprompt ✓', "/tmp/tmux-0/default")
    assert HookEvent.parse(event.payload()) == event
    assert "\n" not in event.payload()


def test_same_prompt_ignores_trailing_blanks_and_blank_edges_only() -> None:
    assert same_prompt("a\nb", "\na  \nb\n")
    assert not same_prompt("a\nb", "a b")
    assert not same_prompt("a", "a!")
