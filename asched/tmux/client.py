"""The low-level tmux client: resolve a target to a pane, paste a body, press Enter, look at a pane.

Mechanics only: no retries, no journal, no policy. The delivery engine builds on this.

Every tmux call is one command line of a persistent control-mode client when one is attached
(``control=True``, the daemon: see control.py), else one client process (see runner.py); both
give the same reply, and the engine cannot tell them apart. Clients are run as
``tmux -N -u [-S socket]``:

- ``-N``: never start a server, even by mistake. A server forked from the daemon would live in the
  service's cgroup and die with ``systemctl restart``.
- ``-u``: without a UTF-8 locale (systemd services usually have none) the client prints every
  non-ASCII character of a name as ``_``, so ``wörk`` would never match (measured on tmux 3.3a).

Facts this module relies on, all measured on tmux 3.3a (panes.py and guard.py name theirs):

- ``load-buffer -b NAME -`` (stdin) or ``load-buffer -b NAME FILE`` loads a body without parsing
  it; ``paste-buffer -p -d -b NAME -t %N`` pastes it and deletes the buffer in one step, so a
  buffer that is still loaded was never pasted. The body never meets a parser.
- ``paste-buffer`` turns LF into CR, like a terminal emulator's paste; a tty in canonical mode
  (ICRNL) turns it back into LF, and paste-aware programs treat CR inside a bracketed paste as a
  newline. A canonical-mode tty keeps at most 4095 bytes of a line; the kernel drops the rest.
- ``copy-mode -q`` leaves every mode (copy, view, clock, tree), needs no attached client and exits 0
  when the pane is in no mode; ``send-keys -X cancel`` cannot leave clock or tree mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asched.core.errors import UsageError
from asched.core.logs import get_logger
from asched.tmux import client_env, client_prefix, default_socket
from asched.tmux.control import ControlConnection, ControlLost, control_line
from asched.tmux.errors import (
    BufferMissing,
    ServerMissing,
    TargetMissing,
    TmuxError,
    TmuxTimeout,
    raise_for,
    server_missing,
)
from asched.tmux.guard import ENTERED, PASTED, Tagged, enter_command, paste_command, raise_for_mark
from asched.tmux.panes import (
    PaneInfo,
    Screen,
    pane_format,
    parse_panes,
    read_screen,
    screen_command,
    select_pane,
)
from asched.tmux.runner import CompletedCall, join_groups, pack_groups, run_in_thread
from asched.tmux.targets import Target, check_body, check_pane_id

_BUFFER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# After a failed attempt to attach a control client, the next waits this long (doubling).
_RETRY_FIRST_S = 1.0
_RETRY_MAX_S = 60.0
# A control client that lived this long was not refused: after it ends, attach again at once.
_STABLE_S = 30.0

log = get_logger()


class TmuxClient:
    """Talks to one tmux server (``-S socket_path``, or the user's default socket).

    Stateless apart from its configuration, so one instance can serve concurrent tasks. It never
    starts or kills a server, a session or a window.
    """

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        timeout_s: float = 5.0,
        tmux_bin: str = "tmux",
        max_calls: int = 16,
        control: bool = False,
        attach_first: bool = False,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        # At most this many tmux clients at once (the threads that start them).
        self._pool = ThreadPoolExecutor(max_workers=max_calls, thread_name_prefix="asched-tmux")
        self._listing: asyncio.Future[list[PaneInfo]] | None = None
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self.tmux_bin = tmux_bin
        self._prefix = client_prefix(tmux_bin, socket_path)
        self._env = client_env()
        # The control client (control=True): attached on demand, in the background; until it
        # is, and whenever it is gone, calls take one-shot clients.
        self._control_wanted = control
        # Wait for the attach before a call rather than let it take a one-shot client (tests;
        # a daemon must not make a delivery wait on it).
        self._attach_first = attach_first
        self._control: ControlConnection | None = None
        self._attaching: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._retry_s = _RETRY_FIRST_S
        self._closed = False

    def __repr__(self) -> str:
        return f"TmuxClient(socket_path={self.socket_path!r}, timeout_s={self.timeout_s})"

    @property
    def socket(self) -> str:
        """The socket this client talks to: ``socket_path``, else tmux's default for this user."""
        return self.socket_path if self.socket_path is not None else default_socket(self._env)

    def close(self) -> None:
        """Start no more clients; the ones running end within their (bounded) time, the control
        client at once."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._attaching is not None:
            self._attaching.cancel()
        if self._control is not None:
            self._control.close()

    async def aclose(self) -> None:
        """:meth:`close`, but the control client is let go cleanly: its stdin is closed, it
        detaches, and this returns once it has exited (killed after a grace). One being
        attached is ended too."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._attaching is not None:
            self._attaching.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._attaching
        if self._control is not None:
            await self._control.aclose()

    @property
    def control_pid(self) -> int | None:
        """The pid of the attached control client, if one is attached."""
        conn = self._control
        return conn.pid if conn is not None and conn.alive else None

    def attach_control(self, *, force: bool = False) -> None:
        """Attach the control client now, in the background, if it is wanted and not attached
        (calls do this by themselves; the daemon calls it once it is ready)."""
        if not self._control_wanted or self._closed:
            return
        conn = self._control
        if conn is not None and conn.alive:
            return
        if self._attaching is not None and not self._attaching.done():
            return
        loop = asyncio.get_running_loop()
        if conn is not None and conn.lost_at is not None:
            # The first call after a connection ended. One that lived long enough was a good
            # one: attach again now. One that ended within moments (a hook that detaches new
            # clients, a session being torn down) counts as a failed attach: back off, so that
            # the user's hooks do not run in a loop.
            self._control = None
            if conn.lost_at - conn.attached_at >= _STABLE_S:
                self._retry_s = _RETRY_FIRST_S
            else:
                self._back_off(conn.lost_at)
        if not force and loop.time() < self._retry_at:
            return
        self._attaching = loop.create_task(self._attach())

    def _back_off(self, since: float) -> None:
        """No attach before ``since`` plus the current back-off, which then doubles."""
        self._retry_at = since + self._retry_s
        self._retry_s = min(self._retry_s * 2, _RETRY_MAX_S)

    async def connect_control(self) -> bool:
        """Attach the control client now and wait for it (past any back-off); True when it is
        attached. For tools and tests: the daemon lets calls attach it in the background."""
        self.attach_control(force=True)
        if self._attaching is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._attaching)
        return self.control_pid is not None

    async def _attach(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            session = await self._session_to_attach()
            conn = await ControlConnection.open(self._prefix, session, self._env, self.timeout_s)
        except TmuxError as exc:
            # No server, no session, or a server that does not answer: one-shot clients do the
            # work meanwhile, and say what is wrong in their own errors.
            self._back_off(loop.time())
            log.debug("tmux.control_unavailable", socket=self.socket, reason=exc.reason)
            return
        except OSError as exc:
            self._retry_at = loop.time() + _RETRY_MAX_S
            log.warning("tmux.control_unavailable", socket=self.socket, reason=str(exc))
            return
        if self._closed:
            await conn.aclose()
            return
        self._control = conn
        log.info("tmux.control_attached", socket=self.socket, session=session, pid=conn.pid)

    async def _session_to_attach(self) -> str:
        """A session for the control client that attaching to changes nothing the user relies
        on: one a client is attached to already, if any, so that no session turns from
        unattached to attached; never one with ``destroy-unattached`` (we would keep it alive);
        and none at all under ``exit-unattached`` (we would keep the server alive)."""
        call = await self._run_once(
            (
                "list-sessions",
                "-F",
                "#{session_attached} #{destroy-unattached} #{exit-unattached} #{session_id}",
            )
        )
        if call.rc != 0:
            raise TmuxError(f"list-sessions: {call.err or f'exit {call.rc}'}")
        rows = [line.split(" ", 3) for line in call.out.splitlines()]
        rows = [row for row in rows if len(row) == 4]
        if any(row[2] == "1" for row in rows):
            raise TmuxError("exit-unattached is on: no control client (it would keep the server)")
        usable = [(row[0] != "0", row[3]) for row in rows if row[1] != "1"]
        if not usable:
            raise TmuxError("no session a control client may attach to")
        attached = [sid for busy, sid in usable if busy]
        return (attached or [usable[0][1]])[0]

    # -- the one place that starts processes ----------------------------------------------

    async def run(
        self, *args: str, input: bytes | None = None, timeout_s: float | None = None
    ) -> CompletedCall:
        """Run one tmux client command (``args`` may chain commands with a ``";"`` argument).

        Raises :class:`TmuxMissing`, :class:`ServerMissing` or :class:`TmuxTimeout`; any other
        failure is left to the caller in ``rc``/``stderr``. stdin is ``input`` when given, else
        /dev/null.
        """
        limit = self.timeout_s if timeout_s is None else timeout_s
        conn = self._control
        if conn is not None and conn.alive and input is None:
            line = control_line(args)
            if line is not None:
                return await conn.run((*self._prefix, *args), line, limit, " ".join(args[:3]))
        elif self._control_wanted:
            if self._attach_first and input is None and await self.connect_control():
                return await self.run(*args, timeout_s=timeout_s)
            self.attach_control()
        return await self._run_once(args, input, limit)

    def send_now(
        self, *args: str, line: bytes | None = None, yield_cpu: bool = False
    ) -> asyncio.Future[CompletedCall] | None:
        """:meth:`run`, its command line written to the control client before this returns (so
        that a paste due at an instant leaves in that instant's loop step); the reply is the
        returned task's. None when the control client is not up, or quoting cannot carry the
        arguments: nothing was sent, and :meth:`run` takes the call. ``line``: the command line
        of ``args``, made ahead (:func:`control_line`); ``yield_cpu``: see
        :meth:`ControlConnection.send`."""
        conn = self._control
        if conn is None or not conn.alive:
            return None
        if line is None:
            line = control_line(args)
            if line is None:
                return None
        full = (*self._prefix, *args)
        try:
            sent = conn.send(full, line, yield_cpu=yield_cpu)
        except ControlLost:
            return None  # nothing written (the client is gone): the call did not happen
        return asyncio.ensure_future(conn.reply(sent, full, self.timeout_s, " ".join(args[:3])))

    async def _run_once(
        self, args: Sequence[str], input: bytes | None = None, limit: float | None = None
    ) -> CompletedCall:
        """Run ``args`` in a client process of its own."""
        argv = (*self._prefix, *args)
        limit = self.timeout_s if limit is None else limit
        rc, stdout, stderr = await run_in_thread(
            self._pool, argv, input, limit, self._env, self.tmux_bin, " ".join(args[:3])
        )
        call = CompletedCall(argv, rc, stdout, stderr)
        if rc != 0 and server_missing(call.err):
            raise ServerMissing(call.err)
        return call

    # -- lookups ----------------------------------------------------------------------------

    async def server_running(self) -> bool:
        """True when a server answers on the socket. Never starts one."""
        try:
            call = await self.run("list-sessions", "-F", "#{session_id}")
        except ServerMissing:
            return False
        return call.rc == 0

    async def list_panes(self) -> list[PaneInfo]:
        """Every pane on the server (``list-panes -a``)."""
        fmt, marker = pane_format()
        call = await self.run("list-panes", "-a", "-F", fmt)
        if call.rc != 0:
            raise TmuxError(f"list-panes: {call.err}")
        return parse_panes(call.out, marker)

    async def resolve(self, target: Target) -> PaneInfo:
        """The pane ``target`` names, matched exactly.

        Sessions match by full name only (``work`` never matches ``workbench``), windows by index
        or by exact name, panes by index (default: the window's active pane). Raises
        :class:`TargetMissing` (or :class:`TargetAmbiguous` when a name matches several windows).
        """
        return select_pane(target, await self._shared_listing())

    async def _shared_listing(self) -> list[PaneInfo]:
        # Lookups that overlap share one `list-panes -a` call: a burst of 100 deliveries costs
        # one tmux client, not 100. A listing is never older than the lookup that started it.
        if self._listing is None or self._listing.done():
            self._listing = asyncio.ensure_future(self.list_panes())
        return await asyncio.shield(self._listing)

    # -- actions ----------------------------------------------------------------------------

    async def paste(self, pane_id: str, text: str, buffer_name: str) -> None:
        """Paste ``text`` into the pane, byte for byte, no Enter: :meth:`load_buffers`, then
        :meth:`paste_buffer`. The delivery engine makes the two calls itself, with its journal
        commit between them (see asched/delivery/typist.py)."""
        check_pane_id(pane_id)
        await self.load_buffers([(buffer_name, text)])
        await self.paste_buffer(pane_id, buffer_name)

    async def load_buffers(
        self, items: Sequence[tuple[str, str]], spool: Path | None = None
    ) -> None:
        """Load each ``(buffer_name, text)`` into a named tmux buffer; nothing reaches a pane.

        One item: ``load-buffer -b NAME -`` with the body on stdin, never parsed. Several (a
        burst): stdin feeds only one buffer, so each body goes through a private file in
        ``spool`` (a 0700 directory of ours) that ``load-buffer -b NAME PATH`` reads, in as few
        clients as the command-line limit allows. On failure every buffer of the call is deleted
        best-effort and the error raised: :class:`UsageError` (a bad name or body, before any
        call), :class:`ServerMissing`, :class:`TmuxTimeout` or :class:`TmuxError`.
        """
        bodies = []
        for name, text in items:
            if not _BUFFER_NAME.fullmatch(name):
                raise UsageError(f"bad tmux buffer name {name!r}: use [A-Za-z0-9_.-], 1-64")
            bodies.append(check_body(text))
        names = [name for name, _ in items]
        if len(items) == 1:
            await self._load(
                names, lambda: self.run("load-buffer", "-b", names[0], "-", input=bodies[0])
            )
            return
        if spool is None:
            raise UsageError("loading several buffers needs a spool directory")
        files: list[Path] = []
        try:
            # Off the loop, in one worker thread for the whole burst: written on the loop, 100
            # bodies held it ~17 ms on a busy 2-core machine; aiofiles, a thread hop per open,
            # write and close, took 24-40 ms (docs/ARCHITECTURE.md, "File I/O").
            pairs = list(zip(names, bodies, strict=True))
            writing = asyncio.ensure_future(asyncio.to_thread(_write_spool, spool, pairs, files))
            try:
                await asyncio.shield(writing)
            except asyncio.CancelledError:
                # The thread cannot be stopped: let it finish its few files, so that the
                # finally below removes every one of them.
                with contextlib.suppress(Exception):
                    await writing
                raise
            groups = [["load-buffer", "-b", name, str(spool / name)] for name in names]
            await self._load(names, lambda: self._run_chunked(groups))
        finally:
            for path in files:
                with contextlib.suppress(OSError):
                    path.unlink()

    async def _load(
        self, names: list[str], call: Callable[[], Awaitable[CompletedCall | list[CompletedCall]]]
    ) -> None:
        try:
            done = await call()
        except TmuxError:
            await self.delete_buffers(names)
            raise
        for c in done if isinstance(done, list) else [done]:
            if c.rc != 0:
                await self.delete_buffers(names)
                raise TmuxError(f"load-buffer: {c.err or f'exit {c.rc}'}")

    async def paste_buffer(
        self,
        pane_id: str,
        buffer_name: str,
        pane_pid: int | None = None,
        *,
        target: Target | None = None,
    ) -> None:
        """Paste a loaded buffer into the pane and delete it: ``paste-buffer -p -d``.

        Bracketed when the program asked for it; guarded by ``#{pane_dead}`` (a paste into a dead
        pane crashes tmux 3.3a) and, with ``pane_pid``, by the pane's program being that one (the
        program the checks looked at). The buffer exists until the paste happened: that is what
        tells a restarted daemon whether a paste it had committed to was made. Raises
        :class:`PaneDead`, :class:`PaneReplaced` or :class:`TargetMissing` (nothing pasted; the
        buffer is deleted), :class:`BufferMissing` (no such buffer: pasted already, or lost with
        a server), :class:`ServerMissing`, :class:`TmuxTimeout`. With ``target``, the paste is
        also made only while that target still names this pane (a window renamed or an active
        pane switched since the lookup raises :class:`PaneReplaced`): checked by the server in
        the same command, at the point of no return.
        """
        cmd = _paste_args(pane_id, buffer_name, pane_pid, target)
        await self._pasted(pane_id, buffer_name, pane_pid, await self.run(*cmd))

    def paste_buffer_now(
        self,
        pane_id: str,
        buffer_name: str,
        pane_pid: int | None = None,
        *,
        target: Target | None = None,
        made: PasteLine | None = None,
        yield_cpu: bool = False,
    ) -> Coroutine[Any, Any, None] | None:
        """:meth:`paste_buffer`, its command written to the control client before this returns;
        the coroutine that reads its outcome (it raises as :meth:`paste_buffer` does), to be
        awaited or made a task. None when nothing was sent (:meth:`send_now`). ``made``: the
        same paste's :meth:`paste_line`, made ahead; ``yield_cpu``: see
        :meth:`ControlConnection.send`."""
        if made is None:
            made = self.paste_line(pane_id, buffer_name, pane_pid, target=target)
        sent = self.send_now(*made.args, line=made.line, yield_cpu=yield_cpu)
        if sent is None:
            return None

        async def outcome() -> None:
            await self._pasted(pane_id, buffer_name, pane_pid, await sent)

        return outcome()

    def paste_line(
        self,
        pane_id: str,
        buffer_name: str,
        pane_pid: int | None = None,
        *,
        target: Target | None = None,
    ) -> PasteLine:
        """The arguments and control-client line of :meth:`paste_buffer`, made ahead of the
        instant that sends them (:meth:`paste_buffer_now`)."""
        args = tuple(_paste_args(pane_id, buffer_name, pane_pid, target))
        return PasteLine(args, control_line(args))

    async def _pasted(
        self, pane_id: str, buffer_name: str, pane_pid: int | None, call: CompletedCall
    ) -> None:
        """What a paste's call printed, as :meth:`paste_buffer` raises it."""
        if call.rc != 0:
            if call.err.startswith("no buffer"):
                raise BufferMissing(f"{pane_id}: {call.err}")
            await self.delete_buffers([buffer_name])
            raise_for(pane_id, "paste", call.err, call.rc)
        raise_for_mark(pane_id, pane_pid, call.out)

    async def paste_buffers(
        self,
        items: Sequence[tuple[str, str, int | None]],
        targets: Sequence[Target | None] | None = None,
    ) -> list[str]:
        """:meth:`paste_buffer` for several ``(pane_id, buffer_name, pane_pid)`` with few client
        calls (``targets``: each item's ``target``, or None).

        Each paste is followed by a marker, so that whatever tmux does after a failing command
        (a missing pane stops the rest of a client's list), the markers say exactly which
        pastes happened. Outcomes, in order: ``"pasted"``, ``"dead"`` or ``"replaced"`` (nothing
        pasted, buffer deleted), ``"not-pasted"`` (its guard failed, tmux stopped before it, or
        its client failed to run; the buffer is still loaded, and a single :meth:`paste_buffer`
        tells why) or ``"unknown"`` (its client timed out).
        """
        batch, groups, packs = _paste_packs(items, targets)
        calls = await asyncio.gather(
            *(self.run(*join_groups(groups, pack)) for pack in packs), return_exceptions=True
        )
        return _pasted_many(batch, packs, calls, len(items))

    def paste_buffers_now(
        self,
        items: Sequence[tuple[str, str, int | None]],
        targets: Sequence[Target | None] | None = None,
        *,
        yield_cpu: bool = False,
    ) -> Coroutine[Any, Any, list[str]] | None:
        """:meth:`paste_buffers`, every command written to the control client before this
        returns; the coroutine of their outcomes, to be awaited or made a task. None when
        nothing was sent (:meth:`send_now`).
        ``yield_cpu``: after the last write (see :meth:`ControlConnection.send`)."""
        batch, groups, packs = _paste_packs(items, targets)
        conn = self._control
        calls = [join_groups(groups, pack) for pack in packs]
        lines = [control_line(call) for call in calls]
        if conn is None or not conn.alive or any(line is None for line in lines):
            return None  # all or none: a half-sent batch would need two ways to read it
        last = len(calls) - 1
        sent = [
            self.send_now(*call, line=line, yield_cpu=yield_cpu and n == last)
            for n, (call, line) in enumerate(zip(calls, lines, strict=True))
        ]
        if sent[0] is None:
            return None  # the client went at the first write: nothing was sent
        # A later write that failed (the client just ended) counts as a failed client: its
        # items are "not-pasted", and a single paste each tells more.
        waits = [
            s if s is not None else _failed(TmuxError("tmux control client gone: not sent"))
            for s in sent
        ]

        async def outcomes() -> list[str]:
            calls = await asyncio.gather(*waits, return_exceptions=True)
            return _pasted_many(batch, packs, calls, len(items))

        return outcomes()

    async def buffer_names(self, prefix: str = "", *, missing_ok: bool = True) -> set[str]:
        """The names of the server's buffers that start with ``prefix``: none without a server,
        or :class:`ServerMissing` when not ``missing_ok``."""
        try:
            call = await self.run("list-buffers", "-F", "#{buffer_name}")
        except ServerMissing:
            if not missing_ok:
                raise
            return set()
        if call.rc != 0:
            raise TmuxError(f"list-buffers: {call.err}")
        return {n for n in call.out.split() if n.startswith(prefix)}

    async def delete_buffers(self, names: Sequence[str]) -> None:
        """Delete the named buffers, best-effort: gone already, or no server, is fine."""
        groups = [["delete-buffer", "-b", n] for n in names if _BUFFER_NAME.fullmatch(n)]
        limit = min(self.timeout_s, 1.0)
        with contextlib.suppress(TmuxError):
            if len(groups) == 1:
                await self.run(*groups[0], timeout_s=limit)
            elif groups and any(c.rc != 0 for c in await self._run_chunked(groups)):
                # A missing buffer stops the rest of its client's list: one by one, then.
                for group in groups:
                    await self.run(*group, timeout_s=limit)

    async def send_enter(self, pane_id: str, pane_pid: int | None = None) -> None:
        """Press Enter in the pane (``send-keys -t %N Enter``), unless the pane is dead.

        With ``pane_pid`` (the pane's program when the text was pasted), only while the pane still
        runs that program: else :class:`PaneReplaced`, and nothing is sent. Not while the pane
        is in a mode (the key would go to copy mode): :class:`PaneInMode`.
        """
        check_pane_id(pane_id)
        call = await self.run(*enter_command(pane_id, pane_pid))
        if call.rc != 0:
            raise_for(pane_id, "send-keys", call.err, call.rc)
        raise_for_mark(pane_id, pane_pid, call.out, in_mode=True)

    async def cancel_mode(self, pane_id: str) -> None:
        """Leave every mode the pane is in (copy, view, clock, tree); a no-op when in none.

        Uses ``copy-mode -q``: ``send-keys -X cancel`` only works for copy/view mode and fails
        with "not in a mode" otherwise.
        """
        check_pane_id(pane_id)
        call = await self.run("copy-mode", "-q", "-t", pane_id)
        if call.rc != 0 and "not in a mode" not in call.err:
            raise_for(pane_id, "copy-mode -q", call.err, call.rc)

    async def capture(self, pane_id: str, start: int | None = None) -> str:
        """The pane's text (``capture-pane -p -J``), wrapped lines joined; ``start`` as ``-S``
        (negative numbers reach into the history)."""
        check_pane_id(pane_id)
        args = ["capture-pane", "-p", "-J", "-t", pane_id]
        if start is not None:
            args += ["-S", str(int(start))]
        call = await self.run(*args)
        if call.rc != 0:
            raise_for(pane_id, "capture-pane", call.err, call.rc)
        return call.out

    async def screen(self, pane_id: str) -> Screen:
        """The visible rows of the pane and the cursor's row, in one client call.

        Unjoined (``capture-pane -p`` without ``-J``), so rows map 1:1 onto ``#{cursor_y}``.
        """
        check_pane_id(pane_id)
        call = await self.run(*screen_command(pane_id, "#{pane_id}"))
        if call.rc != 0:
            raise_for(pane_id, "capture-pane", call.err, call.rc)
        got = read_screen(call.out)
        if got is None or got[0] != pane_id:
            raise TargetMissing(f"{pane_id}: pane not found")
        return got[1]

    async def cursor_line(self, pane_id: str) -> str:
        """The text of the screen row the cursor is on, trailing spaces removed."""
        return (await self.screen(pane_id)).cursor_line

    async def send_enter_many(
        self, pane_ids: Sequence[str], pane_pids: Sequence[int | None] | None = None
    ) -> list[str]:
        """Press Enter in several panes with few client calls; ``"entered"``, ``"dead"``,
        ``"replaced"`` or ``"missing"`` for each, in order (guarded like :meth:`send_enter`)."""
        batch = Tagged()
        pids = list(pane_pids) if pane_pids is not None else [None] * len(pane_ids)
        groups = []
        for n, (pane_id, pid) in enumerate(zip(pane_ids, pids, strict=True)):
            check_pane_id(pane_id)
            groups.append(batch.enter(n, pane_id, pid))
        # In a mode: "missing" (see ENTERED).
        done: dict[int, str] = {}
        for call in await self._run_chunked(groups):
            batch.read(call.out, ENTERED, done)
        return [done.get(n, "missing") for n in range(len(pane_ids))]

    async def screens(self, pane_ids: Sequence[str]) -> list[Screen | None]:
        """:meth:`screen` of several panes with few client calls; None for a pane that could
        not be read (gone)."""
        tag = secrets.token_hex(6)
        groups = []
        for n, pane_id in enumerate(pane_ids):
            check_pane_id(pane_id)
            groups.append(screen_command(pane_id, f"{tag} {n}"))
        found: dict[int, Screen] = {}
        for call in await self._run_chunked(groups):
            # Each pane's screen follows its marker line; the random tag cannot be forged.
            for part in call.out.split(tag + " ")[1:]:
                got = read_screen(part)
                if got is not None and got[0].isdigit():
                    found[int(got[0])] = got[1]
        return [found.get(n) for n in range(len(pane_ids))]

    async def _run_chunked(self, groups: Sequence[list[str]]) -> list[CompletedCall]:
        """Run command groups joined by ``;`` in as few clients as the 16 KiB limit allows,
        the clients in parallel."""
        calls = await asyncio.gather(
            *(self.run(*join_groups(groups, pack)) for pack in pack_groups(groups))
        )
        return list(calls)


def _write_spool(spool: Path, bodies: list[tuple[str, bytes]], written: list[Path]) -> None:
    """Write each body to a private file ``spool/NAME``; ``written`` lists them as they are made
    (the caller removes them, whatever happens)."""
    for name, body in bodies:
        path = spool / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        written.append(path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)


@dataclass(frozen=True, slots=True)
class PasteLine:
    """A guarded paste's arguments and its control-client line (None: quoting cannot carry
    them), made ahead of its instant."""

    args: tuple[str, ...]
    line: bytes | None


def _paste_args(
    pane_id: str, buffer_name: str, pane_pid: int | None, target: Target | None
) -> list[str]:
    """The guarded paste's arguments, once the pane id and buffer name are checked."""
    check_pane_id(pane_id)
    if not _BUFFER_NAME.fullmatch(buffer_name):
        raise UsageError(f"bad tmux buffer name {buffer_name!r}: use [A-Za-z0-9_.-], 1-64")
    # Safe in tmux's command parser: the pane id and the buffer name were checked above.
    return paste_command(pane_id, buffer_name, pane_pid, target)


def _paste_packs(
    items: Sequence[tuple[str, str, int | None]], targets: Sequence[Target | None] | None
) -> tuple[Tagged, list[list[str]], list[list[int]]]:
    """The tagged guarded pastes of :meth:`TmuxClient.paste_buffers`, packed into calls."""
    batch = Tagged()
    groups = []
    for n, (pane_id, buffer_name, pid) in enumerate(items):
        check_pane_id(pane_id)
        if not _BUFFER_NAME.fullmatch(buffer_name):
            raise UsageError(f"bad tmux buffer name {buffer_name!r}")
        groups.append(batch.paste(n, pane_id, buffer_name, pid, targets[n] if targets else None))
    return batch, groups, pack_groups(groups)


def _pasted_many(
    batch: Tagged,
    packs: list[list[int]],
    calls: Sequence[CompletedCall | BaseException],
    count: int,
) -> list[str]:
    """The outcome of each item of :meth:`TmuxClient.paste_buffers` from its calls' replies."""
    done: dict[int, str] = {}
    for pack, call in zip(packs, calls, strict=True):
        if isinstance(call, TmuxTimeout):
            # That client may have pasted any of its items: unknown, never "not pasted".
            done.update((n, "unknown") for n in pack)
        elif isinstance(call, CompletedCall):
            batch.read(call.out, PASTED, done)
        elif not isinstance(call, Exception):
            raise call  # a cancellation
        # Any other failure of one client (no server, a failed connection): its items are
        # "not-pasted", and a single call each tells more; the other clients' count.
    return [done.get(n, "not-pasted") for n in range(count)]


async def _failed(exc: BaseException) -> CompletedCall:
    raise exc
