"""A daemon with one test-only fault, for the watchdog tests: SIGUSR1 blocks its event loop.

The product carries no fault points. This runs asched's own command line (``python
tests/support/faultd.py --daemon ARGS``; a file path, so that a unit's ``python -P`` finds it too)
with one more service beside the scheduling one, through the ``services`` that
:func:`asched.daemon.process.run` takes.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

from asched.core.logs import get_logger
from asched.daemon import process

FAULTD = Path(__file__).resolve()  # run it as a file: ``python FAULTD --daemon ...``

log = get_logger()
_real_run = process.run


async def block_loop_on_usr1(ctx: Any, started: asyncio.Event) -> None:
    """A service whose SIGUSR1 handler stops the event loop from turning (for an hour)."""

    def block() -> None:
        log.warning("fault.block_loop")
        time.sleep(3600)  # deliberate: the watchdog must notice a loop that stops turning

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, block)
    started.set()
    await ctx.stopping.wait()


def _run_with_fault(options: process.DaemonOptions, services: dict[str, Any]) -> int:
    return _real_run(options, {**services, "fault": block_loop_on_usr1})


if __name__ == "__main__":
    from asched.cli.main import run_module

    process.run = _run_with_fault  # the command line's daemon runs through this name
    sys.exit(run_module(sys.argv[1:]))
