"""``asched doctor``: the whole chain a check-in goes through, checked from one command.

Daemon -> state directory and database -> config file -> the tmux server the daemon delivers
to -> each pending check-in's target -> the program in that pane. One line per check, ``ok`` or
``FAIL`` with what is wrong and the fix; exit 0 when all is well, 1 when something is wrong.

It reads, never types and never starts anything: the database is opened as ``asched ls`` opens
it, tmux is asked for one pane listing, /proc is read as the daemon's shell guard reads it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from asched.cli.shared import error_line, open_existing, start_hint, state_dir, tmux_socket
from asched.core.errors import EXIT_OK, EXIT_RUNTIME, AschedError
from asched.core.paths import DB_NAME, check_state_dir, config_file

if TYPE_CHECKING:
    from asched.core.models import CheckIn
    from asched.daemon.config import Config
    from asched.tmux.panes import PaneInfo

Subparsers = argparse._SubParsersAction  # the type add_subparsers() returns

TMUX_TIMEOUT_S = 2.0  # a frozen server is a finding, not a hang

EPILOG = """\
what it checks, in order:
  daemon    a daemon holds this state directory's lock (which pid, which version)
  state     the state directory is private and the database opens (check-ins in it)
  config    the config file the daemon reads is valid (asched config check)
  tmux      the tmux server the daemon delivers to answers
  target    each pending check-in's target names a pane now
  program   that pane runs a program asched types into: not a shell (skipped(shell)),
            and which agent profile matches it (claude, gemini, codex, ... or generic)

examples:
  asched doctor                      the default state directory (or the running daemon's)
  asched doctor --json               {"ok": ..., "checks": [{"check", "ok", "detail", "fix"}]}
  asched doctor --state-dir /var/lib/asched/alice
"""


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: ``fix`` is set when ``ok`` is false."""

    check: str
    ok: bool
    detail: str
    fix: str | None = None

    def line(self) -> str:
        """The finding as one line of text."""
        if self.ok:
            return f"ok    {self.check}: {self.detail}"
        return f"FAIL  {self.check}: {self.detail}; fix: {self.fix}"


def add_doctor(sub: Subparsers[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``doctor``: check the whole chain and say what to fix."""
    p = sub.add_parser(
        "doctor",
        parents=[common],
        help="check daemon, state, config, tmux, targets and panes; say what to fix",
        description="Check everything a check-in needs on its way into a pane and print one"
        " line per check: ok, or FAIL with what is wrong and the fix. Reads only: nothing is"
        " typed or started. Exit 0 when all is well, 1 when something is wrong.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="the daemon's config file (default $ASCHED_CONFIG, else"
        " $XDG_CONFIG_HOME/asched/config.toml)",
    )
    p.add_argument(
        "--tmux-socket",
        metavar="PATH",
        help="the tmux server to check (default: the running daemon's, else"
        " $ASCHED_TMUX_SOCKET, else the tmux this runs in, else tmux's default)",
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(handler=_cmd_doctor)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from asched.cli import lookup  # lazy: asyncio and the tmux client

    state = state_dir(args)
    socket = tmux_socket(args) or lookup.tmux_socket(state, lookup.environ())
    checks = diagnose(state, config_file(args.config), socket)
    ok = all(c.ok for c in checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for c in checks:
            print(error_line(c.line()))  # one line each, whatever a path or a name holds
    if ok:
        return EXIT_OK
    # The one line every failed command writes on stderr, for whoever reads only that.
    bad = sum(1 for c in checks if not c.ok)
    print(
        f"asched: doctor: {bad} of {len(checks)} checks failed (FAIL ...; fix: ...)",
        file=sys.stderr,
    )
    return EXIT_RUNTIME


def diagnose(state: Path, config_path: Path, socket: str | None) -> list[Check]:
    """Every check, in the order of the chain."""
    from asched.daemon import config  # lazy: structlog-free, but only this command needs it

    checks = [daemon_check(state)]
    state_found, pending = state_check(state)
    checks.append(state_found)
    try:
        cfg = config.load(config_path)
        absent = "" if config_path.exists() else " (absent: the defaults)"
        checks.append(Check("config", True, f"{config_path}{absent}"))
    except AschedError as exc:
        cfg = config.Config()
        checks.append(
            Check(
                "config",
                False,
                str(exc),
                f"edit {config_path} (asched config check says the same), then asched reload",
            )
        )
    server = socket or "tmux's default socket"
    panes, problem = list_panes(socket)
    if panes is None:
        checks.append(
            Check(
                "tmux",
                False,
                f"no tmux server answers on {server} ({problem})",
                "start the agents' tmux server there, or point the daemon at theirs"
                " (ASCHED_TMUX_SOCKET in its environment, or asched daemon --tmux-socket PATH)",
            )
        )
        return checks
    checks.append(Check("tmux", True, f"the server on {server} answers ({len(panes)} panes)"))
    checks += target_checks(pending, panes, server, cfg)
    return checks


def daemon_check(state: Path) -> Check:
    """Is a daemon running on ``state``, and which."""
    from asched.daemon.status import probe  # lazy: psutil

    try:
        st = probe(state)
    except AschedError as exc:
        return Check("daemon", False, str(exc), f"check {state} (asched status)")
    if not st.running:
        return Check(
            "daemon",
            False,
            f"none is running on {state}: nothing will be delivered",
            start_hint(state),
        )
    return Check("daemon", True, f"pid {st.pid} (asched {st.version or '?'}) runs on {state}")


def state_check(state: Path) -> tuple[Check, list[CheckIn]]:
    """The state directory and its database; returns the pending check-ins too."""
    db = state / DB_NAME
    try:
        if not state.exists():
            return Check("state", True, f"{state} does not exist yet (nothing scheduled)"), []
    except OSError as exc:  # a name too long, a path through a file
        return Check("state", False, f"cannot look at {state}: {exc.strerror}", "fix the path"), []
    try:
        check_state_dir(state)
        store = open_existing(state)
        if store is None:
            return Check("state", True, f"{db} does not exist yet (nothing scheduled)"), []
        with store:
            checkins = store.list_checkins()
    except AschedError as exc:
        fix = (
            f"move {db} aside (the next write starts a new one), or restore it from a backup"
            if "chmod" not in str(exc)
            else str(exc).rsplit("run: ", 1)[-1]
        )
        return Check("state", False, str(exc), fix), []
    pending = [c for c in checkins if c.next_due is not None]
    paused = sum(1 for c in pending if c.paused)
    return (
        Check(
            "state",
            True,
            f"{db}: {len(checkins)} check-ins, {len(pending)} pending ({paused} paused)",
        ),
        pending,
    )


def list_panes(socket: str | None) -> tuple[list[PaneInfo] | None, str]:
    """Every pane of the server on ``socket``, or None and why not."""
    import asyncio  # lazy, as every import of this command's: the parser loads this module

    from asched.tmux.client import TmuxClient
    from asched.tmux.errors import TmuxError

    async def listing() -> list[PaneInfo]:
        client = TmuxClient(socket, timeout_s=TMUX_TIMEOUT_S, max_calls=1)
        try:
            return await client.list_panes()
        finally:
            client.close()

    try:
        return asyncio.run(listing()), ""
    except TmuxError as exc:
        return None, exc.detail


def target_checks(
    pending: Sequence[CheckIn],
    panes: Sequence[PaneInfo],
    server: str,
    cfg: Config,
) -> list[Check]:
    """One target check per pending target, then one program check per pane they name."""
    from asched.tmux.errors import TargetAmbiguous, TargetMissing, TmuxError
    from asched.tmux.panes import select_pane
    from asched.tmux.targets import parse_target

    by_target: dict[str, list[int]] = {}
    for c in pending:
        by_target.setdefault(c.target, []).append(c.id)
    checks: list[Check] = []
    for target, ids in sorted(by_target.items()):
        which = f"{target} (check-in {', '.join(map(str, ids))})"
        rm = f"asched rm {ids[0]}" if len(ids) == 1 else "asched rm ID"
        try:
            pane = select_pane(parse_target(target), panes)
        except TargetAmbiguous:
            checks.append(
                Check(
                    "target",
                    False,
                    f"{which} names more than one window on {server}",
                    f"rename one window, or aim at session:INDEX ({rm}, then add it again)",
                )
            )
            continue
        except (TargetMissing, TmuxError, AschedError) as exc:
            detail = exc.detail if isinstance(exc, TmuxError) else str(exc)
            checks.append(
                Check(
                    "target",
                    False,
                    f"{which} names no pane on {server} now ({detail})",
                    f"start that session or window before it is due, or {rm}",
                )
            )
            continue
        checks.append(Check("target", True, f"{which} is pane {pane.pane_id}"))
        checks.append(program_check(pane, cfg, rm))
    return checks


def program_check(pane: PaneInfo, cfg: Config, rm: str) -> Check:
    """What reads the pane's keyboard: a shell (would be skipped) or a program, and its
    agent profile."""
    from asched.delivery.profiles import pick
    from asched.tmux.shellguard import DEFAULT_SHELLS, foreground_guard

    shells = frozenset(cfg.delivery.shells) if cfg.delivery.shells is not None else DEFAULT_SHELLS
    fg = foreground_guard(pane, shells)
    names = ", ".join(fg.names) or "?"
    if fg.shell:
        return Check(
            "program",
            False,
            f"pane {pane.pane_id} runs {names}, an interactive shell: deliveries are skipped"
            " (skipped(shell))",
            f"start the agent in pane {pane.pane_id}, or aim the check-in at the agent's pane"
            f" ({rm}, then add it again)",
        )
    if fg.starting:
        return Check("program", True, f"pane {pane.pane_id} is starting its program")
    profile = pick(fg.names, fg.cmdlines, cfg.agents)
    how = (
        "no agent profile (generic: verified when the text leaves the cursor line)"
        if profile.name == "generic"
        else f"agent profile {profile.name}"
    )
    return Check("program", True, f"pane {pane.pane_id} runs {names}: {how}")
