"""``asched install-service`` and ``uninstall-service``: put the daemon under systemd, idempotently.

Two shapes (the unit files are :mod:`asched.install.units`; ``deploy/systemd/`` links to them):

* ``--user`` (the default): ``asched.service`` in ``$XDG_CONFIG_HOME/systemd/user`` (usually
  ``~/.config/systemd/user``), driven with ``systemctl --user``;
* ``--system USER``: the template ``asched@.service`` in ``/etc/systemd/system``, and its instance
  ``asched@USER.service`` enabled and started (root only).

Installing writes the unit only when its text changed, reloads systemd only then, enables the
unit unless it is enabled, and starts it unless it runs (restarts it when the file changed under
a running daemon). A second run finds nothing to do and says so. ``--dry-run`` prints the unit
and the commands and touches nothing. The interpreter the unit runs is chosen by
:mod:`asched.install.interpreter`.

Before anything is written the interpreter must import asched as the service will run it (the
target user for ``--system``, working directory ``/``, no PYTHONPATH): a checkout that is only
importable from its own directory, or a venv under a home the service user cannot enter, fails
here with one line instead of in the journal.

An editable install (``pip install -e``, ``./dev``'s venv) is refused unless ``allow_editable``
(``--allow-editable``): the unit would run the checkout (:mod:`asched.install.editable`).

Errors are :class:`~asched.core.errors.UsageError` (exit 2) for bad arguments and
:class:`~asched.core.errors.AschedError` (exit 1) for everything the machine refuses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from asched.core.errors import EXIT_OK, AschedError
from asched.install.editable import editable_source, refusal
from asched.install.interpreter import interpreter
from asched.install.scope import SYSTEM_UNIT_DIR, Scope, scope_for
from asched.install.systemctl import (
    SYSTEMCTL_TIMEOUT_S,
    Runner,
    SystemctlSession,
    require_systemctl,
)
from asched.install.units import MARKER, render

LINGER_DIR = Path("/var/lib/systemd/linger")


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
            [python, "-P", "-c", "import asched.cli.main"],
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
            f"state directory: {scope.state_dir}; the CLI run as {scope.user} finds it while"
            f" the daemon runs (or name it: ASCHED_STATE_DIR={scope.state_dir}, --state-dir)",
            file=out,
        )
    elif not (LINGER_DIR / scope.user).exists():
        print(
            "to keep it running while you are logged out (and start it at boot):"
            f" loginctl enable-linger {scope.user}",
            file=out,
        )


def install(
    system_user: str | None,
    dry_run: bool,
    out: TextIO | None = None,
    runner: Runner | None = None,
    allow_editable: bool = False,
) -> int:
    """``asched install-service``; returns the exit code (errors raise AschedError)."""
    out = out or sys.stdout
    scope = scope_for(system_user)
    python, note = interpreter()
    text = render(scope.file_name, python)
    sysctl = " ".join(scope.systemctl)
    editable = None if allow_editable else editable_source()
    if dry_run:
        if editable:  # what the real run would say, as a note: a dry run shows, never refuses
            print(
                f"# note: without --allow-editable this is refused: {refusal(editable)}", file=out
            )
        if note:
            print(f"# note: {note}", file=out)
        print(f"# {scope.unit_file} would contain:", file=out)
        out.write(text)
        print("# then, for what is not already so:", file=out)
        for cmd in ("daemon-reload", f"enable {scope.unit}", f"start {scope.unit}"):
            print(f"{sysctl} {cmd}", file=out)
        print("# (dry run: nothing was changed)", file=out)
        return EXIT_OK
    if editable:
        raise AschedError(refusal(editable))
    _require_root(scope, "install-service")
    require_systemctl()
    preflight(scope, python)
    session = SystemctlSession(scope, out, runner)
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


def _other_instances(scope: Scope, session: SystemctlSession) -> list[str]:
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
    require_systemctl()
    session = SystemctlSession(scope, out, runner)
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
