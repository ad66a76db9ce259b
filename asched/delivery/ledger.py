"""What the deliveries under way know of each other: which have not typed yet, when a check-in
was last pasted, when a pane last got a text, and when the staged pastes are due."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

from asched.core.models import Delivery


class Ledger:
    """The engine's bookkeeping across deliveries (one per engine, touched on the loop only)."""

    def __init__(self) -> None:
        # Deliveries that have not pasted yet, by id and counted per check-in (see catching_up).
        self._untyped_ids: dict[int, int] = {}
        self._untyped: Counter[int] = Counter()
        self.last_pasted: dict[int, float] = {}  # check-in id -> when one was last pasted
        self.pane_last: dict[str, float] = {}  # pane id -> when it last got a text (monotonic)
        self.fires: Counter[float] = Counter()  # when the staged deliveries paste

    def hold_untyped(self, delivery: Delivery) -> None:
        """Count ``delivery`` as not typed yet (until :meth:`release_untyped`)."""
        if delivery.id in self._untyped_ids:
            return
        self._untyped_ids[delivery.id] = delivery.checkin_id
        self._untyped[delivery.checkin_id] += 1

    def release_untyped(self, delivery_id: int) -> None:
        """``delivery_id`` has pasted, or ended: it no longer covers a late occurrence."""
        checkin_id = self._untyped_ids.pop(delivery_id, None)
        if checkin_id is not None:
            self._untyped[checkin_id] -= 1
            if self._untyped[checkin_id] <= 0:
                del self._untyped[checkin_id]

    def catching_up(self, checkin_id: int, due_at: datetime) -> bool:
        """True when a late delivery of this check-in already covers the occurrence at ``due_at``.

        The scheduler asks before it claims an occurrence that is late. An older occurrence of
        the same check-in, held up as well (a stopped process, a frozen server, a rate budget, a
        wait for quiet), is the catch-up if it has not typed yet, or if it reached the pane
        (pasted, or submitted) at or after ``due_at``: the pane already holds this very text from
        later than this slot. One stretch of hold-up brings one late delivery, never two.
        """
        if self._untyped[checkin_id] > 0:
            return True
        pasted = self.last_pasted.get(checkin_id)
        return pasted is not None and pasted >= due_at.timestamp()

    def note_typed(self, pane_id: str, min_gap_s: float) -> None:
        """Remember when ``pane_id`` last got a text (deliveries to it keep ``min_gap_s``)."""
        now = time.monotonic()
        self.pane_last[pane_id] = now
        if len(self.pane_last) > 1024:  # forget panes whose gap has long passed
            horizon = now - min_gap_s
            self.pane_last = {k: t for k, t in self.pane_last.items() if t > horizon}
