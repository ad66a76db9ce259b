"""The configuration file (TOML): one frozen, validated object, durations normalised to seconds.

A missing file means defaults. A bad file is a UsageError naming the file, the line and what is
wrong; the daemon keeps its previous configuration when a reload finds one. Unknown keys are
errors, so that a typo never passes silently.

    [daemon]      drain_timeout_s, log_level
    [delivery]    prefix, settle_s, settle_by_program, shells, copy_mode, min_gap_s,
                  rate_per_s, burst, control_client
    [agents.NAME] an agent profile (delivery/profiles.py): programs, command, prompt, continuation,
                  placeholder, collapsed, busy, above, above_rows, tail_rows, settle_s,
                  enters; a built-in NAME (claude, gemini, codex, ipython, python) changes
                  only the keys given
    [[checkin]]   declarative check-ins: name, match (session / window patterns, or role;
                  ignore_case), every or cron (+ tz), message, grace, catch_up, jitter

A ``cron`` entry runs in its ``tz``, else in the system's zone, as ``asched add --cron`` does
without ``--tz``: one rule for the same words wherever they are written.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asched.core.errors import UsageError
from asched.core.logs import LEVELS
from asched.core.models import CatchUp

# The daemon reads this file before READY. With no file (the defaults) or a short one, the
# parsers of times, cron rules, agent profiles and message bodies are not needed, so they are
# imported where a table uses them: about 6 ms less before READY (docs/ARCHITECTURE.md).
if TYPE_CHECKING:
    from asched.delivery.profiles import Profile

DEFAULT_DRAIN_TIMEOUT_S = 5.0
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class Delivery:
    """The ``[delivery]`` table: how messages are typed (see asched.delivery)."""

    prefix: str = ""
    settle_s: float = 0.5
    settle_by_program: tuple[tuple[str, float], ...] = ()
    shells: tuple[str, ...] | None = None  # None: the built-in list
    copy_mode: str = "wait"
    min_gap_s: float = 0.5
    rate_per_s: float = 50.0
    burst: int = 500
    # One persistent tmux control-mode client per server (read at start; see asched/tmux).
    control_client: bool = True


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``[[checkin]]``: a check-in for every tmux window that matches."""

    name: str
    message: str
    every_s: int | None = None
    cron: str | None = None
    # None: the system's zone when the check-in is made (daemon/fleet.py), as `asched add --cron`.
    tz: str | None = None
    session: str = "*"  # fnmatch pattern on the session name
    window: str = "*"  # fnmatch pattern on the window name
    role: str | None = None  # matches a window whose @asched_role option equals it
    ignore_case: bool = False  # patterns and role match whatever the case ("Developer")
    grace_s: float = 300.0
    catch_up: CatchUp = CatchUp.SKIP
    jitter_s: float = 0.0

    def matches(self, session: str, window: str, role: str) -> bool:
        """True when a window (by session name, window name and @asched_role) is this entry's."""
        fold = str.casefold if self.ignore_case else str
        if self.role is not None:
            return fold(role) == fold(self.role) and fnmatch.fnmatchcase(
                fold(session), fold(self.session)
            )
        return fnmatch.fnmatchcase(fold(session), fold(self.session)) and fnmatch.fnmatchcase(
            fold(window), fold(self.window)
        )


def _builtin_profiles() -> tuple[Profile, ...]:
    from asched.delivery.profiles import BUILTIN  # lazy: see the imports

    return BUILTIN


@dataclass(frozen=True, slots=True)
class Config:
    """The whole file, validated."""

    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    log_level: str | None = None
    delivery: Delivery = field(default_factory=Delivery)
    checkins: tuple[Entry, ...] = ()
    agents: tuple[Profile, ...] = field(default_factory=_builtin_profiles)
    agent_tables: tuple[str, ...] = ()  # the [agents.NAME] tables the file gives
    source: Path | None = None


class _Where:
    """Names a place in the file: ``path:line: [table]`` (tomllib keeps no positions)."""

    def __init__(self, text: str, source: Path | None) -> None:
        self.lines = text.splitlines()
        self.name = str(source) if source else "config"

    def table(self, header: str, nth: int = 0) -> str:
        seen = -1
        for n, line in enumerate(self.lines, 1):
            if line.strip().replace(" ", "") == header:
                seen += 1
                if seen == nth:
                    return f"{self.name}:{n}: {header}"
        return f"{self.name}: {header}"


def _known(table: dict[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(table) - keys)
    if unknown:
        raise UsageError(f"{where}: unknown key(s): {', '.join(unknown)}")


def _number(table: dict[str, Any], key: str, where: str, low: float, high: float) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise UsageError(f"{where}: {key} must be a number from {low:g} to {high:g}, not {value!r}")
    return float(value)


def _text(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str | None:
    value = table.get(key, default)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{where}: {key} must be a string, not {value!r}")
    return value


def _duration(table: dict[str, Any], key: str, where: str) -> int | None:
    value = _text(table, key, where)
    if value is None:
        return None
    from asched.core.triggers import parse_duration  # lazy: see the imports

    try:
        return parse_duration(value)
    except UsageError as exc:
        raise UsageError(f"{where}: {key}: {exc}") from None


def _daemon(data: dict[str, Any], w: _Where) -> tuple[float, str | None]:
    table = data.get("daemon", {})
    where = w.table("[daemon]")
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table")
    _known(table, {"drain_timeout_s", "log_level"}, where)
    drain = _number(table, "drain_timeout_s", where, 0.0, 300.0)
    level = _text(table, "log_level", where)
    if level is not None and level.lower() not in LEVELS:
        raise UsageError(f"{where}: log_level must be one of {', '.join(LEVELS)}, not {level!r}")
    return (DEFAULT_DRAIN_TIMEOUT_S if drain is None else drain), (level.lower() if level else None)


def _delivery(data: dict[str, Any], w: _Where) -> Delivery:
    table = data.get("delivery", {})
    where = w.table("[delivery]")
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table")
    keys = {f for f in Delivery.__dataclass_fields__}
    _known(table, keys, where)
    d = Delivery()
    by_program = table.get("settle_by_program", {})
    if not isinstance(by_program, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 30
        for v in by_program.values()
    ):
        raise UsageError(f"{where}: settle_by_program maps program names to 0-30 seconds")
    shells = table.get("shells")
    if shells is not None and (
        not isinstance(shells, list) or not all(isinstance(s, str) and s for s in shells)
    ):
        raise UsageError(f"{where}: shells must be a list of program names")
    copy_mode = _text(table, "copy_mode", where, d.copy_mode)
    if copy_mode not in ("wait", "cancel"):
        raise UsageError(f'{where}: copy_mode must be "wait" or "cancel", not {copy_mode!r}')
    burst = _number(table, "burst", where, 1, 100_000)
    settle = _number(table, "settle_s", where, 0.0, 30.0)
    gap = _number(table, "min_gap_s", where, 0.0, 3600.0)
    rate = _number(table, "rate_per_s", where, 0.01, 10_000.0)
    control_client = table.get("control_client", d.control_client)
    if not isinstance(control_client, bool):
        raise UsageError(f"{where}: control_client must be true or false")
    prefix = _text(table, "prefix", where, d.prefix) or ""
    if prefix:
        from asched.tmux.targets import check_body  # lazy: see the imports

        try:
            check_body(prefix)
        except UsageError as exc:
            raise UsageError(f"{where}: prefix: {exc}") from None
    return Delivery(
        prefix=prefix,
        settle_s=d.settle_s if settle is None else settle,
        settle_by_program=tuple((str(k), float(v)) for k, v in by_program.items()),
        shells=tuple(shells) if shells is not None else None,
        copy_mode=copy_mode,
        min_gap_s=d.min_gap_s if gap is None else gap,
        rate_per_s=d.rate_per_s if rate is None else rate,
        burst=d.burst if burst is None else int(burst),
        control_client=control_client,
    )


_COUNTS = {"enters": (1, 5), "above_rows": (1, 10), "tail_rows": (0, 100)}


def _agents(data: dict[str, Any], w: _Where) -> tuple[Profile, ...]:
    """``[agents.NAME]`` tables merged over the built-in profiles (see asched.delivery.profiles)."""
    tables = data.get("agents", {})
    if not isinstance(tables, dict):
        raise UsageError(f"{w.name}: agents must be tables like [agents.myagent]")
    if not tables:
        return _builtin_profiles()
    from asched.delivery.profiles import BUILTIN, PATTERNS, merged  # lazy: see the imports

    agent_keys = {*PATTERNS, *_COUNTS, "programs", "placeholder", "settle_s"}
    builtin = {p.name for p in BUILTIN}
    overrides: dict[str, dict[str, object]] = {}
    for name, table in tables.items():
        where = w.table(f"[agents.{name}]")
        if not isinstance(table, dict) or not _NAME.fullmatch(name):
            raise UsageError(f"{where}: a table named 1-64 of A-Z a-z 0-9 _ . -")
        _known(table, agent_keys, where)
        keys: dict[str, object] = {}
        for key in PATTERNS:
            pattern = _text(table, key, where)
            if pattern is not None:
                keys[key] = _pattern(pattern, key, where)
                if (
                    key in ("prompt", "continuation")
                    and "text" not in re.compile(pattern).groupindex
                ):
                    raise UsageError(f"{where}: {key} needs a (?P<text>...) group: the typed text")
        for key in ("programs", "placeholder"):
            value = table.get(key)
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise UsageError(f"{where}: {key} must be a list of non-empty strings")
            if key == "programs" and not value:
                raise UsageError(f"{where}: programs must name at least one program")
            keys[key] = tuple(_pattern(v, key, where) for v in value)
        settle = _number(table, "settle_s", where, 0.0, 30.0)
        if settle is not None:
            keys["settle_s"] = settle
        for key, (low, high) in _COUNTS.items():
            count = table.get(key)
            if count is None:
                continue
            if isinstance(count, bool) or not isinstance(count, int) or not low <= count <= high:
                raise UsageError(f"{where}: {key} must be a whole number from {low} to {high}")
            keys[key] = count
        if name not in builtin and not keys.get("programs"):
            raise UsageError(f"{where}: a new agent profile needs programs = [...]")
        overrides[name] = keys
    return merged(overrides) if overrides else BUILTIN


def _pattern(value: str, key: str, where: str) -> str:
    if not value:
        raise UsageError(f"{where}: {key} must not be empty")
    try:
        re.compile(value)
    except re.error as exc:
        raise UsageError(f"{where}: {key} is not a regular expression: {exc}") from None
    return value


_ENTRY_KEYS = {
    "name", "message", "every", "cron", "tz", "match", "grace", "catch_up", "jitter",
}  # fmt: skip


def _entry(raw: Any, nth: int, w: _Where) -> Entry:
    where = w.table("[[checkin]]", nth)
    if not isinstance(raw, dict):
        raise UsageError(f"{where} must be a table")
    _known(raw, _ENTRY_KEYS, where)
    name = _text(raw, "name", where)
    if name is None or not _NAME.fullmatch(name):
        raise UsageError(f"{where}: name is required: 1-64 of A-Z a-z 0-9 _ . -")
    where = f"{where} {name!r}"
    message = _text(raw, "message", where)
    if not message or not message.strip():
        raise UsageError(f"{where}: message is required")
    from asched.core.cron import parse_cron  # lazy: see the imports
    from asched.core.triggers import parse_zone
    from asched.tmux.targets import check_body

    try:
        check_body(message)  # the daemon would refuse to type it: say so now, with the line
    except UsageError as exc:
        raise UsageError(f"{where}: message: {exc}") from None
    every = _duration(raw, "every", where)
    cron = _text(raw, "cron", where)
    if (every is None) == (cron is None):
        raise UsageError(f"{where}: give exactly one of every or cron")
    if every is not None and every < 1:
        raise UsageError(f"{where}: every must be at least 1s")
    tz = _text(raw, "tz", where) or None
    try:
        if cron is not None:
            parse_cron(cron)
        if tz is not None:
            parse_zone(tz)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    match = raw.get("match", {})
    if not isinstance(match, dict):
        raise UsageError(f'{where}: match must be a table like {{ session = "proj-*" }}')
    _known(match, {"session", "window", "role", "ignore_case"}, f"{where} match")
    ignore_case = match.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        raise UsageError(f"{where} match: ignore_case must be true or false")
    catch_up = _text(raw, "catch_up", where, "skip")
    if catch_up not in ("skip", "once"):
        raise UsageError(f'{where}: catch_up must be "skip" or "once"')
    grace = _duration(raw, "grace", where)
    jitter = _duration(raw, "jitter", where)
    return Entry(
        name=name,
        message=message,
        every_s=every,
        cron=cron,
        tz=tz,
        session=_text(match, "session", where, "*") or "*",
        window=_text(match, "window", where, "*") or "*",
        role=_text(match, "role", where),
        ignore_case=ignore_case,
        grace_s=300.0 if grace is None else float(grace),
        catch_up=CatchUp(catch_up),
        jitter_s=0.0 if jitter is None else float(jitter),
    )


def parse(text: str, source: Path | None = None) -> Config:
    """Validate TOML ``text``; raises UsageError naming the file and line."""
    import tomllib  # lazy: see the imports (no file, no parser)

    w = _Where(text, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{w.name}: {exc}") from exc
    _known(data, {"daemon", "delivery", "checkin", "agents"}, w.name)
    drain, level = _daemon(data, w)
    raw_entries = data.get("checkin", [])
    if not isinstance(raw_entries, list):
        raise UsageError(f"{w.name}: checkin must be written [[checkin]] (an array of tables)")
    entries = tuple(_entry(raw, n, w) for n, raw in enumerate(raw_entries))
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"{w.name}: [[checkin]] names must be unique: {', '.join(dupes)}")
    return Config(
        drain_timeout_s=drain,
        log_level=level,
        delivery=_delivery(data, w),
        checkins=entries,
        agents=_agents(data, w),
        agent_tables=tuple(data.get("agents", {})),
        source=source,
    )


def load(path: Path) -> Config:
    """Read and validate ``path``; defaults when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _unread(path, exc)
    return parse(text, path)


async def aload(path: Path) -> Config:
    """:func:`load` for the daemon's event loop (start-up and every reload).

    The file is read through aiofiles, in a worker thread: a config file on a filesystem that
    hangs (an NFS home, a dying disk) holds up the reload, never the deliveries on the loop or
    the watchdog's pings. A read costs about 0.1 ms more this way (docs/ARCHITECTURE.md).
    """
    import aiofiles  # here: the command line's users of this module need no asyncio

    try:
        async with aiofiles.open(path, encoding="utf-8") as fh:
            text = await fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        return _unread(path, exc)
    return parse(text, path)


def _unread(path: Path, exc: OSError | UnicodeDecodeError) -> Config:
    """No file is the defaults; any other failure to read it is an error."""
    if isinstance(exc, FileNotFoundError):
        return Config(source=None)
    raise UsageError(f"{path}: cannot read config: {exc}") from exc
