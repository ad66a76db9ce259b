"""What the command families share: the clock, the state directory and its database, waking the
daemon, the tmux socket option, and one-line error text.

The store, the daemon's control socket, the published state directory and the tmux look-up are
imported inside the functions that use them: the parser loads this module for every command
line, and each command needs only some of them (the store costs about 10 ms, the look-up a few).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from asched.core import paths
from asched.core.errors import AschedError, StoreError

if TYPE_CHECKING:
    from asched.cli.lookup import Found
    from asched.store.store import Store

MAX_ERROR_CHARS = 1000  # an error that echoes a 1 MiB argument shows its start and its end


def error_line(text: str) -> str:
    """``text`` with control characters and lone surrogates escaped, so it stays one line, and
    cut in the middle when it is longer than MAX_ERROR_CHARS."""
    if len(text) > MAX_ERROR_CHARS:
        half = MAX_ERROR_CHARS // 2
        text = f"{text[:half]} [{len(text) - 2 * half} characters cut] {text[-half:]}"
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def current_time() -> datetime:
    """The current time, in UTC, to the store's precision."""
    # Milliseconds, the store's precision: "--in 1s" means a second from now, not from the
    # start of the current second (which could be a few milliseconds away).
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def help_width() -> int:
    """The width argparse's help formatter takes, ``shutil.get_terminal_size().columns - 2``
    ($COLUMNS, else the terminal's, else 80), worked out as shutil does it but without importing
    shutil, which argparse does to ask (shutil imports zlib, bz2 and lzma: 2 ms of every command).
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns - 2


def state_dir_option(
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The ``--state-dir`` option every subcommand takes (a parent parser of ``parser_class``)."""
    common = parser_class(add_help=False)
    common.add_argument(
        "--state-dir",
        metavar="DIR",
        help="state directory (database and lock); default: see `asched --help`",
    )
    return common


def state_dir(args: argparse.Namespace) -> Path:
    """The state directory of a command line's ``--state-dir``, else the environment's, else
    the one a running daemon of this user published (:mod:`asched.daemon.published`)."""
    from asched.daemon import published  # lazy: see the module's docstring

    return published.cli_state_dir(args.state_dir)


def tmux_socket(args: argparse.Namespace) -> str | None:
    """The tmux socket of ``--tmux-socket``, else ``$ASCHED_TMUX_SOCKET``; None: tmux's default."""
    return paths.tmux_socket_setting(args.tmux_socket)


def open_existing(state: Path) -> Store | None:
    """The store if its database exists, else None; never creates anything."""
    from asched.cli.daemondb import refuse_foreign_db  # lazy: see the module's docstring
    from asched.store.store import Store

    db = state / paths.DB_NAME
    try:
        exists = db.is_file()
    except OSError as exc:  # e.g. a state directory we may not enter
        raise StoreError(f"cannot look at {db}: {exc.strerror or exc}") from exc
    refuse_foreign_db(state)
    return Store.open(db) if exists else None


def open_for_write(state: Path) -> Store:
    """The store, creating the state directory and the database when they are missing."""
    from asched.cli.daemondb import refuse_foreign_db  # lazy: see the module's docstring
    from asched.store.store import Store

    paths.ensure_state_dir(state)
    refuse_foreign_db(state)
    return Store.open(state / paths.DB_NAME)


def nowhere_text(state: Path, target: str, found: Found | None = None) -> str | None:
    """The one-line warning for a ``target`` that names no pane on the daemon's tmux server now
    (stored anyway: sessions come and go), else None. ``found``: a look-up already made."""
    from asched.cli import lookup  # lazy: see the module's docstring

    socket = lookup.tmux_socket(state, lookup.environ())
    found = found if found is not None else lookup.look_up(target, socket)
    return lookup.warning(target, found, socket)


def warn_if_nowhere(state: Path, target: str, found: Found | None = None) -> None:
    """:func:`nowhere_text` on stderr, when there is one."""
    text = nowhere_text(state, target, found)
    if text is not None:
        print(f"asched: {text}", file=sys.stderr)


def wake(state: Path) -> bool:
    """Tell a running daemon to re-plan; True when one answered. An idle daemon sleeps until its
    next due time, however far: what it is not told, it sees at its next wake-up (see
    :func:`wake_or_warn`)."""
    from asched.daemon import control  # lazy: see the module's docstring

    # Written is told: a busy daemon reads the line when it gets the CPU.
    return control.send(state, "wake", queued_is_told=True)


def wake_or_warn(state: Path) -> str | None:
    """:func:`wake`; then None when a daemon runs on ``state`` and was told (or is starting, and
    reads the store at its first pass), else one line: :func:`no_daemon_text`, or that the
    running daemon did not answer (it would see the write only at its next wake-up)."""
    if wake(state):
        return None
    text = no_daemon_text(state)
    if text is not None:
        return text
    from asched.daemon.lock import LOCK_NAME, read_holder  # lazy: see the module's docstring

    holder = read_holder(state / LOCK_NAME)
    if not holder.socket:
        return None  # starting: its control socket comes before its first read of the store
    pid = f" (pid {holder.pid})" if holder.pid else ""
    hup = f"kill -HUP {holder.pid}" if holder.pid else "asched reload"
    return (
        f"the daemon on {state}{pid} did not answer its wake-up, so it sees this only at its"
        f" next one; {hup} makes it re-read the schedule now"
    )


def no_daemon_text(state: Path) -> str | None:
    """None when a daemon holds ``state``'s lock; else one line: nothing will deliver what was
    just stored there until a daemon starts, and how to start the right one."""
    from asched.daemon import published  # lazy: see the module's docstring

    if published.serves_us(state):
        return None
    return (
        f"no daemon is running on {state}, so nothing will deliver this yet;"
        f" start one: {start_hint(state)}"
    )


def warn_if_no_daemon(text: str | None) -> None:
    """A :func:`wake_or_warn` warning on stderr, when there is one."""
    if text is not None:
        print(f"asched: {text}", file=sys.stderr)


def start_hint(state: Path) -> str:
    """The command that starts the daemon for ``state``: the installed unit's when the state
    directory is that unit's, else ``asched daemon`` (with ``--state-dir`` when needed)."""
    import shlex  # lazy: only when warning

    from asched.install.scope import scope_for

    try:
        scope = scope_for(None)
    except AschedError:  # a uid with no passwd entry: no unit can be ours
        return f"asched daemon --state-dir {shlex.quote(str(state))}"
    template = Path(f"/var/lib/asched/{scope.user}")  # StateDirectory= of asched@USER
    if state == template:
        return f"sudo systemctl start asched@{scope.user}"
    if state != paths.default_state_dir():
        return f"asched daemon --state-dir {shlex.quote(str(state))}"
    if scope.unit_file.is_file():
        return "systemctl --user start asched"
    if template.is_dir():
        # The template's daemon is stopped, so this went to the default directory, which that
        # daemon never reads: say so, or the user starts it and waits for nothing.
        return (
            f"asched daemon; or sudo systemctl start asched@{scope.user}, then add it again"
            f" (that daemon reads {template})"
        )
    return "asched daemon (or as a service: asched install-service --user)"
