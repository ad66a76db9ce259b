"""Markdown (and plain text) tables from a results file of ``python -m bench``.

    python -m bench.report docs/bench/results.json            # print the markdown
    python -m bench.report docs/bench/results.json --write docs/BENCHMARKS.md

``--write`` replaces what lies between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` in
that file, so the prose around the tables stays as written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
HEADERS = [
    "workload",
    "measure",
    "unit",
    "asched",
    "APScheduler",
    "asched ÷ APS",
    "systemd timer",
    "asched ÷ systemd",
    "floor",
]


def num(v: float | None, unit: str = "") -> str:
    """A figure with as many digits as it deserves; a dash for none."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if unit == "count" or float(v).is_integer():
        return f"{v:,.0f}"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` (asched over the peer), or a dash when either is missing or zero."""
    if a is None or b is None or a <= 0 or b <= 0:
        return "-"
    r = a / b
    return f"{r:.2f}" if r < 10 else f"{r:.0f}"


def table_rows(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The comparison table's cells."""
    out = []
    for r in rows:
        floor = num(r.get("floor"), r["unit"])
        if floor != "-" and r.get("floor_what"):
            floor = f"{floor} ({r['floor_what']})"
        measure = r["measure"] + (f" ({r['note']})" if r.get("note") else "")
        if r.get("better") == "higher":
            measure += " [higher is better]"
        out.append(
            [
                r["workload"],
                measure,
                r["unit"],
                num(r.get("asched"), r["unit"]),
                num(r.get("apscheduler"), r["unit"]),
                ratio(r.get("asched"), r.get("apscheduler")),
                num(r.get("systemd"), r["unit"]),
                ratio(r.get("asched"), r.get("systemd")),
                floor,
            ]
        )
    return out


def floor_rows(floor: dict[str, Any]) -> list[list[str]]:
    """The floors table's cells."""
    names = {
        "tmux_paste_one_call": "one tmux client call (load-buffer + paste-buffer): -> readable",
        "tmux_paste_and_enter_two_calls": "two tmux client calls (paste, then Enter): wall",
        "tmux_bare_client": "one bare tmux client (display-message -p): wall",
        "tmux_100_pastes_one_call": "100 pastes in one tmux client: call -> last readable",
        "tmux_control_paste": "one staged guarded paste, control client (tmux -C): -> readable",
        "tmux_control_paste_cold": "the same, tmux idle 0.2 s before (a lead's wait): -> readable",
        "tmux_control_100_pastes": "100 staged guarded pastes, one control-client line: -> last",
        "tmux_control_100_bare": "100 staged pastes, no guard, one control-client line: -> last",
        "receivers_100_direct": "100 receivers written by the bench directly, no tmux: -> last",
        "python_start": "python -c pass: spawn -> exit",
        "asched_version": "asched --version: spawn -> exit",
    }
    out = []
    for key, label in names.items():
        s = floor.get(key) or {}
        out.append(
            [label, str(s.get("n", 0)), num(s.get("p50")), num(s.get("p99")), num(s.get("max"))]
        )
    return out


def _md(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def setup_lines(results: dict[str, Any]) -> list[str]:
    """Where, when and with what the figures were measured (the setups are described in
    docs/BENCHMARKS.md)."""
    m = results["meta"]
    mach = m["machine"]
    git = m["git"]
    dirty = f" + uncommitted changes in {len(git['modified'])} files" if git["modified"] else ""
    v = m["versions"]
    return [
        f"- Run: {m['when']}, `{m['command']}` ({'quick' if m['quick'] else 'full'} mode), "
        f"{m['seconds']:.0f} s, load average {m['loadavg_start'][0]:.2f} at the start and "
        f"{m['loadavg_end'][0]:.2f} at the end; git {git['head']}{dirty}.",
        f"- Machine: {mach['cpu']}, {mach['cpus']} CPUs, {mach['memory_gb']:.0f} GB, "
        f"{mach['os']}, Linux {mach['kernel']}.",
        f"- Versions: asched {v['asched']}, APScheduler {v['apscheduler']}, SQLAlchemy "
        f"{v['sqlalchemy']}, {v.get('systemd_box') or v['systemd']} (in the box), {v['tmux']}, "
        f"Python {m['python']}.",
        "- Ratios are asched ÷ peer, from this run (below 1: asched's figure is the lower one).",
        # A figure replaced after the run (a broken row measured again), said where it shows.
        *(f"- Amended: {note}" for note in m.get("amended", [])),
    ]


def markdown(results: dict[str, Any]) -> str:
    """Setup, the comparison table and the floors, as markdown."""
    parts = ["\n".join(setup_lines(results))]
    parts.append(_md(HEADERS, table_rows(results["rows"])))
    if "floor" in results["workloads"]:
        floors = floor_rows(results["workloads"]["floor"])
        parts.append("Floors (ms):\n\n" + _md(["floor", "n", "p50", "p99", "max"], floors))
    if results.get("skipped"):
        parts.append(
            "Not measured here: " + "; ".join(f"{k}: {v}" for k, v in results["skipped"].items())
        )
    return "\n\n".join(parts) + "\n"


def write_into(doc: Path, text: str) -> None:
    """Replace the marked block of ``doc`` with ``text``."""
    body = doc.read_text(encoding="utf-8")
    if BEGIN not in body or END not in body:
        raise SystemExit(f"{doc}: no {BEGIN} ... {END} block")
    head, rest = body.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{text}{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Print (or write) the markdown of a results file."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--write", type=Path, metavar="DOC", help="replace the marked block in DOC")
    args = ap.parse_args(argv)
    text = markdown(json.loads(args.results.read_text(encoding="utf-8")))
    if args.write:
        write_into(args.write, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
