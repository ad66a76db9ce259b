"""The configuration file (TOML): one frozen, validated object, durations normalised to seconds.

A missing file means defaults. A bad file is a UsageError naming the file and what is wrong; the
daemon keeps its previous configuration when a reload finds one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asched.errors import UsageError
from asched.logs import LEVELS

DEFAULT_DRAIN_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Config:
    """Settings from the ``[daemon]`` table of the config file."""

    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    log_level: str | None = None
    source: Path | None = None


_DAEMON_KEYS = {"drain_timeout_s", "log_level"}


def _number(table: dict[str, Any], key: str, where: str, low: float, high: float) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise UsageError(f"{where}: {key} must be a number from {low:g} to {high:g}, not {value!r}")
    return float(value)


def parse(text: str, source: Path | None = None) -> Config:
    """Validate TOML ``text``; unknown keys are errors so that typos do not pass silently."""
    where = str(source) if source else "config"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: {exc}") from exc
    daemon = data.get("daemon", {})
    if not isinstance(daemon, dict):
        raise UsageError(f"{where}: [daemon] must be a table")
    unknown = sorted(set(daemon) - _DAEMON_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) in [daemon]: {', '.join(unknown)}")
    drain = _number(daemon, "drain_timeout_s", where, 0.0, 300.0)
    level = daemon.get("log_level")
    if level is not None and (not isinstance(level, str) or level.lower() not in LEVELS):
        raise UsageError(f"{where}: log_level must be one of {', '.join(LEVELS)}, not {level!r}")
    return Config(
        drain_timeout_s=DEFAULT_DRAIN_TIMEOUT_S if drain is None else drain,
        log_level=level.lower() if isinstance(level, str) else None,
        source=source,
    )


def load(path: Path) -> Config:
    """Read and validate ``path``; defaults when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config(source=None)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read config: {exc}") from exc
    return parse(text, path)
