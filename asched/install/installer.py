"""``asched install-service`` and ``uninstall-service``: put the daemon under systemd, idempotently.

Two shapes (the unit texts below are the files in ``deploy/systemd/``; a test keeps them equal):

* ``--user`` (the default): ``asched.service`` in ``$XDG_CONFIG_HOME/systemd/user`` (usually
  ``~/.config/systemd/user``), driven with ``systemctl --user``;
* ``--system USER``: the template ``asched@.service`` in ``/etc/systemd/system``, and its instance
  ``asched@USER.service`` enabled and started (root only).

Installing writes the unit only when its text changed, reloads systemd only then, enables the
unit unless it is enabled, and starts it unless it runs (restarts it when the file changed under
a running daemon). A second run finds nothing to do and says so. ``--dry-run`` prints the unit
and the commands and touches nothing.

The interpreter (``@PYTHON@`` in the shipped units)
----------------------------------------------------
``ExecStart=@PYTHON@ -P -m asched --daemon``: @PYTHON@ becomes the interpreter that runs this
very command, chosen so that the unit starts the same asched later, from any directory:

* In a virtual environment, ``sys.executable`` as given (``.venv/bin/python``). It is usually a
  symlink to the base interpreter, but the venv (its ``pyvenv.cfg`` and site-packages) is found
  only through the link's own path: resolving it would start a Python without asched.
* Otherwise the real binary: ``sys.executable`` with symlinks resolved.
* Never a wrapper script. A pyenv or asdf *shim* is a shell script that chooses an interpreter
  from the current directory and environment each time it runs; in a unit that choice would
  happen in systemd's environment (cwd ``/`` or ``$HOME``) and could pick a Python without
  asched. When the path is a script, the binary that actually runs this command
  (``/proc/self/exe``) is used instead if we are not in a venv, and the install is refused
  otherwise.
* ``-P`` keeps the working directory off ``sys.path``: the user unit starts in ``$HOME``, where a
  directory named ``asched`` must not shadow the package.

Before anything is written the interpreter must import asched as the service will run it (the
target user for ``--system``, working directory ``/``, no PYTHONPATH): a checkout that is only
importable from its own directory, or a venv under a home the service user cannot enter, fails
here with one line instead of in the journal.

Errors are :class:`~asched.errors.UsageError` (exit 2) for bad arguments and
:class:`~asched.errors.AschedError` (exit 1) for everything the machine refuses.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from asched.core.errors import EXIT_OK, AschedError, UsageError

PLACEHOLDER = "@PYTHON@"
MARKER = "# Rendered by `asched install-service`"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
LINGER_DIR = Path("/var/lib/systemd/linger")
SYSTEMCTL_TIMEOUT_S = 60.0  # above TimeoutStartSec=30s: `systemctl start` waits for READY=1
_INSTANCE_OK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")

USER_UNIT = """\
# asched.service: the asched check-in scheduler as a systemd user service. This is the natural
# home: the tmux server it types into belongs to the same user.
#
# Install with `asched install-service --user`: it replaces @PYTHON@ with the interpreter asched
# is installed in, writes ~/.config/systemd/user/asched.service, reloads, and enables and starts
# it. To keep it running while you are logged out: loginctl enable-linger $USER.
#
# State: the daemon's own default, $XDG_STATE_HOME/asched (~/.local/state/asched), the same
# directory the CLI uses. There is no StateDirectory= here on purpose: systemd 252 puts a user
# unit's StateDirectory= under $XDG_CONFIG_HOME (~/.config), and the daemon would then keep a
# database the CLI never sees. The control socket lives in $XDG_RUNTIME_DIR/asched
# (RuntimeDirectory=, removed on stop); the lock and the database never do.
#
# Timeouts: the daemon waits up to 10 s (--lock-timeout) for another daemon to release the
# state directory, then exits 75; it drains in-flight deliveries for up to drain_timeout_s
# (default 5 s) on SIGTERM. Raise TimeoutStopSec= in a drop-in if you raise drain_timeout_s.

[Unit]
Description=asched check-in scheduler
# A restart loop is stopped after 60 starts in 2 minutes (about 80 s of crashing at
# RestartSec=1s); a person restarting by hand never gets near it.
StartLimitIntervalSec=120s
StartLimitBurst=60

[Service]
Type=notify
NotifyAccess=main
ExecStart=@PYTHON@ -P -m asched --daemon
ExecReload=kill -HUP $MAINPID
WatchdogSec=30s
TimeoutStartSec=30s
TimeoutStopSec=15s
KillMode=mixed
Restart=on-failure
RestartSec=1s
# 2: bad usage or config, 75: another daemon holds the state directory. Retrying cannot help.
RestartPreventExitStatus=2 75

RuntimeDirectory=asched
RuntimeDirectoryMode=0700
SyslogIdentifier=asched
UMask=0077

# Sandboxing that a user manager applies without a user namespace (seccomp and
# NoNewPrivileges). ProtectSystem=, ProtectHome=, PrivateDevices= and the other mount-namespace
# options need PrivateUsers=yes in a user unit, and that fails to start wherever unprivileged
# user namespaces are restricted (Ubuntu 24.04's AppArmor default). The system template
# asched@.service carries the full set. Never PrivateTmp=: it would hide the tmux socket.
NoNewPrivileges=yes
RestrictAddressFamilies=AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=default.target
"""

SYSTEM_UNIT = """\
# asched@.service: the asched check-in scheduler as a system service running as one user:
# asched@USER.service runs with User=USER and types into that user's tmux server
# (its default socket, /tmp/tmux-UID/default, or ASCHED_TMUX_SOCKET set in a drop-in).
#
# Install with `sudo asched install-service --system USER`: it replaces @PYTHON@ with the
# interpreter asched is installed in, writes /etc/systemd/system/asched@.service, reloads, and
# enables and starts asched@USER.service. This file is a template: nothing in it names a user,
# a home or an install path.
#
# State: /var/lib/asched/USER (StateDirectory=, created 0700 and owned by USER). The CLI run as
# USER must use the same directory: ASCHED_STATE_DIR=/var/lib/asched/USER (or --state-dir).
# The control socket lives in /run/asched/USER (RuntimeDirectory=, removed on stop); the lock
# and the database never do.
#
# Timeouts: the daemon waits up to 10 s (--lock-timeout) for another daemon to release the
# state directory, then exits 75; it drains in-flight deliveries for up to drain_timeout_s
# (default 5 s) on SIGTERM. Raise TimeoutStopSec= in a drop-in if you raise drain_timeout_s.

[Unit]
Description=asched check-in scheduler for %i
# A restart loop is stopped after 60 starts in 2 minutes (about 80 s of crashing at
# RestartSec=1s); a person restarting by hand never gets near it.
StartLimitIntervalSec=120s
StartLimitBurst=60

[Service]
Type=notify
NotifyAccess=main
User=%i
ExecStart=@PYTHON@ -P -m asched --daemon
ExecReload=kill -HUP $MAINPID
WatchdogSec=30s
TimeoutStartSec=30s
TimeoutStopSec=15s
KillMode=mixed
Restart=on-failure
RestartSec=1s
# 2: bad usage or config, 75: another daemon holds the state directory. Retrying cannot help.
RestartPreventExitStatus=2 75

StateDirectory=asched/%i
StateDirectoryMode=0700
RuntimeDirectory=asched/%i
RuntimeDirectoryMode=0700
# SQLite's temporary files: /tmp and /var/tmp are read-only here (ProtectSystem=strict).
Environment=SQLITE_TMPDIR=%S/asched/%i
SyslogIdentifier=asched
UMask=0077

# Sandboxing (systemd-analyze security: 0.6 SAFE on systemd 252).
# Never PrivateTmp=: it would hide the user's tmux socket. Connecting to that socket works
# under ProtectSystem=strict: connect(2) needs write permission on the socket file, which a
# read-only mount does not take away.
# Not used, on purpose: PrivateUsers= (with ProtectProc=invisible it hides the user's own pane
# processes, and the shell guard then mistakes every pane for a shell), ProcSubset=pid (the
# shell guard reads the process tree with psutil, which needs /proc/stat), RemoveIPC= (it
# would delete the IPC objects of every other process of USER when asched stops).
PrivateTmp=no
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateDevices=yes
PrivateNetwork=yes
PrivateIPC=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX
IPAddressDeny=any
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=
AmbientCapabilities=
DevicePolicy=closed

[Install]
WantedBy=multi-user.target
"""

UNIT_TEXTS = {"asched.service": USER_UNIT, "asched@.service": SYSTEM_UNIT}


# ---------------------------------------------------------------------------------------------
# Rendering


def exec_quote(path: str) -> str:
    """``path`` as the executable (first word) of a unit's ExecStart= line.

    systemd expands ``%`` specifiers there and splits on whitespace (``$`` variables are expanded
    in the arguments only), so ``%`` is doubled and a path with whitespace quoted. It refuses an
    executable name with quotes, backslashes or control characters outright ("contains special
    characters"): such a path is an error here rather than a unit that cannot start.
    """
    if not path or any(ord(c) < 32 or ord(c) == 127 or c in "\"'\\" for c in path):
        raise AschedError(
            f"systemd cannot start an interpreter at {path!r} (quotes, backslashes and control"
            " characters are refused in an executable path): install asched elsewhere"
        )
    word = path.replace("%", "%%")
    return f'"{word}"' if any(c.isspace() for c in path) else word


def render(unit_name: str, python: str) -> str:
    """The unit ``unit_name`` with ``@PYTHON@`` replaced, headed by the install marker."""
    text = UNIT_TEXTS[unit_name]
    line = f"ExecStart={PLACEHOLDER} "
    if text.count(line) != 1:
        raise AssertionError(f"{unit_name}: expected one {line!r}")
    body = text.replace(line, f"ExecStart={exec_quote(python)} ")
    header = (
        f"{MARKER} from deploy/systemd/{unit_name} for {python}.\n"
        "# Changes here are replaced by the next install: put them in a drop-in\n"
        f"# (systemctl{' --user' if unit_name == 'asched.service' else ''} edit ...).\n"
    )
    return header + body


# ---------------------------------------------------------------------------------------------
# The interpreter


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def interpreter(
    executable: str | None = None,
    prefix: str | None = None,
    base_prefix: str | None = None,
    running: str = "/proc/self/exe",
) -> tuple[str, str | None]:
    """The interpreter for ExecStart, and a note when it is not ``sys.executable`` itself.

    The arguments default to this process's ``sys.executable``, ``sys.prefix`` and
    ``sys.base_prefix``; tests pass their own. See the module docstring for the rules.
    """
    exe = sys.executable if executable is None else executable
    prefix = sys.prefix if prefix is None else prefix
    base_prefix = sys.base_prefix if base_prefix is None else base_prefix
    if not exe or not os.path.isabs(exe):
        raise AschedError(
            f"cannot tell which Python runs asched (sys.executable is {exe!r});"
            " run install-service with an absolute interpreter path"
        )
    if not os.path.exists(exe):
        raise AschedError(f"the interpreter {exe} does not exist")
    in_venv = os.path.realpath(prefix) != os.path.realpath(base_prefix)
    if in_venv:
        # Keep the venv's own path: its site-packages are found only through it.
        if _is_elf(os.path.realpath(exe)):
            return exe, None
        raise AschedError(
            f"{exe} is a script (a pyenv or asdf shim?), not a Python binary; a unit must not"
            f" depend on one. Run install-service as {prefix}/bin/python -m asched"
            " install-service"
        )
    real = os.path.realpath(exe)
    if _is_elf(real):
        return real, (None if real == exe else f"{exe} resolves to {real}")
    binary = os.path.realpath(running) if os.path.exists(running) else ""
    if binary and _is_elf(binary):
        return binary, f"{exe} is a wrapper script (a pyenv or asdf shim?); using {binary}"
    raise AschedError(
        f"{exe} is a script, not a Python binary; run install-service with the"
        " real interpreter (pyenv which python)"
    )


# ---------------------------------------------------------------------------------------------
# Where and as whom


@dataclass(frozen=True, slots=True)
class Scope:
    """What one install or uninstall works on."""

    system: bool
    user: str  # the account the daemon runs as
    uid: int
    gid: int
    home: str
    unit_file: Path  # where the rendered unit goes
    file_name: str  # asched.service or asched@.service
    unit: str  # the unit that is enabled and started: asched.service or asched@USER.service

    @property
    def systemctl(self) -> list[str]:
        """``systemctl`` with ``--user`` for a user unit."""
        return ["systemctl"] if self.system else ["systemctl", "--user"]

    @property
    def state_dir(self) -> str:
        """The daemon's state directory under this unit."""
        if self.system:
            return f"/var/lib/asched/{self.user}"
        xdg = os.environ.get("XDG_STATE_HOME", "")
        base = xdg if xdg.startswith("/") else os.path.join(self.home, ".local", "state")
        return os.path.join(base, "asched")


def scope_for(system_user: str | None) -> Scope:
    """The user scope (``system_user`` None) or the system template's instance for a user."""
    if system_user is None:
        try:
            pw = pwd.getpwuid(os.geteuid())
        except KeyError:
            raise AschedError(f"uid {os.geteuid()} has no passwd entry") from None
        home = os.environ.get("HOME") or pw.pw_dir
        xdg = os.environ.get("XDG_CONFIG_HOME", "")
        config = Path(xdg) if xdg.startswith("/") else Path(home) / ".config"
        return Scope(
            system=False,
            user=pw.pw_name,
            uid=pw.pw_uid,
            gid=pw.pw_gid,
            home=home,
            unit_file=config / "systemd" / "user" / "asched.service",
            file_name="asched.service",
            unit="asched.service",
        )
    if not _INSTANCE_OK.fullmatch(system_user):
        raise UsageError(
            f"user name {system_user!r} cannot be a systemd instance name"
            " (letters, digits, '_', '.', '-')"
        )
    try:
        pw = pwd.getpwnam(system_user)
    except KeyError:
        raise UsageError(f"no such user: {system_user}") from None
    return Scope(
        system=True,
        user=pw.pw_name,
        uid=pw.pw_uid,
        gid=pw.pw_gid,
        home=pw.pw_dir,
        unit_file=SYSTEM_UNIT_DIR / "asched@.service",
        file_name="asched@.service",
        unit=f"asched@{pw.pw_name}.service",
    )


# ---------------------------------------------------------------------------------------------
# Doing it


Runner = Callable[[Sequence[str], float], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class _Session:
    """Runs systemctl for one scope and reports every action on ``out``."""

    def __init__(self, scope: Scope, out: TextIO, runner: Runner | None = None) -> None:
        self.scope = scope
        self.out = out
        self.runner = runner or _run
        self.actions = 0

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def query(self, *args: str) -> str:
        """A read-only systemctl call's first output line ('' when it printed nothing)."""
        r = self.call([*self.scope.systemctl, *args], SYSTEMCTL_TIMEOUT_S)
        return r.stdout.strip().splitlines()[0] if r.stdout.strip() else ""

    def act(self, *args: str, why: str = "") -> None:
        """Run a systemctl command that changes something; a failure ends the command."""
        argv = [*self.scope.systemctl, *args]
        r = self.call(argv, SYSTEMCTL_TIMEOUT_S)
        if r.returncode != 0:
            detail = _first_line(r.stderr) or f"exit status {r.returncode}"
            journal = "journalctl" + ("" if self.scope.system else " --user")
            raise AschedError(
                f"{' '.join(argv)} failed: {detail} (see: {journal} -u {self.scope.unit})"
            )
        self.actions += 1
        self.say(f"ran: {' '.join(argv)}" + (f"  ({why})" if why else ""))

    def require_manager(self) -> None:
        """Fail before changing anything when the service manager cannot be reached."""
        if self.scope.system and not os.path.isdir("/run/systemd/system"):  # sd_booted(3)
            raise AschedError("systemd is not running on this machine (PID 1 is something else)")
        r = self.call([*self.scope.systemctl, "is-system-running"], SYSTEMCTL_TIMEOUT_S)
        state = r.stdout.strip()
        if state and state != "offline":  # running, degraded, starting...: a manager answered
            return
        detail = _first_line(r.stderr) or f"systemctl is-system-running: {state or r.returncode}"
        if self.scope.system:
            raise AschedError(f"cannot talk to systemd: {detail}")
        raise AschedError(
            f"cannot talk to your systemd user manager: {detail} (log in to start it, or"
            f" run: loginctl enable-linger {self.scope.user}; as root, use --system USER)"
        )

    def call(self, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return self.runner(argv, timeout)
        except FileNotFoundError:
            raise AschedError(
                "systemctl not found: install-service needs systemd (is this a systemd host?)"
            ) from None
        except subprocess.TimeoutExpired:
            raise AschedError(f"{' '.join(argv)} did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise AschedError(f"cannot run {argv[0]}: {exc.strerror}") from None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _require_systemctl() -> None:
    if shutil.which("systemctl") is None:
        raise AschedError(
            "systemctl not found: install-service needs systemd (is this a systemd host?)"
        )


def _require_root(scope: Scope, verb: str) -> None:
    if scope.system and os.geteuid() != 0:
        raise AschedError(
            f"--system writes to {SYSTEM_UNIT_DIR} and needs root:"
            f" sudo {sys.executable} -m asched {verb} --system {scope.user}"
        )


def preflight(scope: Scope, python: str) -> None:
    """Check that ``python`` imports asched as the service will run it (see module docstring)."""
    as_other = scope.system and scope.uid != os.geteuid()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": scope.home, "LANG": "C.UTF-8"}
    try:
        r = subprocess.run(
            [python, "-P", "-c", "import asched.cli"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
            user=scope.uid if as_other else None,
            group=scope.gid if as_other else None,
            extra_groups=os.getgrouplist(scope.user, scope.gid) if as_other else None,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise AschedError(f"cannot run {python} as {scope.user}: {exc}") from None
    if r.returncode != 0:
        detail = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        raise AschedError(
            f"{scope.user} cannot import asched with {python} (from /, as the unit would): {detail}"
        )


def _write_unit(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0644 (units are read by the manager)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise AschedError(f"cannot write {path}: {exc.strerror}") from None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AschedError(f"cannot read {path}: {exc}") from None


def _hints(scope: Scope, out: TextIO) -> None:
    if scope.system:
        print(
            f"state directory: {scope.state_dir}; run the CLI as {scope.user} with"
            f" ASCHED_STATE_DIR={scope.state_dir} (or --state-dir) to use this daemon's schedule",
            file=out,
        )
    elif not (LINGER_DIR / scope.user).exists():
        print(
            "to keep it running while you are logged out (and start it at boot):"
            f" loginctl enable-linger {scope.user}",
            file=out,
        )


def install(
    system_user: str | None, dry_run: bool, out: TextIO | None = None, runner: Runner | None = None
) -> int:
    """``asched install-service``; returns the exit code (errors raise AschedError)."""
    out = out or sys.stdout
    scope = scope_for(system_user)
    python, note = interpreter()
    text = render(scope.file_name, python)
    sysctl = " ".join(scope.systemctl)
    if dry_run:
        if note:
            print(f"# note: {note}", file=out)
        print(f"# {scope.unit_file} would contain:", file=out)
        out.write(text)
        print("# then, for what is not already so:", file=out)
        for cmd in ("daemon-reload", f"enable {scope.unit}", f"start {scope.unit}"):
            print(f"{sysctl} {cmd}", file=out)
        print("# (dry run: nothing was changed)", file=out)
        return EXIT_OK
    _require_root(scope, "install-service")
    _require_systemctl()
    preflight(scope, python)
    session = _Session(scope, out, runner)
    session.require_manager()
    if note:
        session.say(f"note: {note}")
    old = _read(scope.unit_file)
    changed = old != text
    if changed:
        if old is not None and MARKER not in old:
            raise AschedError(
                f"{scope.unit_file} exists and was not written by asched install-service;"
                " move it away first (customise the installed unit with a drop-in instead)"
            )
        _write_unit(scope.unit_file, text)
        session.actions += 1
        session.say(f"{'updated' if old is not None else 'wrote'} {scope.unit_file}")
        session.act("daemon-reload")
    if session.query("is-enabled", scope.unit) != "enabled":
        session.act("enable", scope.unit)
    if session.query("is-active", scope.unit) == "active":
        if changed:
            session.act("restart", scope.unit, why="the unit file changed")
    else:
        session.act("start", scope.unit)
    if session.actions == 0:
        session.say(
            f"nothing to do: {scope.unit} is installed ({scope.unit_file}), enabled and running"
        )
    else:
        session.say(f"{scope.unit} is installed, enabled and running (ExecStart: {python})")
    _hints(scope, out)
    return EXIT_OK


def _other_instances(scope: Scope, session: _Session) -> list[str]:
    """Other users' asched@ instances that still use the template (enabled or loaded)."""
    names = {p.name for p in SYSTEM_UNIT_DIR.glob("*.wants/asched@*.service")}
    r = session.call(
        [*scope.systemctl, "list-units", "--all", "--plain", "--no-legend", "asched@*.service"],
        SYSTEMCTL_TIMEOUT_S,
    )
    for line in r.stdout.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("asched@") and "not-found" not in fields[1:2]:
            names.add(fields[0])
    names.discard(scope.unit)
    return sorted(n for n in names if n != "asched@.service")


def uninstall(
    system_user: str | None, dry_run: bool, out: TextIO | None = None, runner: Runner | None = None
) -> int:
    """``asched uninstall-service``; returns the exit code. The state directory is kept."""
    out = out or sys.stdout
    scope = scope_for(system_user)
    sysctl = " ".join(scope.systemctl)
    if dry_run:
        print(f"{sysctl} disable --now {scope.unit}", file=out)
        print(
            f"rm {scope.unit_file}"
            + ("  (unless another user's instance uses it)" if scope.system else ""),
            file=out,
        )
        print(f"{sysctl} daemon-reload", file=out)
        print(f"# kept: the state directory {scope.state_dir}", file=out)
        print("# (dry run: nothing was changed)", file=out)
        return EXIT_OK
    _require_root(scope, "uninstall-service")
    _require_systemctl()
    session = _Session(scope, out, runner)
    session.require_manager()
    old = _read(scope.unit_file)
    if old is not None and MARKER not in old:
        raise AschedError(
            f"{scope.unit_file} was not written by asched install-service; leaving it alone"
        )
    enabled = session.query("is-enabled", scope.unit)
    active = session.query("is-active", scope.unit)
    if enabled in ("enabled", "enabled-runtime", "linked") or active in (
        "active",
        "activating",
        "reloading",
        "deactivating",
    ):
        session.act("disable", "--now", scope.unit)
    if old is not None:
        others = _other_instances(scope, session) if scope.system else []
        if others:
            session.say(f"kept {scope.unit_file}: still used by {', '.join(others)}")
        else:
            try:
                scope.unit_file.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise AschedError(f"cannot remove {scope.unit_file}: {exc.strerror}") from None
            session.actions += 1
            session.say(f"removed {scope.unit_file}")
            session.act("daemon-reload")
    if session.query("is-failed", scope.unit) == "failed":
        session.act("reset-failed", scope.unit)
    if session.actions == 0:
        session.say(f"nothing to do: {scope.unit} is not installed")
    else:
        session.say(f"{scope.unit} is uninstalled; the state directory {scope.state_dir} is kept")
    return EXIT_OK
