"""What agents say through their hooks: a prompt received, a turn begun, a turn ended.

Claude Code runs ``asched hook`` on its UserPromptSubmit, Stop, StopFailure and SessionStart
events (``asched hooks install claude``); the command hands each event to the daemon's control
socket with the pane it ran in. The daemon uses them twice:

* **Confirmation.** Before its Enter, a delivery says what text it expects in that pane. A prompt
  event from the pane with that very text confirms the delivery: the agent itself received it,
  which the screen cannot always show (a swallowed Enter, a collapsed paste). An agent that is
  busy queues a prompt and reports it when it takes it, so an expectation is kept for
  :data:`EXPECT_S`.
* **Idleness.** A pane whose agent has reported through its hooks is busy from a prompt until its
  turn ends (Stop, StopFailure), whatever the screen shows: an agent waiting on a slow API
  prints nothing for a while and is not idle.

Everything here is memory only, on the event loop: a restarted daemon learns again from the next
events (until then, panes are judged by their screens, as without hooks).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

KINDS = frozenset({"prompt", "stop", "stop-failure", "session-start"})
EXPECT_S = 3600.0  # how long a delivery's text may wait in a queue to be reported as a prompt
TURN_STALE_S = 1800.0  # a turn "running" this long with no event is not believed any more
_MAX_EXPECTED = 64  # per pane: texts delivered and not yet reported (the oldest go first)


@dataclass(frozen=True, slots=True)
class HookEvent:
    """One event of an agent's hook, as ``asched hook`` passes it on."""

    pane: str  # $TMUX_PANE of the agent
    kind: str  # one of KINDS
    prompt: str | None = None  # the prompt text, for "prompt"
    tmux: str | None = None  # the tmux server's socket, from $TMUX (None: not known)

    @classmethod
    def parse(cls, payload: str) -> HookEvent:
        """The event of one control-socket payload (JSON); ValueError when it is not one."""
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise ValueError("a hook event is a JSON object")
        pane, kind = data.get("pane"), data.get("kind")
        prompt, tmux = data.get("prompt"), data.get("tmux")
        if not isinstance(pane, str) or not pane.startswith("%") or not pane[1:].isdigit():
            raise ValueError(f"bad pane {pane!r}")
        if kind not in KINDS:
            raise ValueError(f"bad kind {kind!r}")
        if prompt is not None and not isinstance(prompt, str):
            raise ValueError("prompt must be text")
        if tmux is not None and not isinstance(tmux, str):
            raise ValueError("tmux must be text")
        return cls(pane, kind, prompt, tmux or None)

    def payload(self) -> str:
        """This event as one line of JSON (the inverse of :meth:`parse`)."""
        data = {"pane": self.pane, "kind": self.kind, "prompt": self.prompt, "tmux": self.tmux}
        return json.dumps({k: v for k, v in data.items() if v is not None}, ensure_ascii=True)


def same_prompt(typed: str, reported: str) -> bool:
    """True when the prompt an agent reported is the text asched typed.

    Compared line by line without trailing blanks and without blank lines at either end: what a
    terminal UI keeps of a paste, and what it reports, may differ in exactly those.
    """
    return _canonical(typed) == _canonical(reported)


def _canonical(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


class HookBook:
    """The hook events of the panes, and the deliveries waiting for their confirmation."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}  # pane -> when it last reported anything
        self._turn_since: dict[str, float] = {}  # pane -> when its running turn began
        self._ended: dict[str, float] = {}  # pane -> when its last turn ended
        self._expected: dict[str, list[tuple[int, str, float]]] = {}

    def hooked(self, pane: str) -> bool:
        """True when the agent in ``pane`` has reported through its hooks (since this start)."""
        return pane in self._seen

    def busy(self, pane: str, idle_s: float) -> bool:
        """For a hooked pane: a turn is running, or one ended less than ``idle_s`` ago."""
        now = self._clock()
        began = self._turn_since.get(pane)
        if began is not None and now - max(began, self._seen.get(pane, began)) < TURN_STALE_S:
            return True
        ended = self._ended.get(pane)
        return ended is not None and now - ended < idle_s

    def expect(self, pane: str, delivery_id: int, text: str) -> None:
        """``delivery_id`` is about to submit ``text`` in ``pane``: a prompt event with the same
        text confirms it."""
        now = self._clock()
        waiting = [e for e in self._expected.get(pane, []) if now - e[2] < EXPECT_S]
        if all(e[0] != delivery_id for e in waiting):
            waiting.append((delivery_id, text, now))
        self._expected[pane] = waiting[-_MAX_EXPECTED:]

    def record(self, event: HookEvent) -> int | None:
        """Take one event; returns the id of the delivery a prompt event confirms, if any."""
        now = self._clock()
        pane = event.pane
        self._seen[pane] = now
        if event.kind == "session-start":
            self._turn_since.pop(pane, None)
            return None
        if event.kind in ("stop", "stop-failure"):
            self._turn_since.pop(pane, None)
            self._ended[pane] = now
            return None
        self._turn_since[pane] = now  # a prompt: the turn that answers it begins
        if event.prompt is None:
            return None
        waiting = self._expected.get(pane, [])
        for n, (delivery_id, text, at) in enumerate(waiting):
            if now - at < EXPECT_S and same_prompt(text, event.prompt):
                del waiting[n]
                return delivery_id
        return None
