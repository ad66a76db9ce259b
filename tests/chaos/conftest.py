"""The chaos suite's fixtures and its summary table.

Every case records one row (what it did, how often, and the three counts that must stay zero:
duplicates, lost check-ins, tracebacks) with the ``chaos_report`` fixture. The rows are printed as a
table at the end of the run and, when ``ASCHED_CHAOS_REPORT`` names a file, written there as JSON
(docs/RELIABILITY.md is written from it).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import Spawner, spawner_fixture


@dataclass
class Row:
    """One chaos case's outcome."""

    case: str
    rounds: int
    duplicates: int
    lost: int
    tracebacks: int
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


_ROWS: list[Row] = []


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> Iterator[Callable[..., Row]]:
    """``record(case, rounds, duplicates=, lost=, tracebacks=, **figures)`` adds this test's row."""
    started = time.monotonic()
    rows: list[Row] = []

    def record(
        case: str, rounds: int, *, duplicates: int, lost: int, tracebacks: int, **figures: Any
    ) -> Row:
        row = Row(case, rounds, duplicates, lost, tracebacks, figures)
        rows.append(row)
        return row

    yield record
    for row in rows:
        row.seconds = round(time.monotonic() - started, 1)
        _ROWS.append(row)


@pytest.fixture
def uv_spawner(short_tmp: Path) -> Iterator[Spawner]:
    """Daemons on uvloop (the production default), ended by pid at teardown."""
    yield from spawner_fixture(short_tmp, "uvloop")


def tracebacks(spawner: Spawner) -> int:
    """How many tracebacks the daemons of ``spawner`` wrote (plain or inside a JSON log line)."""
    return sum(
        line.count("Traceback (most recent call last)")
        for d in spawner.procs
        for line in d.log_lines()
    )


def _fmt(figures: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in figures.items())


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the table of the cases that ran (and write the JSON report when asked)."""
    if not _ROWS:
        return
    tr = terminalreporter
    tr.section("chaos summary")
    head = ("case", "rounds", "dup", "lost", "tb", "s", "figures")
    rows = [
        (
            r.case,
            str(r.rounds),
            str(r.duplicates),
            str(r.lost),
            str(r.tracebacks),
            f"{r.seconds:.0f}",
            _fmt(r.figures),
        )
        for r in _ROWS
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head[:-1])]
    line = "  ".join(h.ljust(w) for h, w in zip(head[:-1], widths, strict=True)) + "  " + head[-1]
    tr.write_line(line)
    for row in rows:
        cells = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True))
        tr.write_line(f"{cells}  {row[-1]}")
    bad = sum(r.duplicates + r.lost + r.tracebacks for r in _ROWS)
    tr.write_line(f"total: {len(_ROWS)} cases, duplicates+lost+tracebacks = {bad}")
    out = os.environ.get("ASCHED_CHAOS_REPORT")
    if out:
        report = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "kernel": platform.release(),
            },
            "rows": [asdict(r) for r in _ROWS],
        }
        Path(out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        tr.write_line(f"written: {out}")
