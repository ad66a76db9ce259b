"""A real systemd (252 here) in a throw-away nspawn box: transient timers as a peer, and asched's
own unit for the restart handoff.

The box is tests/support/nspawn.py's :class:`Box` (the host's ``/`` as a read-only overlay, a
private network, its own PID 1), set up as the systemd tests set it up (tests/support/systemd.py):
the project and the interpreter are bound in read-only, the unit's user exists. asched runs in
it as a user's install does: from its wheel, in a venv of its own (tests/support/wheel.py).
Inside, a tmux server runs in a transient unit of its own with :data:`bench.receivers.RECEIVER`
panes.

Timer peer setup: one ``systemd-run`` per message, ``--on-active=`` (single) or
``--on-calendar=`` (fan-out: one instant for all) with ``--timer-property=AccuracySec=1us`` (or
the default AccuracySec=1min), a ``Type=oneshot`` service whose ``ExecStart`` is asched's paste
call (the body on stdin through ``StandardInputData=``), then ``ExecStartPost=`` the settle sleep
and the Enter call. The due time is what systemd computed (``NextElapseUSecMonotonic``), so the
figure is the timer's lateness plus the unit's start plus the paste.
"""

from __future__ import annotations

import base64
import os
import time
from datetime import UTC, datetime

from asched.install.interpreter import interpreter
from asched.install.units import render
from bench.common import PYTHON, Cleanup
from bench.peers.tmux_argv import SETTLE_S, enter_args, paste_args, prefix
from bench.receivers import Arrivals, body, receiver_argv
from tests.support.nspawn import prerequisites
from tests.support.systemd import UNIT, USER, Svc, add_user, new_box
from tests.support.wheel import build_wheel, install_wheel

SOCK = "/run/bench-tmux/sock"
RECV = "/run/bench-recv"


def _bus_path(unit: str) -> str:
    """The D-Bus object path of ``unit`` (systemd's escaping: ``_xx`` for each non-alnum)."""
    return "/org/freedesktop/systemd1/unit/" + "".join(
        c if c.isalnum() else f"_{ord(c):02x}" for c in unit
    )


def available() -> str | None:
    """Why no box can be booted here (None when it can)."""
    return prerequisites()


def _installed(cu: Cleanup) -> tuple[str, str]:
    """The interpreter the box's asched runs from, and how asched is installed there: from its
    wheel, in a venv of its own, as ``install-service`` wants it (it refuses an editable install
    unless told to); else this environment's. An editable install's finder costs every start
    of the daemon about 5 ms."""
    try:
        work = cu.tempdir("asched-bw-")
        return install_wheel(PYTHON, build_wheel(PYTHON, work), work / "venv"), "wheel"
    except Exception as exc:  # the restart is still measured; the figure says how
        return interpreter()[0], f"this environment's (no wheel: {exc})"[:300]


class SystemdBox:
    """One booted box for the whole run, halted at cleanup."""

    def __init__(self, cu: Cleanup) -> None:
        self.python, self.install = _installed(cu)
        self.box = new_box(self.python)
        cu.push(self.box.down)
        self.box.up()
        self.boot_s = self.box.boot_s
        self.version = self.box.run(["systemctl", "--version"]).stdout.split("\n")[0]
        add_user(self.box, self.python)
        self.pane_ids: list[str] = []
        self._n = 0

    # -- receivers ---------------------------------------------------------------------------

    def start_receivers(self, n: int) -> list[str]:
        """A tmux server in a transient unit, with ``n`` receiver panes; returns pane ids."""
        self.box.run(["mkdir", "-p", "-m", "0700", os.path.dirname(SOCK), RECV])
        base = ["tmux", "-S", SOCK, "-f", "/dev/null"]
        for i in range(len(self.pane_ids), n):
            cmd = receiver_argv(PYTHON, f"{RECV}/r{i}.txt", f"r{i}")
            session = ["new-session", "-d", "-s", f"r{i}", "-x", "80", "-y", "10"]
            if i == 0:  # the server's first session starts it, in a unit of its own
                self.box.run(
                    ["systemd-run", "--unit=bench-tmux", "--property=Type=forking",
                     "--setenv=SHELL=/bin/sh", *base, *session, *cmd]
                )  # fmt: skip
                pane = self.box.run([*base, "display-message", "-p", "-t", "=r0:", "#{pane_id}"])
            else:
                pane = self.box.run([*base, *session, "-P", "-F", "#{pane_id}", *cmd])
            self.pane_ids.append(pane.stdout.strip())
        deadline = time.monotonic() + 30
        while len(self.arrivals().ready) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("receiver panes in the box did not start")
            time.sleep(0.1)
        return self.pane_ids[:n]

    def arrivals(self) -> Arrivals:
        """Everything the receivers in the box recorded so far."""
        files = [f"{RECV}/r{i}.txt" for i in range(len(self.pane_ids))]
        if not files:
            return Arrivals()
        r = self.box.run(["cat", *files], check=False)
        return Arrivals.parse(r.stdout.splitlines())

    def wait_for(self, tokens: set[str], timeout: float) -> Arrivals:
        """Poll until every token arrived or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.arrivals()
            if tokens <= got.pasted.keys() or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    # -- timers ------------------------------------------------------------------------------

    def arm(
        self,
        pane_id: str,
        token: str,
        *,
        on_active_s: float | None = None,
        at_epoch: int | None = None,
        accuracy: str | None = "1us",
    ) -> float:
        """One transient timer typing ``body(token)``; returns its due time (epoch seconds).

        ``on_active_s``: ``--on-active`` (the due time is read back from systemd);
        ``at_epoch``: ``--on-calendar`` at that whole second. ``accuracy`` None: the default.
        """
        self._n += 1
        unit = f"bench-t{self._n}"
        buffer = f"st{self._n}"
        when = (
            [f"--on-active={on_active_s:.6f}s"]
            if on_active_s is not None
            else [
                f"--on-calendar={datetime.fromtimestamp(at_epoch or 0, UTC):%Y-%m-%d %H:%M:%S} UTC"
            ]
        )
        timer = [] if accuracy is None else [f"--timer-property=AccuracySec={accuracy}"]
        enter = " ".join(prefix(SOCK) + [_quote(a) for a in enter_args(pane_id)])
        self.box.run(
            [
                "systemd-run", f"--unit={unit}", *when, *timer,
                "--property=Type=oneshot",
                "--property=StandardInput=data",
                f"--property=StandardInputData={base64.b64encode(body(token).encode()).decode()}",
                f"--property=ExecStartPost=/bin/sleep {SETTLE_S}",
                f"--property=ExecStartPost={enter}",
                "--", *prefix(SOCK), *paste_args(pane_id, buffer),
            ]
        )  # fmt: skip
        if at_epoch is not None:
            return float(at_epoch)
        prop = ["org.freedesktop.systemd1.Timer", "NextElapseUSecMonotonic"]
        out = self.box.run(
            [
                "busctl",
                "get-property",
                "org.freedesktop.systemd1",
                _bus_path(f"{unit}.timer"),
                *prop,
            ]
        ).stdout.split()
        # CLOCK_MONOTONIC is shared with the host (no time namespace): map it to the wall clock.
        return int(out[1]) / 1e6 + (time.time() - time.monotonic())

    # -- asched's own unit -------------------------------------------------------------------

    def asched_service(self) -> Svc:
        """asched@asched-t.service installed (rendered for this interpreter), enabled, started."""
        svc = Svc(self.box, self.python)
        svc.install()
        self.box.run(["systemctl", "daemon-reload"], timeout=60)
        self.box.run(["systemctl", "enable", "--now", "--quiet", UNIT], timeout=60)
        return svc


def _quote(arg: str) -> str:
    """Quote one argument for an ExecStartPost= command line (systemd's quoting)."""
    if arg and all(c.isalnum() or c in "-_./%=:" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


# A unit that is READY as soon as Python can say so: the floor of a restart under systemd.
FLOOR_UNIT = "bench-floor.service"
_FLOOR_CODE = (
    "import os, socket, time\n"
    "p = os.environ['NOTIFY_SOCKET']\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
    "s.sendto(b'READY=1', '\\0' + p[1:] if p[0] == '@' else p)\n"
    "time.sleep(1e9)\n"
)


SANDBOXED_FLOOR_UNIT = "bench-floor-sandboxed.service"
# What of asched@.service's [Service] section the sandboxed floor leaves out: what starts the
# program, and the watchdog (the floor sends no pings).
_NOT_FOR_FLOOR = ("Type", "ExecStart", "ExecReload", "WatchdogSec", "NotifyAccess")


def unit_service_settings(user: str, dirs: str = "asched-floor") -> list[str]:
    """The ``Key=Value`` lines of asched@.service's [Service] section, as asched@USER has them
    (``%i`` is ``user``), but for :data:`_NOT_FOR_FLOOR`, and with directories of their own
    (``dirs``/USER): a unit's RuntimeDirectory= goes when it stops, another's must not."""
    text = render("asched@.service", PYTHON)
    section = text.split("[Service]", 1)[1].split("\n[", 1)[0]
    settings = []
    for line in section.splitlines():
        key = line.split("=", 1)[0]
        if line and not line.startswith("#") and "=" in line and key not in _NOT_FOR_FLOOR:
            settings.append(line.replace("asched/%i", f"{dirs}/%i").replace("%i", user))
    return settings


# What the daemon imports before its READY=1 that it cannot do without: the event loop of the
# design card (asyncio, uvloop), its logger (structlog) and its store (sqlite3).
LIBRARIES = ("asyncio", "uvloop", "structlog", "sqlite3")
LIBRARIES_FLOOR_UNIT = "bench-floor-libraries.service"


def start_floor_unit(sb: SystemdBox, *, sandboxed: bool = False, libraries: bool = False) -> str:
    """Start :data:`FLOOR_UNIT` (Type=notify, bare Python); returns its name. ``sandboxed``:
    :data:`SANDBOXED_FLOOR_UNIT`, the same with every other setting of asched@USER.service (its
    user, directories and sandbox): what systemd's side of asched's restart costs. ``libraries``
    (with ``sandboxed``): :data:`LIBRARIES_FLOOR_UNIT`, which imports :data:`LIBRARIES` first:
    the floor of any daemon built as asched is, in asched's unit."""
    unit = FLOOR_UNIT
    if sandboxed:
        unit = LIBRARIES_FLOOR_UNIT if libraries else SANDBOXED_FLOOR_UNIT
    settings = unit_service_settings(USER, unit.removesuffix(".service")) if sandboxed else []
    extra = [f"--property={s}" for s in settings]
    code = (f"import {', '.join(LIBRARIES)}\n" if libraries else "") + _FLOOR_CODE
    sb.box.run(
        ["systemd-run", f"--unit={unit}", "--property=Type=notify",
         "--property=StartLimitIntervalSec=0", *extra,
         "--property=NotifyAccess=main", sb.python, "-c", code]
    )  # fmt: skip
    return unit


def restart_unit(sb: SystemdBox, unit: str) -> tuple[float, float]:
    """``systemctl restart unit``: (seconds from leaving "active" to being active again, which
    for a Type=notify unit is its READY=1, as PID 1 stamped them; wall time of the command)."""
    t0 = time.monotonic()
    sb.box.run(["systemctl", "restart", unit], timeout=60)
    wall = time.monotonic() - t0
    props = ("ActiveExitTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    out = sb.box.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)]).stdout
    got = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return (int(got[props[1]]) - int(got[props[0]])) / 1e6, wall
