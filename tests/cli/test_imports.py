"""The import budget of the commands agents call (issue 18): each loads only what it uses.

Each case runs ``python -m asched ...`` in a fresh interpreter, as an agent would, and looks at
``sys.modules`` when the process exits: nothing on the case's forbidden list, and at most the
budgeted number of asched modules. A new eager import (a heavy library, another command family's
module, the daemon's machinery) fails here; no timing is measured (the times are in bench/,
``python -m bench --only cli``). Raise a budget only for a module the command really uses.

``add`` and ``next`` run against a real daemon on a real tmux server (the usual case: they wake
it, and ``add`` looks its target up there); one ``add`` runs without a daemon, which adds the
hint of how to start one.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemons import PYTHON, Spawner, daemon_env
from tests.support.tmux import Server

# Runs `python -m asched ARGS` the way the interpreter does, then writes the modules it added to
# sys.modules to $IMPORTS_OUT. It imports nothing before its snapshot that asched might need.
PROBE = """\
import os, runpy, sys
before = set(sys.modules)
sys.argv = ["asched", *sys.argv[1:]]
try:
    runpy.run_module("asched", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
with open(os.environ["IMPORTS_OUT"], "w") as out:
    out.write("\\n".join(sorted(set(sys.modules) - before)))
"""

# Never on the path of a command an agent calls: the libraries of the daemon, the MCP server, the
# man page and completions, and the modules of the other command families and of the daemon.
HEAVY = (
    "asyncio",
    "uvloop",
    "structlog",
    "concurrent",
    "ssl",
    "mcp",
    "pydantic",
    "anyio",
    "shtab",
    "argparse_manpage",
    "build_manpages",
    "importlib.metadata",
    "tomllib",
    "shutil",  # argparse sizes its help with it; asched.cli.parser does without (zlib, bz2, lzma)
    # A dataclass took about 1 ms to define here and the module's import (inspect, ast, dis)
    # 8-13 ms: the records on these paths are named tuples.
    "dataclasses",
    "inspect",
)
OTHER_COMMANDS = (
    "asched.cli.completion",
    "asched.cli.demo",
    "asched.cli.doctor",
    "asched.cli.hook",
    "asched.cli.hooks_install",
    "asched.cli.legacy",
    "asched.cli.legacy_plan",
    "asched.cli.legacy_source",
    "asched.cli.mcp_command",
    "asched.cli.mcp_install",
    "asched.cli.mcp_server",
    "asched.cli.mcp_tools",
    "asched.cli.send",
    "asched.cli.service",
)
DAEMON = (
    "asched.core.logs",
    "asched.daemon.config",
    "asched.daemon.fleet",
    "asched.daemon.notify",
    "asched.daemon.process",
    "asched.daemon.scheduler",
    "asched.daemon.wiring",
    "asched.delivery",
    "asched.install",
    "asched.store.async_store",
    "asched.tmux.client",
    "asched.tmux.runner",
)
ALWAYS = (*HEAVY, *OTHER_COMMANDS, *DAEMON)
# What `add --in`, `next DUR` and `ls --json` leave out: time zones and cron (only --cron, --at
# and --tz need them), and for `ls --json` and `next` in a pane the tmux look-up too.
NO_ZONES = ("zoneinfo", "asched.core.cron", "fractions", "decimal")
NO_LOOKUP = ("asched.cli.lookup", "subprocess", "asched.tmux.panes")


@dataclass(frozen=True)
class Case:
    """One command line: what it must not import, and how many asched modules it may."""

    args: tuple[str, ...]
    forbidden: tuple[str, ...]
    budget: int
    daemon: bool = False
    in_pane: bool = False


CASES = {
    "ls --json": Case(
        ("ls", "--json"),
        (*ALWAYS, *NO_ZONES, *NO_LOOKUP, "asched.cli.addplan", "asched.core.triggers"),
        budget=28,
    ),
    "next": Case(
        ("next", "30m", "status report please"),
        (*ALWAYS, *NO_ZONES, *NO_LOOKUP, "asched.cli.checkins"),
        budget=30,
        daemon=True,
        in_pane=True,
    ),
    "add": Case(
        ("add", "w:0", "check the build", "--in", "1h", "--key", "build"),
        (*ALWAYS, *NO_ZONES, "asched.cli.selfsched"),
        budget=36,
        daemon=True,
    ),
    # Without a daemon, add says how to start one: that hint is the install scope's.
    "add, no daemon": Case(
        ("add", "w:0", "check the build", "--in", "1h"),
        (*HEAVY, *OTHER_COMMANDS, *(m for m in DAEMON if m != "asched.install"), *NO_ZONES),
        budget=38,
    ),
    "status": Case(
        ("status",),
        (*(m for m in ALWAYS if m != "psutil"), "asched.store", "asched.cli.views"),
        budget=13,
    ),
    # The systemd units run `python -m asched --daemon`: parsing it loads no other command.
    "--daemon --help": Case(("--daemon", "--help"), ALWAYS, budget=9),
    # Every family's module (legacy_source uses shutil; some define dataclasses), but none of
    # the heavy libraries.
    "--help": Case(
        ("--help",),
        tuple(m for m in HEAVY if m not in ("shutil", "dataclasses", "inspect")),
        budget=36,
    ),
}


@dataclass
class Setup:
    """A tmux server with a session ``w``, and a state directory with a daemon on that server."""

    tmp: Path
    server: Server
    pane: str
    served: Path  # the daemon's state directory
    bare: Path  # a state directory no daemon serves


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    tmp = Path(tempfile.mkdtemp(prefix="asched-imp-"))  # short: AF_UNIX paths < 108 bytes
    server = Server(tmp)
    spawner = Spawner(tmp)
    try:
        pane = server.new_session("w", "sleep 600")
        served, bare = tmp / "served", tmp / "bare"
        served.mkdir(mode=0o700)
        bare.mkdir(mode=0o700)
        daemon = spawner.spawn(served, extra=["--tmux-socket", server.sock])
        daemon.wait_ready()
        yield Setup(tmp, server, pane, served, bare)
    finally:
        spawner.cleanup()
        server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def imported(setup: Setup, case: Case, name: str) -> list[str]:
    """The modules ``python -m asched ARGS`` loaded, in a fresh interpreter."""
    out = setup.tmp / f"imports-{name.replace(' ', '_').replace(',', '')}"
    env = daemon_env(setup.tmp, strip=("ASCHED_", "TMUX", "NOTIFY_", "WATCHDOG_"))
    env["IMPORTS_OUT"] = str(out)
    env["ASCHED_STATE_DIR"] = str(setup.served if case.daemon else setup.bare)
    env["ASCHED_TMUX_SOCKET"] = setup.server.sock
    if case.in_pane:
        env["TMUX_PANE"] = setup.pane
    done = subprocess.run(
        [PYTHON, "-c", PROBE, *case.args],
        env=env,
        cwd=setup.tmp,  # asched as installed, not as found in the current directory
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.exists(), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return out.read_text().split()


def loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    """The modules of ``modules`` that are one of ``names`` or inside one of them."""
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


@pytest.mark.parametrize("name", CASES)
def test_a_command_imports_only_what_it_uses(setup: Setup, name: str) -> None:
    case = CASES[name]
    modules = imported(setup, case, name)
    assert loaded(modules, case.forbidden) == []
    ours = loaded(modules, ("asched",))
    assert len(ours) <= case.budget, f"{len(ours)} asched modules: {ours}"


def test_version_imports_nearly_nothing(setup: Setup) -> None:
    """``asched --version`` answers before argparse or any command is loaded."""
    modules = imported(setup, Case(("--version",), (), 0), "version")
    assert set(modules) <= {"asched", "asched.cli", "asched.cli.main", "gc"}, modules


def test_the_probe_sees_imports(setup: Setup) -> None:
    """The probe itself: a command that does load the parser shows it."""
    modules = imported(setup, Case(("ls", "--json"), (), 0), "probe")
    assert "asched.cli.parser" in modules and "argparse" in modules
