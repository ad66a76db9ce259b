"""How the command line finds the daemon that serves its user, with no setting.

A daemon under systemd has a runtime directory of its own ($RUNTIME_DIRECTORY:
``$XDG_RUNTIME_DIR/asched`` for the user unit, ``/run/asched/USER`` for the system template
``asched@USER``). Once it holds its lock it *publishes* its state directory there: a symlink
named ``state`` that points to it (systemd removes the runtime directory, pointer and all, when
the unit stops). A daemon started by hand has no runtime directory and publishes nothing.

The command line, when no setting names a state directory (``--state-dir``, $ASCHED_STATE_DIR,
$STATE_DIRECTORY), uses the default one when a daemon holds its lock, else the first published
one that names a live daemon of this user (its lock held, the directory owned by our uid), else
the default. So an agent's ``asched next 30m ...`` in alice's pane reaches ``asched@alice``,
whose state is /var/lib/asched/alice, with nothing set. The places looked at are fixed and
private: ``$XDG_RUNTIME_DIR`` is the user's own, and ``/run/asched/USER`` is made by systemd,
owned by USER with mode 0700, under a root-owned ``/run/asched``.

Imported by the command line for every command: only the standard library and the lock probe.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Mapping
from pathlib import Path

from asched.core.paths import default_state_dir, state_dir_setting, user_runtime_dir
from asched.daemon.lock import LOCK_NAME, is_held

POINTER_NAME = "state"
SYSTEM_RUNTIME = Path("/run/asched")  # the template's RuntimeDirectory=asched/%i lives here


def publish(state_dir: Path, env: Mapping[str, str] | None = None) -> Path | None:
    """Point ``$RUNTIME_DIRECTORY/state`` at ``state_dir``; returns the pointer, or None when
    there is no runtime directory (not under systemd). OSError when it cannot be written."""
    e = os.environ if env is None else env
    runtime = e.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if not runtime.startswith("/"):
        return None
    pointer = Path(runtime) / POINTER_NAME
    # Made aside and renamed over the old one: a reader sees the old pointer or the new one.
    tmp = pointer.with_name(f".{POINTER_NAME}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(state_dir, tmp)
    try:
        os.replace(tmp, pointer)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return pointer


def withdraw(pointer: Path | None, state_dir: Path) -> None:
    """Remove ``pointer`` if it still names ``state_dir`` (best effort: the lock is the truth)."""
    if pointer is None:
        return
    with contextlib.suppress(OSError):
        if os.readlink(pointer) == str(state_dir):
            pointer.unlink()


def pointers(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where this user's daemons publish, in the order looked at: the user unit's, then the
    system template's instance for this user."""
    found = [user_runtime_dir(env) / "asched" / POINTER_NAME]
    with contextlib.suppress(KeyError):  # a uid with no passwd entry has no template instance
        found.append(SYSTEM_RUNTIME / pwd.getpwuid(os.geteuid()).pw_name / POINTER_NAME)
    return found


def serves_us(state_dir: Path) -> bool:
    """True when a daemon holds ``state_dir``'s lock and the directory is our own."""
    try:
        return state_dir.stat().st_uid == os.geteuid() and is_held(state_dir / LOCK_NAME)
    except OSError:
        return False


def target(pointer: Path) -> Path | None:
    """The state directory ``pointer`` names (absolute), or None."""
    try:
        named = Path(os.readlink(pointer))
    except OSError:
        return None
    return named if named.is_absolute() else None


def find(env: Mapping[str, str] | None = None) -> Path | None:
    """The state directory of the first published daemon that serves this user, or None."""
    for pointer in pointers(env):
        named = target(pointer)
        if named is not None and serves_us(named):
            return named
    return None


def cli_state_dir(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The command line's state directory: a setting (``--state-dir``, $ASCHED_STATE_DIR,
    $STATE_DIRECTORY), else the default one if a daemon runs on it, else a published daemon's
    (see the module's docstring), else the default."""
    setting = state_dir_setting(explicit, env)
    if setting is not None:
        return setting
    default = default_state_dir(env)
    if serves_us(default):
        return default
    return find(env) or default
