"""``asched add``'s options turned into a validated :class:`NewCheckIn`, with no I/O at all.

Everything a user can get wrong is refused here, before the store is opened, so that a usage
error (exit 2) never creates or touches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from asched.cli.views import iso
from asched.core.errors import UsageError
from asched.core.models import CatchUp, Cron, Every, NewCheckIn, Once, Rule, utc
from asched.core.paths import validate_name
from asched.core.triggers import next_due, parse_duration, parse_time, parse_zone
from asched.core.zones import local_zone_name
from asched.store.rows import checkin_params
from asched.tmux.targets import check_body, parse_target

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

__all__ = ["AddRequest", "plan_checkin"]


class AddRequest(NamedTuple):
    """The options of ``asched add`` as the user typed them (strings, nothing parsed yet)."""

    target: str
    message: str
    at: str | None = None
    in_: str | None = None
    every: str | None = None
    cron: str | None = None
    tz: str | None = None
    # --count; a field named count would hide tuple.count, which mypy refuses.
    occurrences: str | None = None
    until: str | None = None
    key: str | None = None
    grace: str = "5m"
    catch_up: str = "skip"
    jitter: str = "0s"
    if_idle: str | None = None
    when_idle: str | None = None


def _check_combination(req: AddRequest) -> None:
    """Refuse options that contradict each other, with a message that says which to drop."""
    if req.at is not None and req.in_ is not None:
        raise UsageError("--at and --in both set the first time; give one of them")
    if req.every is not None and req.cron is not None:
        raise UsageError("--every and --cron are two different rules; give one of them")
    if req.cron is not None and (req.at is not None or req.in_ is not None):
        raise UsageError("--cron sets its own times; drop --at/--in (use --until to end it)")
    repeating = req.every is not None or req.cron is not None
    if not repeating and (req.occurrences is not None or req.until is not None):
        raise UsageError("--count and --until need a repeating rule (--every or --cron)")
    if not repeating and req.at is None and req.in_ is None:
        raise UsageError("say when: --in DUR, --at TIME, --every DUR or --cron EXPR")
    if req.if_idle is not None and req.when_idle is not None:
        raise UsageError("--if-idle skips a busy pane, --when-idle waits for it; give one of them")


def _message(text: str) -> str:
    if not text.strip():
        raise UsageError("empty message")
    check_body(text)  # control characters (NUL included) and the 1 MiB limit, as tmux needs them
    return text


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or len(stripped) > 9:
        raise UsageError(f"bad --count {text!r}: expected a whole number of occurrences")
    count = int(stripped)
    if count < 1:
        raise UsageError("--count must be at least 1")
    return count


def _seconds(option: str, text: str) -> int:
    try:
        return parse_duration(text)
    except UsageError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _time(option: str, text: str, now: datetime, zone: ZoneInfo | None) -> datetime:
    try:
        return parse_time(text, now, zone)
    except UsageError as exc:
        raise UsageError(f"{option}: {exc}") from None
    except (ValueError, OverflowError, OSError):
        # Times at the edge of the calendar (9999-12-31 in a zone west of UTC) can overflow in
        # the zone conversion; whatever the cause, it is a time nobody can schedule.
        raise UsageError(f"{option}: time {text!r} is out of range") from None


def _first_time(req: AddRequest, now: datetime, zone: ZoneInfo | None) -> datetime | None:
    """The time given by --in or --at, or None when neither was given."""
    if req.in_ is not None:
        return now + timedelta(seconds=_seconds("--in", req.in_))
    if req.at is not None:
        at = _time("--at", req.at, now, zone)
        if at <= now:
            raise UsageError(f"--at {req.at!r} is in the past ({iso(at)}); nothing would happen")
        return at
    return None


def _rule(
    req: AddRequest, now: datetime, zone: ZoneInfo | None, local_zone: Callable[[], str]
) -> tuple[Rule, datetime]:
    """The rule and its first occurrence."""
    first = _first_time(req, now, zone)
    if req.cron is not None:
        from asched.core.cron import parse_cron  # lazy: `add --in` does not need it

        parse_cron(req.cron)  # a syntax error names the field; next_due would say less
        rule: Rule = Cron(req.cron, req.tz if req.tz is not None else local_zone())
        try:
            due = next_due(rule, now)
        except (ValueError, OverflowError):
            due = None  # the next match lies beyond the calendar's end: as good as never
        if due is None:
            raise UsageError(f"--cron {req.cron!r} never matches a date from now on")
        return rule, due
    if req.every is not None:
        interval = _seconds("--every", req.every)
        if interval <= 0:
            raise UsageError("--every needs an interval above zero")
        # Without --in/--at the first occurrence is one interval away, like a timer's period.
        start = first if first is not None else now + timedelta(seconds=interval)
        return Every(interval, start), start
    assert first is not None  # _check_combination asked for --in or --at
    return Once(first), first


def plan_checkin(
    req: AddRequest, now: datetime, local_zone: Callable[[], str] = local_zone_name
) -> NewCheckIn:
    """Validate ``req`` and return the check-in to store; :class:`UsageError` on any mistake.

    ``now`` is aware. Times without an offset (``--at 2026-12-01T09:00``, ``--at 09:00``,
    ``--until ...``) are wall time in ``--tz`` when given, else in the system's zone; ``--cron``
    runs in ``--tz``, else in the zone ``local_zone()`` names.
    """
    now = utc(now)
    _check_combination(req)
    target = str(parse_target(req.target))  # canonical spelling, so ls --target matches it
    message = _message(req.message)
    if req.key is not None:
        validate_name(req.key, "--key")
    zone = parse_zone(req.tz) if req.tz is not None else None
    grace_s = _seconds("--grace", req.grace)
    jitter_s = _seconds("--jitter", req.jitter)
    idle_text = req.if_idle if req.if_idle is not None else req.when_idle
    idle_s = None
    if idle_text is not None:
        option = "--if-idle" if req.if_idle is not None else "--when-idle"
        idle_s = _seconds(option, idle_text)
        if idle_s < 1:
            raise UsageError(f"{option} must be at least 1s")
    count = _count(req.occurrences)
    try:
        catch_up = CatchUp(req.catch_up)
    except ValueError:
        raise UsageError(f"bad --catch-up {req.catch_up!r}: use skip or once") from None
    rule, first = _rule(req, now, zone, local_zone)
    until = None
    if req.until is not None:
        until = _time("--until", req.until, now, zone)
        if until < first:
            raise UsageError(
                f"--until {iso(until)} is before the first occurrence {iso(first)}:"
                " nothing would ever be delivered"
            )
    new = NewCheckIn(
        target=target,
        message=message,
        rule=rule,
        next_due=first,
        key=req.key,
        grace_s=float(grace_s),
        catch_up=catch_up,
        jitter_s=float(jitter_s),
        remaining=count,
        until=until,
        idle_s=None if idle_s is None else float(idle_s),
        idle_wait=req.when_idle is not None,
    )
    # The store's own checks (time ranges, field rules), run now so the database is never opened
    # for a check-in it would refuse.
    checkin_params(new, 0)
    return new
