"""Due -> submitted into the real agent UIs (Claude Code, Gemini CLI), at asched's default settings.

    python -m bench.agents [--n N] [--json PATH]

One daemon (default config: settle 0.5 s, the built-in agent profiles) delivers N one-shot
check-ins to each agent, 2 s apart, into real panes (the UIs pinned in tests/agents/package.json,
offline, talking to a loopback API that hangs up). "Submitted" is the moment the agent itself
recorded the prompt (Claude Code's session transcript, Gemini CLI's logs.json: millisecond
stamps), so the figure is due -> the agent has the prompt, settle and Enter included.

Per agent: p50 / p99 / max of due -> submitted, the share submitted exactly once, and the share
whose journal verdict equals the truth (``verified`` exactly when submitted). Everything
started (the tmux server with the agents, the daemon) is ended by pid or ``kill-server``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asched.models import DeliveryState, NewCheckIn, Once
from asched.paths import DB_NAME
from asched.store import Store
from bench.common import percentile
from tests.agents import uis
from tests.agents.fakeapi import FakeApi
from tests.harness import Spawner
from tests.tmuxsrv import Server

SPACING_S = 2.0


def run(n: int) -> dict[str, Any]:
    """Deliver ``n`` check-ins to each agent; returns the figures per agent."""
    why = uis.missing()
    if why:
        raise SystemExit("bench.agents: " + "; ".join(why) + " (./dev test installs them)")
    root = Path(tempfile.mkdtemp(prefix="asched-ba-"))
    api, server, spawner = FakeApi(), Server(root), Spawner(root, "uvloop")
    try:
        agents = {kind: uis.start(server, root, kind, api.url, kind) for kind in uis.KINDS}
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
        server.kill()
        api.close()
        shutil.rmtree(root, ignore_errors=True)


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
    args = parser.parse_args(argv)
    figures = run(args.n)
    print(
        f"{'agent':8} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'once':>6} {'truth':>6}"
    )
    for kind, f in figures.items():
        print(
            f"{kind:8} {f['n']:>4} {f['p50_ms']:>8} {f['p99_ms']:>8} {f['max_ms']!s:>8}"
            f" {f['submitted_once']:>6.0%} {f['verdict_true']:>6.0%}"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
