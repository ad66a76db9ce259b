"""A wake-up at a wall-clock time that also comes when the wall clock is set: a Linux timerfd.

The scheduler sleeps until the next check-in is due, which may be hours away. A sleep on the
event loop counts monotonic time, which does not see the wall clock being set (NTP stepping a
clock that was wrong at boot, an admin's ``date -s``) nor time spent suspended, so a long sleep
would end late by the size of the jump. Polling the wall clock (every 30 s, as asched once did)
costs an idle daemon a wake-up each time. A timerfd on ``CLOCK_REALTIME`` armed with
``TFD_TIMER_ABSTIME`` fires when the wall clock reaches the due time, however it got there
(slewed, stepped forward, a resume), and with ``TFD_TIMER_CANCEL_ON_SET`` it fires as well, at
once, when the clock is set, backwards included (the kernel reports that as ``ECANCELED``): the
scheduler then runs a pass and re-arms, and needs no cap on its sleep. This is how systemd's own
calendar timers follow the wall clock.

Python has ``os.timerfd_*`` from 3.13; on 3.11 and 3.12 the same two calls go through ctypes
(glibc has had them since 2.8). Nothing here runs before READY: ctypes is imported when the
scheduler first sleeps.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable
from typing import Final

CLOCK_REALTIME: Final = time.CLOCK_REALTIME
# The kernel defines TFD_NONBLOCK and TFD_CLOEXEC as O_NONBLOCK and O_CLOEXEC; both settime
# flags are the same on every architecture (linux/timerfd.h).
TFD_NONBLOCK: Final = os.O_NONBLOCK
TFD_CLOEXEC: Final = os.O_CLOEXEC
TFD_TIMER_ABSTIME: Final = 1
TFD_TIMER_CANCEL_ON_SET: Final = 2
_FAR_S: Final = 366 * 86400.0  # "never": armed anyway, for the clock-set notice


if sys.version_info >= (3, 13):

    def _create() -> int:
        return os.timerfd_create(CLOCK_REALTIME, flags=TFD_NONBLOCK | TFD_CLOEXEC)

    def _set_abs(fd: int, epoch_ns: int) -> None:
        os.timerfd_settime_ns(
            fd, flags=TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, initial=epoch_ns
        )

else:
    _Impl = tuple[Callable[[], int], Callable[[int, int], None]]
    _impl: _Impl | None = None

    def _ctypes_impl() -> _Impl:
        import ctypes  # here: a few ms that only the scheduler's first sleep pays, after READY

        class Timespec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

        class Itimerspec(ctypes.Structure):
            _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]

        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_create.restype = ctypes.c_int
        libc.timerfd_settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(Itimerspec),
            ctypes.POINTER(Itimerspec),
        ]
        libc.timerfd_settime.restype = ctypes.c_int

        def failed() -> OSError:
            err = ctypes.get_errno()
            return OSError(err, os.strerror(err))

        def create() -> int:
            fd = int(libc.timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC))
            if fd < 0:
                raise failed()
            return fd

        def set_abs(fd: int, epoch_ns: int) -> None:
            spec = Itimerspec(Timespec(0, 0), Timespec(*divmod(epoch_ns, 1_000_000_000)))
            flags = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
            if libc.timerfd_settime(fd, flags, ctypes.byref(spec), None) != 0:
                raise failed()

        return create, set_abs

    def _bound() -> _Impl:
        global _impl
        if _impl is None:
            _impl = _ctypes_impl()
        return _impl

    def _create() -> int:
        return _bound()[0]()

    def _set_abs(fd: int, epoch_ns: int) -> None:
        _bound()[1](fd, epoch_ns)


class WallTimer:
    """One ``CLOCK_REALTIME`` timerfd: readable at the armed wall time, or when the clock is set.

    Watch :meth:`fileno` for reading (``loop.add_reader``), then call :meth:`collect`.
    """

    def __init__(self) -> None:
        self._fd: int | None = _create()

    def fileno(self) -> int:
        """The timerfd, for the event loop to watch."""
        if self._fd is None:
            raise ValueError("the timer is closed")
        return self._fd

    def arm(self, epoch_s: float | None) -> None:
        """Fire at wall time ``epoch_s`` (now, if it has passed), or only on a clock set (None).

        Re-arming also clears a clock-set notice not yet collected.
        """
        when = time.time() + _FAR_S if epoch_s is None else max(epoch_s, 1e-9)
        _set_abs(self.fileno(), int(when * 1e9))

    def collect(self) -> str | None:
        """What made the timer readable: ``"due"``, ``"clock-set"``, or None (nothing yet)."""
        try:
            os.read(self.fileno(), 8)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno == errno.ECANCELED:
                return "clock-set"
            raise
        return "due"

    def close(self) -> None:
        """Close the timerfd (again: nothing)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
