"""How a delivery's outcome is logged: a level that means something, and a recurring skip said once.

``journalctl -p warning`` must show every delivery that did not reach its agent, and nothing a
person can leave alone; and a check-in that meets the same refusal on every occurrence (a pane
left at a shell prompt, checked every 2 s) must not fill the info log. The events, whose names
are stable (dashboards, benchmarks and filters use them):

``checkin.delivered`` (info)
    The text was typed and seen taken: ``verified``.
``checkin.outcome`` (warning)
    ``failed(reason)``: nothing was typed and nothing will be. ``unverified``: typed, but the
    look after the Enter could not tell whether the agent took it; asched never types a text
    twice, so a person may have to look at that pane.
``checkin.outcome`` (info)
    ``skipped(reason)``: asched chose not to type (a shell in the pane, a busy agent, missed).
    Only the first of a run: the same check-in skipped again for the same reason is logged at
    debug, with ``repeat`` (how many in the run so far).
``checkin.skipped_again`` (info)
    A run of one skip goes on: ``count`` skips since the last line about it, ``total`` in the
    run, ``since`` when the run began. At most one every :data:`SUMMARY_S` per check-in (written
    when a skip comes after that long), and one last with ``ended=true`` when the run ends: a
    different outcome of that check-in (logged right after it), or no skip for
    :data:`STALE_S` (a check-in removed or changed).

While a check-in is in such a run, the scheduler logs its claims at debug too
(:meth:`OutcomeLog.repeating`): otherwise ``checkin.claimed`` would flood in the skips' place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asched.core.logs import get_logger
from asched.core.states import DeliveryState

log = get_logger()

SUMMARY_S = 600.0
"""A run of the same skip gets a ``checkin.skipped_again`` line at most this often (10 min)."""
STALE_S = 3600.0
"""A run with no skip for this long is closed (its count written), and forgotten."""

_LEVELS = {
    DeliveryState.VERIFIED: "info",
    DeliveryState.FAILED: "warning",
    # Typed but not seen taken, and never typed again: the agent may not have it. A person has
    # something to check, which is what a warning is for.
    DeliveryState.UNVERIFIED: "warning",
    DeliveryState.SKIPPED: "info",
}


@dataclass(slots=True)
class _Run:
    """One check-in skipped again and again for one reason."""

    reason: str | None
    target: str
    since: datetime
    last_line: float  # monotonic: when the run was last written about
    last_seen: float  # monotonic: the latest skip
    total: int = 1
    count: int = 0  # skips since the last line


class OutcomeLog:
    """Writes ``checkin.delivered``, ``checkin.outcome`` and ``checkin.skipped_again`` (see the
    module); one per engine, so that runs are followed across deliveries."""

    def __init__(
        self,
        summary_s: float = SUMMARY_S,
        stale_s: float = STALE_S,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.summary_s = summary_s
        self.stale_s = stale_s
        self._mono = mono
        self._runs: dict[int, _Run] = {}
        # Set by a caller that reports the outcome itself (asched send prints it on stdout).
        self.quiet = False

    def repeating(self, checkin_id: int) -> bool:
        """True while this check-in's latest outcomes are the same skip: its claims are noise."""
        return checkin_id in self._runs

    def record(
        self,
        checkin_id: int,
        target: str,
        state: DeliveryState,
        reason: str | None,
        **fields: Any,
    ) -> None:
        """Log one delivery's outcome; ``fields`` go onto the line as they are."""
        if self.quiet:
            return
        now = self._mono()
        self._close_stale(now)
        line = {"checkin_id": checkin_id, "target": target, "state": str(state), "reason": reason}
        line.update(fields)
        run = self._runs.get(checkin_id)
        if state is DeliveryState.SKIPPED and run is not None and run.reason == reason:
            run.total += 1
            run.count += 1
            run.last_seen = now
            log.debug("checkin.outcome", repeat=run.total, **line)
            if now - run.last_line >= self.summary_s:
                self._summary(checkin_id, run, now, ended=False)
            return
        if run is not None:
            del self._runs[checkin_id]
        event = "checkin.delivered" if state is DeliveryState.VERIFIED else "checkin.outcome"
        getattr(log, _LEVELS.get(state, "info"))(event, **line)
        if run is not None:
            # After the line of what ended it, so the run's end reads "then this happened".
            self._summary(checkin_id, run, now, ended=True)
        if state is DeliveryState.SKIPPED:
            self._runs[checkin_id] = _Run(reason, target, datetime.now(UTC), now, now)

    def _summary(self, checkin_id: int, run: _Run, now: float, *, ended: bool) -> None:
        if run.count or not ended:
            log.info(
                "checkin.skipped_again",
                checkin_id=checkin_id,
                target=run.target,
                reason=run.reason,
                count=run.count,
                total=run.total,
                since=run.since.isoformat(),
                ended=ended,
            )
        run.count = 0
        run.last_line = now

    def _close_stale(self, now: float) -> None:
        stale = [i for i, r in self._runs.items() if now - r.last_seen >= self.stale_s]
        for checkin_id in stale:
            self._summary(checkin_id, self._runs.pop(checkin_id), now, ended=True)
