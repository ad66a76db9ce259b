"""The one data-access layer for the CLI and the daemon: the schedule and the delivery journal.

:class:`Store` is synchronous and thread-bound (the CLI uses it directly). :class:`AsyncStore` runs
a Store on one dedicated thread so that a slow fsync never stalls the daemon's event loop.

Every write is one short ``BEGIN IMMEDIATE`` transaction and no method leaves a transaction open:
the delivery engine calls tmux between two journal transitions, and a transaction held across that
would make every other writer wait (the old scheduler's "database is locked"). WAL lets readers
proceed during a write; the busy timeout makes concurrent writers queue instead of failing.

Decisions worth knowing (see also :mod:`asched.store.schema`):

* Adding with a ``key`` that exists replaces that check-in in place: same id and created time, every
  other field overwritten, ``last_due`` reset. The id stays so that ``history ID`` of a "replace my
  next check-in" chain stays in one place.
* An occurrence ``(check-in id, generation, due time)`` is journaled at most once, ever, even
  across a key replacement that happens to reuse a due time that was already delivered. The
  generation moves on only when :meth:`Store.reschedule` re-bases after a backward clock jump.
* A check-in whose rule is exhausted (one-shot delivered, count used up, past ``until``) stays
  as a row with ``next_due`` NULL: ``ls`` shows it as done; :meth:`Store.prune_finished` drops
  old ones.
* Removing a check-in keeps its journal rows (no cascade); their ``target`` is recorded on the row.
"""

from __future__ import annotations

from asched.store.checkins import CheckInTable
from asched.store.journal import DeliveryJournal


class Store(CheckInTable, DeliveryJournal):
    """The schedule and the delivery journal in one SQLite file; synchronous and thread-bound.

    Create it with :meth:`open`; use it from the thread that opened it. Times go in and come out as
    aware UTC datetimes; the file holds integer milliseconds.

    The file's lifecycle is :class:`~asched.store.connection.StoreConnection`'s; the check-in
    operations are :class:`~asched.store.checkins.CheckInTable`'s and the scheduling and journal
    ones :class:`~asched.store.journal.DeliveryJournal`'s, all on the one connection.
    """
