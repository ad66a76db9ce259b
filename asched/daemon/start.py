"""The daemon in a process of its own: what ``asched daemon`` and ``python -m asched --daemon`` run.

Light to import: the command line imports it, and :class:`DaemonOptions` from
:mod:`asched.daemon.options`, before anything of the daemon's, so that :func:`serve` can turn the
cyclic garbage collector off before the daemon's imports. Nearly everything they allocate lives
as long as the process, so the collections they set off free next to nothing; skipping them took
spawn -> READY from 92.1 to 86.8 ms (median of 15, this project's 2-core machine). The collector
is on again from READY (:func:`asched.daemon.process.run`).
"""

from __future__ import annotations

import gc

from asched.daemon.options import DaemonOptions


def serve(options: DaemonOptions) -> int:
    """Run the daemon with the scheduling service, then end the process with its exit code.

    Does not return (:func:`asched.daemon.process.run` ends the process), except where a test
    put a :func:`process.run` of its own in place: then its result.
    """
    gc.disable()  # on again at READY (see the module's docstring)
    try:
        # The daemon itself, imported now: see the module's docstring.
        from asched.daemon import process
        from asched.daemon.wiring import scheduling

        # Through the module's name, so that a test's process.run (faultd.py) is the one used.
        return process.run(options, {"scheduling": scheduling})
    finally:
        gc.enable()  # only if process.run raised, or was a test's that returns
