"""The latency plot: distributions of due -> pasted per peer, with the physical floor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {
    "asched": "#1b7837",
    "APScheduler 3": "#b2182b",
    "systemd timer": "#2166ac",
    "floor": "#777777",
}


def _ecdf(
    ax: Any, values: list[float], label: str, dashed: bool = False, total: int | None = None
) -> None:
    """A step curve of the fraction of ``total`` (default: of the values) at or below x."""
    xs = sorted(v for v in values if v is not None and v > 0)
    if not xs:
        return
    ys = [(i + 1) / (total or len(xs)) for i in range(len(xs))]
    ax.step(
        xs,
        ys,
        where="post",
        label=f"{label} (n={len(xs)})",
        color=COLORS.get(label.split(":")[0], "#777777"),
        linestyle="--" if dashed else "-",
    )


def _fanout_samples(rounds: list[dict[str, Any]]) -> tuple[list[float], int]:
    """Each message's due -> pasted of the 100-message rounds, and how many were sent."""
    sent = [r for r in rounds if r.get("n") == 100]
    return [x for r in sent for x in r.get("each_ms", [])], sum(r["n"] for r in sent)


def draw(results: dict[str, Any], path: Path) -> bool:
    """Write the PNG; False (and nothing written) when matplotlib is missing or no data."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    except ImportError:
        return False
    wl = results.get("workloads", {})
    lat, fan = wl.get("latency") or {}, wl.get("fanout") or {}
    if "asched" not in lat and "rounds" not in fan:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    left.set_title("Single check-in: due -> text readable in the pane", fontsize=10)
    for key, label in (
        ("asched", "asched"),
        ("apscheduler", "APScheduler 3"),
        ("systemd_1us", "systemd timer"),
    ):
        _ecdf(left, (lat.get(key) or {}).get("samples", []), label)
    _ecdf(left, (lat.get("floor") or {}).get("samples", []), "floor: one tmux call at due", True)
    right.set_title("100 due at once in 100 panes: due -> each one pasted", fontsize=10)
    rounds = fan.get("rounds", {})
    for key, label in (
        ("asched", "asched"),
        ("apscheduler", "APScheduler 3"),
        ("systemd", "systemd timer"),
    ):
        samples, sent = _fanout_samples(rounds.get(key, []))
        _ecdf(right, samples, label, total=sent)
    fl = (wl.get("floor") or {}).get("tmux_100_pastes_one_call", {}).get("p50")
    if fl:
        right.axvline(fl, color=COLORS["floor"], linestyle="--",
                      label=f"floor: 100 pastes in one tmux call ({fl:.0f} ms)")  # fmt: skip
    for ax in (left, right):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("ms after the due time (log scale)")
        ax.set_ylabel("fraction of messages")
        ax.set_ylim(0, 1.02)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    meta = results.get("meta", {})
    mode = "quick" if meta.get("quick") else "full"
    cpus = meta.get("machine", {}).get("cpus")
    fig.suptitle(
        f"asched vs APScheduler 3 vs systemd timers: {meta.get('when', '')}, {mode} run, "
        f"{cpus} CPUs (right: a curve that ends below 1 lost messages)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
