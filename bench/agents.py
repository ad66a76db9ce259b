"""Due -> submitted into the real agent UIs (Claude Code, Gemini CLI), at asched's default settings.

    python -m bench.agents [--n N] [--sweep TRIES] [--json PATH]

One daemon (default config: settle 0.5 s, the built-in agent profiles) delivers N one-shot
check-ins to each agent, 2 s apart, into real panes (the UIs pinned in tests/agents/package.json,
offline, talking to a loopback API that hangs up). "Submitted" is the moment the agent itself
recorded the prompt (Claude Code's session transcript, Gemini CLI's logs.json: millisecond
stamps), so the figure is due -> the agent has the prompt, settle and Enter included.

Per agent: p50 / p99 / max of due -> submitted, the share submitted exactly once, and the share
whose journal verdict equals the truth (``verified`` exactly when submitted). Everything
started (the tmux server with the agents, the daemon) is ended by pid or ``kill-server``.

``--sweep TRIES`` measures the settle floor behind each profile's ``min_settle_s``: a six-line
check-in with settles of 0 to 0.1 s and *one* Enter allowed (no recovery), TRIES times each:
how many the first Enter submitted (the truth from the agent's own log).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asched.cli.send import send_now
from asched.core.logs import configure as configure_logs
from asched.core.models import NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.core.states import DeliveryState
from asched.delivery.profiles import BUILTIN
from asched.delivery.settings import DeliverySettings
from asched.store.store import Store
from tests.agents import uis
from tests.agents.fakeapi import FakeApi
from tests.support.daemons import Spawner
from tests.support.stats import percentile
from tests.support.tmux import Server

SPACING_S = 2.0
SWEEP_S = (0.0, 0.02, 0.05, 0.1)
SIX_LINES = "asched settle sweep {n}\nline 2\nline 3\nline 4\nline 5\nline 6"


def run(n: int) -> dict[str, Any]:
    """Deliver ``n`` check-ins to each agent; returns the figures per agent."""
    why = uis.missing()
    if why:
        raise SystemExit("bench.agents: " + "; ".join(why) + " (./dev test installs them)")
    root = Path(tempfile.mkdtemp(prefix="asched-ba-"))
    api, server, spawner = FakeApi(), Server(root), Spawner(root, "uvloop")
    agents: dict[str, uis.Agent] = {}
    try:
        for kind in uis.KINDS:
            agents[kind] = uis.start(server, root, kind, api.url, kind)
        state = root / "state"
        state.mkdir(mode=0o700)
        start = datetime.now(UTC) + timedelta(seconds=4)
        due: dict[str, datetime] = {}
        news = []
        for i in range(n):
            for k, (kind, agent) in enumerate(agents.items()):
                message = f"asched bench check-in {kind} {i:03d}"
                at = start + timedelta(seconds=SPACING_S * i + 0.5 * k)
                due[message] = at
                news.append(
                    NewCheckIn(target=agent.pane, message=message, rule=Once(at), next_due=at)
                )
        with Store.open(state / DB_NAME) as store:
            store.add_many(news)
        daemon = spawner.spawn(state, extra=["--tmux-socket", server.sock])
        daemon.notify.wait_for("READY", "1", timeout=30)
        time.sleep(max(0.0, (max(due.values()) - datetime.now(UTC)).total_seconds()) + 3.0)
        for agent in agents.values():
            agent.settled(quiet_s=3.0, timeout=60)
        with Store.open(state / DB_NAME) as store:
            rows = store.history(limit=10 * n + 10)
            verdicts = {}
            for row in rows:
                checkin = store.get_checkin(row.checkin_id)
                if checkin is not None:
                    verdicts[checkin.message] = row.state
        return {kind: _figures(kind, agent, due, verdicts) for kind, agent in agents.items()}
    finally:
        spawner.cleanup()
        for agent in agents.values():
            agent.stop()
        server.kill()
        api.close()
        shutil.rmtree(root, ignore_errors=True)


def sweep(tries: int) -> dict[str, dict[str, Any]]:
    """For each agent and settle: the share of six-line check-ins the first Enter submitted,
    and how many verdicts differed from the truth (``lies``: must be 0)."""
    why = uis.missing()
    if why:
        raise SystemExit("bench.agents: " + "; ".join(why) + " (./dev test installs them)")
    root = Path(tempfile.mkdtemp(prefix="asched-bs-"))
    api, server = FakeApi(), Server(root)
    stops: list[Callable[[], None]] = []
    try:
        out: dict[str, dict[str, Any]] = {}
        for kind in uis.KINDS:
            agent = uis.start(server, root, kind, api.url, kind)
            stops.append(agent.stop)
            one = tuple(replace(p, enters=1) if p.name == kind else p for p in BUILTIN)
            out[kind] = {"lies": 0}
            for settle in SWEEP_S:
                settings = DeliverySettings(settle_s=settle, profiles=one)
                results = [_first_enter(agent, root, settings, n) for n in range(tries)]
                out[kind][f"{settle:g}"] = sum(hit for hit, _ in results) / tries
                out[kind]["lies"] += sum(not true for _, true in results)
        return out
    finally:
        for stop in stops:
            stop()
        server.kill()
        api.close()
        shutil.rmtree(root, ignore_errors=True)


def _first_enter(
    agent: uis.Agent, root: Path, settings: DeliverySettings, n: int
) -> tuple[bool, bool]:
    """One delivery with one Enter: (the agent recorded it, asched's verdict says so too).
    Clears a stuck one."""
    state = root / "sweep-state"
    state.mkdir(mode=0o700, exist_ok=True)
    before = len(agent.prompts())
    text = SIX_LINES.format(n=n)
    row = asyncio.run(
        send_now(state, agent.pane, text, tmux_socket=agent.server.sock, settings=settings)
    )
    submitted = len(agent.settled(quiet_s=1.0)) > before
    if not submitted:
        agent.server.tmux("send-keys", "-t", agent.pane, "C-c")
        time.sleep(2.5)  # past "press Ctrl-C again to exit"
    return submitted, submitted == (row.state is DeliveryState.VERIFIED)


def _figures(
    kind: str, agent: uis.Agent, due: dict[str, datetime], verdicts: dict[str, DeliveryState]
) -> dict[str, Any]:
    records = agent.records()
    mine = {m: at for m, at in due.items() if f" {kind} " in m}
    latencies, once, truthful = [], 0, 0
    for message, at in mine.items():
        seen = [t for t, text in records if text.strip() == message]
        if len(seen) == 1:
            once += 1
            latencies.append((seen[0] - at.timestamp()) * 1000)
        verified = verdicts.get(message) is DeliveryState.VERIFIED
        truthful += verified == (len(seen) == 1)
    return {
        "n": len(mine),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "submitted_once": once / len(mine),
        "verdict_true": truthful / len(mine),
        "extra_prompts": len(records) - once,
    }


def main(argv: list[str] | None = None) -> int:
    """Run and print the table (and JSON with --json)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.agents", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--n", type=int, default=20, help="check-ins per agent (default 20)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument(
        "--sweep", type=int, metavar="TRIES", help="also the settle sweep, TRIES per settle"
    )
    args = parser.parse_args(argv)
    configure_logs("warning")  # the sweep's in-process deliveries: only trouble on stderr
    figures: dict[str, Any] = run(args.n)
    print(
        f"{'agent':8} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'once':>6} {'truth':>6}"
    )
    for kind, f in figures.items():
        print(
            f"{kind:8} {f['n']:>4} {f['p50_ms']:>8} {f['p99_ms']:>8} {f['max_ms']!s:>8}"
            f" {f['submitted_once']:>6.0%} {f['verdict_true']:>6.0%}"
        )
    if args.sweep:
        swept = sweep(args.sweep)
        print(f"\nfirst Enter submitted a six-line check-in, {args.sweep} tries per settle:")
        print(f"{'agent':8} " + " ".join(f"{s:>7g}s" for s in SWEEP_S) + "  verdict != truth")
        for kind, row in swept.items():
            shares = " ".join(f"{row[f'{s:g}']:>8.0%}" for s in SWEEP_S)
            print(f"{kind:8} {shares}  {row['lies']}")
        figures["sweep"] = swept
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
