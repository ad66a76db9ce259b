"""One persistent tmux control-mode client: commands written to its stdin, replies read back.

A one-shot client costs a process start per call (about 1.3 ms, docs/BENCHMARKS.md); a command
written to an attached control client (``tmux -C``) is answered in about 0.05 ms. The daemon keeps
one such connection per server and falls back to one-shot clients whenever it is not up
(client.py); nothing about what a call means changes with the path it takes.

Facts this module relies on (tmux 3.3a, docs/TMUX-CONTROL.md has the experiments):

- A control client must attach to a session (``attach-session -t ID -f no-output,ignore-size``);
  one started with another command exits when the command is done. Attached, it counts in
  ``#{session_attached}`` and fires client hooks; ``ignore-size`` keeps it out of window sizes,
  ``no-output`` stops pane output from being sent to it. It keeps no server alive: when its
  session or the server goes, it prints ``%exit`` and ends.
- Each command of a line gets its own reply block: ``%begin TIME NUMBER FLAGS``, the output lines
  as they are (not escaped), then ``%end`` or ``%error`` with the same three fields. Flags 1 mark
  a command from this client; the attach command itself is answered with flags 0. A command list
  stops at the first failing command, and some commands (``if-shell``) add blocks of their own, so
  the number of blocks of a line is not known in advance: each call is followed by a line of its
  own, ``display-message -p MARK``, and the call's reply is every block up to the one that prints
  its mark. The end of a block must repeat its begin's three fields exactly, so pane text read by
  ``capture-pane`` that looks like ``%end`` cannot close a block unless it carries that very time
  and command number.
- A command line goes through tmux's command parser. Inside single quotes every character is
  literal, ``$ ~ # { } ; \\`` included; inside double quotes only ``\\``, ``"`` and ``$`` need a
  backslash, and a leading ``~`` is still a home directory. A raw line break ends the command
  line even inside quotes (the rest would run as a command of its own) and a NUL cuts an
  argument short: a call with either takes the one-shot path (client.py). (Octal escapes could
  carry them; a one-shot client is simpler and these calls are rare.)
- Commands written while the server is frozen (SIGSTOP) run when it resumes, in order: a call
  that timed out may still happen, exactly as with a one-shot client whose process was killed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from asched.core.logs import get_logger
from asched.tmux.errors import TmuxError, TmuxTimeout
from asched.tmux.runner import CompletedCall

log = get_logger()

ATTACH_FLAGS = "no-output,ignore-size"
# Room for the largest reply asched asks for (100 screens of a few hundred rows) many times over;
# a reply is never held back by this, it only bounds a line that never ends.
_MAX_PARTIAL = 16 * 1024 * 1024


class ControlLost(TmuxTimeout):
    """The control client ended with the call in flight: whether tmux ran it is unknown (as for
    a one-shot client that timed out)."""


def control_line(args: Sequence[str]) -> bytes | None:
    """``args`` (commands separated by ``";"`` arguments, as for a one-shot client) as one
    control-mode command line, or None when an argument cannot be carried by quoting."""
    words = []
    for arg in args:
        if arg == ";":
            words.append(";")
            continue
        if "\n" in arg or "\r" in arg or "\0" in arg:
            return None
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: bytes that were not UTF-8
            return None
        if "'" not in arg:
            words.append(f"'{arg}'")
        elif arg.startswith("~"):
            return None  # a leading ~ is a home directory even in double quotes
        else:
            # In double quotes only \, " and $ are special (the guards' commands quote their
            # marks with ').
            escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
            words.append(f'"{escaped}"')
    return " ".join(words).encode("utf-8")


@dataclass(slots=True)
class _Call:
    """One call in flight: its mark, and the blocks read for it so far."""

    args: tuple[str, ...]
    mark: bytes
    future: asyncio.Future[CompletedCall]
    out: list[bytes] = field(default_factory=list)
    err: list[bytes] = field(default_factory=list)


class _Pipes(asyncio.SubprocessProtocol):
    """Hands the client's stdout to its connection, and tells it when the client is gone."""

    def __init__(self, conn: ControlConnection) -> None:
        self.conn = conn

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self.conn.feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.conn.lost("its output closed")

    def process_exited(self) -> None:
        self.conn.lost("it exited")
        self.conn.reaped()


class ControlConnection:
    """A ``tmux -C`` client attached to one session of one server. Use :meth:`open`."""

    def __init__(self, session: str) -> None:
        self.session = session
        self.pid: int | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._calls: collections.deque[_Call] = collections.deque()
        self._partial = b""
        # The block being read: its "TIME NUMBER FLAGS", its lines, whether it is ours.
        self._block: bytes | None = None
        self._lines: list[bytes] = []
        loop = asyncio.get_running_loop()
        self._attached: asyncio.Future[None] = loop.create_future()
        self.exited: asyncio.Future[None] = loop.create_future()
        self._token = secrets.token_hex(8)
        self._seq = 0
        self.alive = False
        self.why_lost = ""
        # Loop times of the attach and of the end: a client that lives only moments makes its
        # owner back off before the next attach (a hook that detaches every new client).
        self.attached_at = 0.0
        self.lost_at: float | None = None

    @classmethod
    async def open(
        cls,
        prefix: Sequence[str],
        session: str,
        env: dict[str, str],
        timeout_s: float,
    ) -> ControlConnection:
        """Start ``PREFIX -C attach-session -t SESSION -f no-output,ignore-size`` and wait until
        tmux has answered the attach. Raises :class:`TmuxError` (and leaves no process) when it
        does not attach within ``timeout_s``."""
        conn = cls(session)
        argv = [*prefix, "-C", "attach-session", "-t", session, "-f", ATTACH_FLAGS]
        loop = asyncio.get_running_loop()
        transport, _ = await loop.subprocess_exec(
            lambda: _Pipes(conn),
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            # Its own session, as for every tmux client of ours: a Ctrl-C at a foreground
            # daemon's terminal must not end it before the daemon's drain has used it.
            start_new_session=True,
        )
        conn._transport = transport
        conn.pid = transport.get_pid()
        try:
            try:
                await asyncio.wait_for(asyncio.shield(conn._attached), timeout_s)
            except TimeoutError:
                raise TmuxTimeout(
                    f"tmux control client: no attach within {timeout_s:g} s"
                ) from None
            if conn.why_lost:
                # It ended in the turns between its attach and now (a hook detached it, its
                # session went): never hand out a connection that is already gone.
                raise TmuxError(f"tmux control client ended at once: {conn.why_lost}")
        except BaseException:
            await conn.aclose()
            raise
        conn.alive = True
        conn.attached_at = loop.time()
        return conn

    def reaped(self) -> None:
        """The process has exited: release its pipes."""
        if self._transport is not None:
            self._transport.close()
        if not self.exited.done():
            self.exited.set_result(None)

    def close(self) -> None:
        """End the client now (it detaches; the server and its sessions are untouched). Calls
        in flight raise :class:`ControlLost`. The process is reaped by the loop later: prefer
        :meth:`aclose`."""
        self.lost("closed")
        if self._transport is not None:
            # Closing a subprocess transport kills the process if it still runs.
            self._transport.close()

    async def aclose(self, grace_s: float = 0.5) -> None:
        """End the client and wait until it has exited: its stdin is closed first (tmux detaches
        it cleanly), then, after ``grace_s``, it is killed."""
        self.lost("closed")  # closes its stdin
        if self._transport is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), grace_s)
        self._transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), grace_s)

    async def run(
        self, args: tuple[str, ...], line: bytes, timeout_s: float, what: str = ""
    ) -> CompletedCall:
        """Send ``line`` (made by :func:`control_line` from ``args``); its reply as a one-shot
        client would give it: the commands' output, rc 1 and the error text when one failed.

        Raises :class:`TmuxTimeout` after ``timeout_s`` (the command may still run later) and
        :class:`ControlLost` when the client ends first.
        """
        return await self.reply(self.send(args, line), args, timeout_s, what)

    def send(
        self, args: tuple[str, ...], line: bytes, *, yield_cpu: bool = False
    ) -> asyncio.Future[CompletedCall]:
        """Write ``line`` now, before returning; the future of its reply (see :meth:`reply`).

        ``yield_cpu``: give up the CPU right after the write. A pipe's wake-up is "sync": the
        kernel puts the tmux server it wakes on this core, expecting the writer to sleep next;
        yielding lets the server run the command now rather than after this process's next
        work (0.1-0.4 ms on two cores, docs/BENCHMARKS.md). Raises :class:`ControlLost` when
        the client is gone or the write fails: then nothing was written, and the call did not
        happen.
        """
        if not self.alive or self._transport is None:
            raise ControlLost(f"tmux control client gone ({self.why_lost})")
        self._seq += 1
        mark = f"asched-{self._token}-{self._seq}".encode()
        future: asyncio.Future[CompletedCall] = asyncio.get_running_loop().create_future()
        # uvloop's pipe transports do not derive from asyncio's classes: no isinstance check.
        stdin = cast(asyncio.WriteTransport | None, self._transport.get_pipe_transport(0))
        try:
            if stdin is None or stdin.is_closing():
                raise ConnectionError("its stdin is closed")
            stdin.write(line + b"\ndisplay-message -p '" + mark + b"'\n")
        except (ConnectionError, RuntimeError) as exc:
            self.lost(f"write failed: {exc}")
            raise ControlLost(f"tmux control client gone ({self.why_lost})") from None
        self._calls.append(_Call(args, mark, future))
        if yield_cpu:
            os.sched_yield()
        return future

    async def reply(
        self,
        future: asyncio.Future[CompletedCall],
        args: tuple[str, ...],
        timeout_s: float,
        what: str = "",
    ) -> CompletedCall:
        """The reply of a call :meth:`send` made. Raises :class:`TmuxTimeout` after
        ``timeout_s`` (the command may still run later) and :class:`ControlLost` when the client
        ends first."""
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            # The call stays queued: its reply, when tmux wakes, is read and dropped in order.
            raise TmuxTimeout(
                f"tmux {what or ' '.join(args[:3])} took more than {timeout_s:g} s (control client)"
            ) from None

    # -- reading ------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Take a chunk of the client's output."""
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        if len(self._partial) > _MAX_PARTIAL:
            self._desync("a reply line without end")
            return
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if self._block is not None:
            if line in (b"%end " + self._block, b"%error " + self._block):
                self._end_block(error=line.startswith(b"%error"))
            else:
                self._lines.append(line)
            return
        if line.startswith(b"%begin "):
            self._block = line[len(b"%begin ") :]
            self._lines = []
        elif line == b"%exit" or line.startswith(b"%exit "):
            self.lost(line.decode("utf-8", "replace"))
        elif not line.startswith(b"%") and self._calls:
            # A file that load-buffer could not read is reported after its reply's %end, on a
            # line of its own (docs/TMUX-CONTROL.md): it belongs to the call in flight, whose
            # mark comes only after the read.
            self._calls[0].err.append(line)
        # Any other line outside a block is a notification (%session-changed, %window-add...):
        # nothing of ours depends on them.

    def _end_block(self, *, error: bool) -> None:
        header, lines = self._block, self._lines
        self._block, self._lines = None, []
        assert header is not None
        if not header.endswith(b" 1"):
            # Not from us: the attach command's own reply. It says the client is attached (an
            # attach that failed ends with %error and then %exit).
            if not self._attached.done():
                if error:
                    self._attached.set_exception(
                        TmuxError(b" ".join(lines).decode("utf-8", "replace") or "attach failed")
                    )
                else:
                    self._attached.set_result(None)
            return
        if not self._calls:
            if not self.why_lost:  # after the end, late replies have no call left: expected
                self._desync("a reply with no call waiting")
            return
        call = self._calls[0]
        if not error and lines == [call.mark]:
            self._calls.popleft()
            if not call.future.done():
                call.future.set_result(_completed(call))
            return
        (call.err if error else call.out).extend(lines)

    def _desync(self, what: str) -> None:
        # Replies can no longer be matched to calls: every call in flight is "unknown", and the
        # client is ended (the next call attaches a new one).
        log.error("tmux.control_desync", what=what, session=self.session)
        self.close()

    def lost(self, why: str) -> None:
        """The client ended (or is being ended): every call in flight raises
        :class:`ControlLost`."""
        if self.why_lost:
            return
        self.why_lost = why
        self.alive = False
        with contextlib.suppress(RuntimeError):
            self.lost_at = asyncio.get_running_loop().time()
        if not self._attached.done():
            self._attached.set_exception(TmuxError(f"tmux control client ended: {why}"))
            self._attached.exception()  # retrieved: nobody may be waiting any more
        while self._calls:
            call = self._calls.popleft()
            if not call.future.done():
                call.future.set_exception(
                    ControlLost(f"tmux control client ended ({why}): the call's outcome is unknown")
                )
        with contextlib.suppress(Exception):
            if self._transport is not None and self._transport.get_returncode() is None:
                stdin = self._transport.get_pipe_transport(0)
                if stdin is not None:
                    stdin.close()


def _completed(call: _Call) -> CompletedCall:
    """A call's blocks as a one-shot client would have printed them."""
    out = b"".join(line + b"\n" for line in call.out)
    err = b"".join(line + b"\n" for line in call.err)
    return CompletedCall(call.args, 1 if call.err else 0, out, err)
