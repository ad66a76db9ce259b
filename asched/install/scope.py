"""What one install or uninstall works on: the user unit, or the system template's instance of
one user, with the account, unit file and unit name that go with it."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path
from typing import NamedTuple

from asched.core.errors import AschedError, UsageError

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
_INSTANCE_OK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


class Scope(NamedTuple):
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
