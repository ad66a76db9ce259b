"""The IANA name of the system's local time zone, for cron rules added without ``--tz``.

A cron rule stores a zone *name*, so that "09:00 on weekdays" keeps meaning 09:00 local time
across DST changes; a fixed UTC offset would drift by an hour twice a year. Python can convert
to local time but cannot name the zone, so the name is looked up where the C library finds it:

1. ``$TZ`` (``Europe/Berlin``, ``:Europe/Berlin`` or a path into a zoneinfo tree), because it
   overrides everything else for this process;
2. the ``/etc/localtime`` symlink (``.../zoneinfo/Europe/Berlin``), which is what glibc reads and
   what ``timedatectl set-timezone`` writes;
3. ``/etc/timezone`` (Debian), which can be stale when only the symlink was changed, hence last;
4. ``UTC``.

A candidate that is not a zone :mod:`zoneinfo` knows is passed over rather than trusted: a POSIX
rule in ``$TZ`` such as ``CET-1CEST,M3.5.0,M10.5.0/3`` has no IANA name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from asched.core.errors import UsageError
from asched.core.triggers import parse_zone

__all__ = ["FALLBACK_ZONE", "local_zone_name", "zone_from_path"]

FALLBACK_ZONE = "UTC"
_ETC_LOCALTIME = Path("/etc/localtime")
_ETC_TIMEZONE = Path("/etc/timezone")


def _valid(name: str) -> str | None:
    """``name`` when zoneinfo knows it, else None."""
    name = name.strip()
    if not name:
        return None
    try:
        parse_zone(name)
    except UsageError:
        return None
    return name


def zone_from_path(path: str) -> str | None:
    """The zone name in a path into a zoneinfo tree: ``/usr/share/zoneinfo/Europe/Berlin`` ->
    ``Europe/Berlin``. The ``posix/`` and ``right/`` variant trees name the same zones."""
    marker = "zoneinfo/"
    index = path.rfind(marker)
    if index < 0:
        return None
    name = path[index + len(marker) :]
    for prefix in ("posix/", "right/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return _valid(name)


def _from_tz_variable(value: str) -> str | None:
    # glibc ignores a leading ':' ("implementation-defined" in POSIX; it means "a file name").
    value = value.removeprefix(":")
    if value.startswith("/"):
        return zone_from_path(value)
    return _valid(value)


def _from_symlink(path: Path) -> str | None:
    try:
        link = os.readlink(path)
    except OSError:
        return None  # missing, or a plain copy of a zone file: nothing names it
    # A relative link (../usr/share/zoneinfo/...) only needs its tail, so no resolving is needed.
    return zone_from_path(link)


def _from_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = text.splitlines()
    return _valid(lines[0]) if lines else None


def local_zone_name(
    env: Mapping[str, str] | None = None,
    localtime: Path = _ETC_LOCALTIME,
    timezone_file: Path = _ETC_TIMEZONE,
) -> str:
    """The system's local zone as an IANA name (``Europe/Berlin``); ``UTC`` when none is found.

    The arguments exist for tests; callers use the defaults.
    """
    e = os.environ if env is None else env
    tz = e.get("TZ")
    if tz:
        found = _from_tz_variable(tz)
        if found is not None:
            return found
    return _from_symlink(localtime) or _from_file(timezone_file) or FALLBACK_ZONE
