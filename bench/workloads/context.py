"""What the workloads share: run settings, the host receiver panes, the systemd box, table rows."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from bench.common import Cleanup
from bench.peers import apscheduler, systemd_box
from bench.receivers import HostReceivers

PANES = 100
N = TypeVar("N", int, float)


@dataclass
class Row:
    """One line of the comparison table; values are medians unless the measure says otherwise.

    ``better`` says which way is good, so that a reader of the ratio knows what it means.
    """

    workload: str
    measure: str
    unit: str
    asched: float | None
    apscheduler: float | None = None
    systemd: float | None = None
    floor: float | None = None
    floor_what: str = ""
    better: str = "lower"
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data."""
        return asdict(self)


@dataclass
class Ctx:
    """Shared by every workload of one run. Resources are started on first use and ended at
    cleanup; a peer that cannot run here is recorded in ``skipped`` and its column stays empty."""

    cu: Cleanup
    quick: bool
    skipped: dict[str, str] = field(default_factory=dict)
    floors: dict[str, dict[str, float]] = field(default_factory=dict)
    _recv: HostReceivers | None = None
    _box: systemd_box.SystemdBox | None = None
    _box_failed: bool = False

    def n(self, quick: N, full: N) -> N:
        """A count for this mode."""
        return quick if self.quick else full

    def recv(self) -> HostReceivers:
        """The host's tmux server with :data:`PANES` receiver panes (one for the whole run)."""
        if self._recv is None:
            self._recv = HostReceivers(self.cu, PANES)
        return self._recv

    def aps(self) -> bool:
        """True when the APScheduler peer can run."""
        why = apscheduler.available()
        if why is not None:
            self.skipped["apscheduler"] = why
        return why is None

    def box(self) -> systemd_box.SystemdBox | None:
        """The systemd box (booted on first use), or None when it cannot be booted here."""
        if self._box is None and not self._box_failed:
            why = systemd_box.available()
            if why is None:
                try:
                    self._box = systemd_box.SystemdBox(self.cu)
                except Exception as exc:  # a box that does not boot must not end the run
                    why = f"box failed: {exc}"[:300]
            if why is not None:
                self._box_failed = True
                self.skipped["systemd"] = why
        return self._box

    def box_version(self) -> str | None:
        """The box's systemd version, when a box was booted in this run."""
        return self._box.version if self._box is not None else None

    def floor(self, name: str, stat: str = "p50") -> float | None:
        """A floor figure measured earlier in this run, if any."""
        return self.floors.get(name, {}).get(stat)


def sleep_until(wall: float) -> None:
    """Sleep until the wall clock reads ``wall``."""
    left = wall - time.time()
    if left > 0:
        time.sleep(left)


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(vals) if vals else None


def ms(values: Sequence[float]) -> list[float]:
    """Seconds to milliseconds."""
    return [v * 1000 for v in values]
