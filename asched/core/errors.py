"""Exceptions and exit codes.

Every error a user can cause maps to one exit code and a one-line message; the CLI prints
``asched: <message>`` and never a traceback for these.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
# The database was removed or replaced under the running daemon: it stops rather than run split
# from the file the CLI writes (systemd's Restart=on-failure starts it again on the new file).
EXIT_STORE_REPLACED = 4
EXIT_LOCKED = 75  # EX_TEMPFAIL: another daemon holds the state directory


class AschedError(Exception):
    """Base of every error asched reports to a user; the process exits with ``exit_code``."""

    exit_code = EXIT_RUNTIME


class UsageError(AschedError, ValueError):
    """Bad input from the command line or a config file (exit 2, nothing written)."""

    exit_code = EXIT_USAGE


class NotFoundError(UsageError, LookupError):
    """An id or key that names no check-in."""


class StoreError(AschedError):
    """The database cannot be used as it is (corrupt, foreign, or from a newer asched)."""


class StoreReplaced(StoreError):
    """The database file at the state directory's path is not the one the daemon has open."""

    exit_code = EXIT_STORE_REPLACED


class StateDirError(AschedError):
    """The state directory is unsafe or unusable."""


class LockTimeout(AschedError, TimeoutError):
    """Another daemon still held the state directory's lock when the timeout ran out."""

    exit_code = EXIT_LOCKED

    def __init__(self, path: str, holder_pid: int | None, timeout_s: float) -> None:
        self.path = path
        self.holder_pid = holder_pid
        self.timeout_s = timeout_s
        holder = f"pid {holder_pid}" if holder_pid is not None else "an unknown process"
        super().__init__(f"{path} is held by {holder}; gave up after {timeout_s:g} s")
