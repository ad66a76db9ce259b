"""A box (tests/support/nspawn.py) set up for asched, and driving asched@USER.service, tmux and
the asched CLI inside it; every wait is bounded."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asched.install.units import render
from tests.support.nspawn import Box, BoxError, cleanup_orphans
from tests.support.stats import percentile

PROJECT = Path(__file__).resolve().parents[2]

USER = "asched-t"
UNIT = f"asched@{USER}.service"
STATE = f"/var/lib/asched/{USER}"
HOME = f"/home/{USER}"
RECV = f"{HOME}/recv"
TMUX_UNIT = "asched-tmux.service"
TMUX_SOCKET = f"/tmp/asched-tmux-{USER}/sock"
DROPIN_DIR = f"/etc/systemd/system/{UNIT}.d"
UNIT_STOPPING = "de5b426a63be47a7b6ac3eaac82e2f6f"  # sd-messages.h: SD_MESSAGE_UNIT_STOPPING
UNIT_STARTED = "39f53479d3a045ac8e11786248231fbf"  # SD_MESSAGE_UNIT_STARTED (after READY=1)
FINAL = {"verified", "unverified", "failed", "skipped"}


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)


def latency_summary(values: Sequence[float]) -> str:
    """``n=.. p50=.. p99=.. max=..`` in seconds."""
    return (
        f"n={len(values)} p50={statistics.median(values):.3f}s"
        f" p99={percentile(values, 99):.3f}s max={max(values):.3f}s"
    )


def _binds(python: str) -> list[str]:
    """Host paths the box needs read-only: the project, the venv and the base interpreter.
    The host's root filesystem is the box's lower layer already; these may live elsewhere."""
    wanted = [PROJECT, Path(sys.prefix), Path(sys.base_prefix), Path(python).parent]
    if (Path(python).parent.parent / "pyvenv.cfg").exists():  # another venv: all of it
        wanted.append(Path(python).parent.parent)
    roots: list[Path] = []
    for p in sorted({Path(os.path.realpath(x)) for x in wanted}, key=lambda p: len(p.parts)):
        if p != Path("/") and not any(p.is_relative_to(r) for r in roots):
            roots.append(p)
    return [str(r) for r in roots]


def _traversable(paths: list[str]) -> list[str]:
    """Ancestors of ``paths`` that others cannot enter (e.g. /root, 0700): the service's user
    must reach the interpreter. Opened inside the box only, where writes are throw-away."""
    closed: list[str] = []
    for p in paths:
        for parent in Path(p).parents:
            if parent != Path("/") and not os.stat(parent).st_mode & 0o001:
                closed.append(str(parent))
    return sorted(set(closed))


def new_box(python: str) -> Box:
    """A box, not booted yet, with the project, the venv and the base interpreter bound in
    read-only. Boxes left by a SIGKILLed run, whose creator is gone, are torn down first."""
    cleanup_orphans()
    # The project is bound read-only: compile its bytecode here, or every start recompiles.
    # Best effort: a module that does not compile fails the tests that start the daemon.
    subprocess.run(
        [python, "-m", "compileall", "-q", str(PROJECT / "asched")],
        check=False,
        timeout=120,
        stdout=subprocess.DEVNULL,
    )
    return Box(binds_ro=_binds(python))


def add_user(box: Box, python: str) -> None:
    """In a booted box: the service's user :data:`USER`, able to reach ``python``."""
    box.run(["useradd", "--create-home", "--user-group", "--shell", "/bin/sh", USER])
    for d in _traversable([*box.binds_ro, os.path.realpath(python)]):
        box.run(["chmod", "o+x", d])


@dataclass
class Svc:
    """asched@USER.service in one box, and the tools the tests use around it."""

    box: Box
    python: str

    # -- systemd ---------------------------------------------------------------------------------

    def install(self) -> None:
        """Write asched@.service, rendered for this interpreter, into the box (not reloaded)."""
        self.box.write(
            "/etc/systemd/system/asched@.service", render("asched@.service", self.python)
        )

    def systemctl(
        self, *args: str, check: bool = True, timeout: float = 60.0
    ) -> tuple[int, str, float]:
        """Run systemctl inside; returns (exit status, output, seconds it took)."""
        t0 = time.monotonic()
        r = self.box.run(["systemctl", *args], check=False, timeout=timeout)
        took = time.monotonic() - t0
        if check and r.returncode != 0:
            raise BoxError(f"systemctl {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
        return r.returncode, (r.stdout + r.stderr).strip(), took

    def show(self, *props: str, unit: str = UNIT) -> dict[str, str]:
        """``systemctl show -p ...`` as a dict."""
        _, out, _ = self.systemctl("show", unit, *(f"--property={p}" for p in props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def dropin(self, name: str, text: str) -> None:
        """Add a drop-in to the unit and reload."""
        self.box.write(f"{DROPIN_DIR}/{name}.conf", text)
        self.systemctl("daemon-reload")

    def exec_start_dropin(self, *daemon_args: str, script: Path | None = None) -> None:
        """Replace ExecStart with the same command plus ``daemon_args`` (``script``: a test
        script that runs asched's command line, instead of ``-m asched``)."""
        run = [str(script)] if script is not None else ["-m", "asched"]
        cmd = " ".join([self.python, "-P", *run, "--daemon", *daemon_args])
        self.dropin("exec", f"[Service]\nExecStart=\nExecStart={cmd}\n")

    def main_pid(self) -> int:
        return int(self.show("MainPID")["MainPID"])

    def invocation(self) -> str:
        return self.show("InvocationID")["InvocationID"]

    # -- the journal -----------------------------------------------------------------------------

    def journal_lines(self, *matches: str, priority: str | None = None) -> list[str]:
        """``journalctl -o cat`` for ``matches`` (default: what the unit's processes logged)."""
        argv = ["journalctl", "--no-pager", "-o", "cat", *(matches or (f"_SYSTEMD_UNIT={UNIT}",))]
        if priority:
            argv += ["-p", priority]
        return self.box.run(argv, timeout=30).stdout.splitlines()

    def journal_json(self, *matches: str, priority: str | None = None) -> list[dict[str, Any]]:
        """``journalctl -o json`` entries for ``matches``."""
        argv = ["journalctl", "--no-pager", "-o", "json", "--all", *matches]
        if priority:
            argv += ["-p", priority]
        out = self.box.run(argv, timeout=30).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def restart_times(self, since: float, count: int) -> list[float]:
        """Seconds from each "Stopping" of the unit to the "Started" that followed it (READY=1),
        as systemd logged them: the restart-to-READY time without any client overhead. Only
        restarts after ``since`` (a ``time.monotonic()`` reading: the box shares the host's
        CLOCK_MONOTONIC); waits (bounded) until ``count`` of them are in the journal."""

        def pairs() -> list[float] | None:
            times, stopping = [], None
            for e in self.journal_json("_PID=1", f"UNIT={UNIT}"):
                at = int(e["__MONOTONIC_TIMESTAMP"])
                if e.get("MESSAGE_ID") == UNIT_STOPPING and at >= since * 1e6:
                    stopping = at
                elif e.get("MESSAGE_ID") == UNIT_STARTED and stopping is not None:
                    times.append((at - stopping) / 1e6)
                    stopping = None
            return times if len(times) >= count else None

        found: list[float] = wait_for(f"{count} restarts in the journal", pairs, 10, 0.2)
        return found

    def events(self, *matches: str) -> list[dict[str, Any]]:
        """The daemon's JSON log records (default: every one the unit's processes logged)."""
        records = []
        for line in self.journal_lines(*matches):
            records.append(json.loads(line))
        return records

    def wait_event(self, event: str, timeout: float = 10.0, *matches: str) -> dict[str, Any]:
        """The first record named ``event`` (journald may need a moment to show it)."""

        def find() -> dict[str, Any] | None:
            return next((e for e in self.events(*matches) if e.get("event") == event), None)

        found: dict[str, Any] = wait_for(f"log event {event}", find, timeout, 0.1)
        return found

    # -- the CLI and tmux, as the service's user -------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 30.0) -> str:
        """``asched ARGS --state-dir STATE`` as the user; returns stdout."""
        argv = [self.python, "-P", "-m", "asched", *args, "--state-dir", STATE]
        r = self.box.run(argv, user=USER, check=False, timeout=timeout)
        if check and r.returncode != 0:
            raise BoxError(f"asched {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def history(self) -> list[dict[str, Any]]:
        """Every delivery journal row."""
        rows: list[dict[str, Any]] = json.loads(self.cli("history", "--json", "--limit", "10000"))
        return rows

    def tmux(self, *args: str, socket: str | None = TMUX_SOCKET, check: bool = True) -> str:
        sock = ["-S", socket] if socket else []
        r = self.box.run(["tmux", *sock, "-f", "/dev/null", *args], user=USER, check=check)
        return r.stdout

    def start_tmux(self, receivers: int, socket: str | None = TMUX_SOCKET) -> list[str]:
        """A tmux server of the user's, in a transient unit of its own (never in the daemon's
        cgroup): sessions p0..pN-1, each window 0 running ``cat > RECV/pI``. Returns targets."""
        self.box.run(["mkdir", "-p", RECV], user=USER)
        if socket:
            self.box.run(["mkdir", "-p", "-m", "0700", socket.rsplit("/", 1)[0]], user=USER)
        sock = ["-S", socket] if socket else []
        self.box.run(
            [
                "systemd-run",
                f"--unit={TMUX_UNIT}",
                f"--uid={USER}",
                f"--gid={USER}",
                "--property=Type=forking",
                f"--setenv=HOME={HOME}",
                "--setenv=SHELL=/bin/sh",
                "--setenv=LANG=C.UTF-8",
                "tmux",
                *sock,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "p0",
                "-x",
                "120",
                "-y",
                "30",
                f"cat > {RECV}/p0",
            ]
        )
        for i in range(1, receivers):
            self.tmux("new-session", "-d", "-s", f"p{i}", "-x", "120", "-y", "30",
                      f"cat > {RECV}/p{i}", socket=socket)  # fmt: skip
        return [f"p{i}:0" for i in range(receivers)]

    def sessions(self, socket: str | None = TMUX_SOCKET) -> list[str]:
        return sorted(self.tmux("list-sessions", "-F", "#{session_name}", socket=socket).split())

    def received(self, index: int) -> list[str]:
        r = self.box.run(["cat", f"{RECV}/p{index}"], check=False)
        return r.stdout.splitlines()


def quiesce(svc: Svc, checkin_ids: Sequence[int], timeout: float = 20.0) -> None:
    """Pause the check-ins, let the running daemon finish every occurrence already claimed,
    then stop it: afterwards every journal row is final. An occurrence claimed but not yet
    typed when its pause lands ends ``skipped(paused)`` (never typed after a pause)."""
    for checkin_id in checkin_ids:
        svc.cli("pause", str(checkin_id))

    def settled() -> bool:
        return all(r["state"] in FINAL for r in svc.history())

    wait_for("every claimed occurrence to be delivered", settled, timeout, 0.5)
    svc.systemctl("stop", UNIT)


def assert_exactly_once(
    svc: Svc, messages: dict[int, tuple[int, str]], outages: int = 0
) -> Counter[str]:
    """Every occurrence the journal says was verified is in its receiver's file exactly once.

    ``messages`` maps a check-in id to (receiver index, message text). One check-in per pane and
    one text per check-in: the file's line count is the number of typed occurrences. A
    ``verified`` row was typed exactly once; an ``unverified`` one (cut off by a restart after
    typing began) at most once, never again. Each of ``outages`` (restarts) may leave one
    ``skipped(missed)`` slot per check-in, covered by the restart's late catch-up. Returns the
    count of rows by state.
    """
    rows = svc.history()
    states: Counter[str] = Counter(r["state"] for r in rows)
    in_flight = [r for r in rows if r["state"] not in FINAL]
    assert not in_flight, f"rows still in flight: {in_flight[:5]}"
    keys = Counter((r["checkin_id"], r["due_at"]) for r in rows)
    doubled = [k for k, n in keys.items() if n > 1]
    assert not doubled, f"occurrences journaled twice: {doubled[:5]}"
    # A slot that fell while a restart's late catch-up was still on its way is skipped(missed)
    # and marked late: the catch-up covers it (one late copy per outage, never two). Anything
    # else that was not typed is a failure.
    covered = [r for r in rows if (r["state"], r["reason"], r["late"]) == ("skipped", "missed", 1)]
    # quiesce()'s own pause: at most the one occurrence per check-in that was waiting then.
    paused = [r for r in rows if (r["state"], r["reason"]) == ("skipped", "paused")]
    bad = [r for r in rows if r["state"] in ("failed", "skipped") and r not in covered + paused]
    assert max(Counter(r["checkin_id"] for r in paused).values(), default=0) <= 1, paused
    assert not bad, f"failed or skipped deliveries: {bad[:5]}"
    per_checkin = Counter(r["checkin_id"] for r in covered)
    assert all(n <= outages for n in per_checkin.values()), f"missed slots: {per_checkin}"
    for checkin_id, (index, text) in messages.items():
        mine = [r for r in rows if r["checkin_id"] == checkin_id]
        verified = sum(r["state"] == "verified" for r in mine)
        unverified = sum(r["state"] == "unverified" for r in mine)
        lines = svc.received(index)
        assert all(line == text for line in lines), f"p{index}: unexpected lines {lines[:5]}"
        assert verified <= len(lines) <= verified + unverified, (
            f"check-in {checkin_id} (p{index}): {verified} verified + {unverified} unverified"
            f" rows, but {len(lines)} lines typed"
        )
    return states
