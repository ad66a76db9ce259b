"""The low-level tmux client: resolve a target to a pane, paste a body, press Enter, look at a pane.

Mechanics only: no retries, no journal, no policy. The delivery engine builds on this.

Every tmux call is one client process with an argv list (never a shell) and a
timeout, in its own session so that a timeout can kill it (and anything it started) by process
group, and it is always reaped. The client is run as ``tmux -N -u [-S socket]``:

- ``-N``: never start a server, even by mistake. A server forked from the daemon would live in the
  service's cgroup and die with ``systemctl restart``.
- ``-u``: without a UTF-8 locale (systemd services usually have none) the client prints every
  non-ASCII character of a name as ``_``, so ``wörk`` would never match (measured on tmux 3.3a).

Facts this module relies on, all measured on tmux 3.3a:

- ``display-message -t`` "resolves" a missing session, window or pane to the *current* pane and
  exits 0, and ``=session:=3`` still picks window index 3 over a window named ``3``. So targets are
  resolved with ``list-panes -s -t =SESSION:`` (which fails cleanly on a missing session) and the
  window and pane are matched here, exactly: an all-digit window is an index, anything else a name
  that must equal ``#{window_name}``.
- Session and window names reach formats escaped (a tab is ``\\t``), but
  ``#{pane_current_command}`` is the raw argv[0] of the foreground process and may hold tabs and
  newlines. Records are therefore split on a random per-call marker, with the command last.
- ``load-buffer -b NAME -`` (stdin) or ``load-buffer -b NAME FILE`` loads a body without parsing
  it; ``paste-buffer -p -d -b NAME -t %N`` pastes it and deletes the buffer in one step, so a
  buffer that is still loaded was never pasted. The body never meets a parser.
- ``paste-buffer`` turns LF into CR, like a terminal emulator's paste; a tty in canonical mode
  (ICRNL) turns it back into LF, and paste-aware programs treat CR inside a bracketed paste as a
  newline. A canonical-mode tty keeps at most 4095 bytes of a line; the kernel drops the rest.
- ``paste-buffer`` and ``send-keys -l`` into a dead pane (remain-on-exit) crash the whole tmux
  3.3a server, taking every session with it. Pastes and Enter therefore go through
  ``if-shell -F -t %N '#{pane_dead}' ...`` in the same command list: the server runs a command
  list without returning to its event loop, so the pane cannot die between check and paste.
- ``copy-mode -q`` leaves every mode (copy, view, clock, tree), needs no attached client and exits 0
  when the pane is in no mode; ``send-keys -X cancel`` cannot leave clock or tree mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from asched.core.childenv import child_env
from asched.core.errors import AschedError, UsageError
from asched.tmux.shellguard import (
    DEFAULT_SHELLS,
    WRAPPERS,
    Foreground,
    foreground_commands,
    foreground_guard,
    pane_runs_shell,
    pane_starting,
)
from asched.tmux.targets import (
    MAX_BODY_BYTES,
    PANE_ID,
    Target,
    check_body,
    check_pane_id,
    parse_target,
)

__all__ = [
    "DEFAULT_SHELLS",
    "MAX_BODY_BYTES",
    "WRAPPERS",
    "BufferMissing",
    "CompletedCall",
    "Foreground",
    "PaneDead",
    "PaneInfo",
    "PaneReplaced",
    "Screen",
    "ServerMissing",
    "Target",
    "TargetAmbiguous",
    "TargetMissing",
    "TmuxClient",
    "TmuxError",
    "TmuxMissing",
    "TmuxTimeout",
    "check_body",
    "foreground_commands",
    "foreground_guard",
    "pane_runs_shell",
    "pane_starting",
    "parse_target",
]

# tmux sends a client's command line to the server in one message of at most 16 KiB.
_ARGV_BUDGET = 12_000
# A worker looks for its cancellation this often while a client runs; a killed client is given
# this long to be collected (see _reap).
SLICE_S = 0.1
REAP_S = 0.5
_BUFFER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Printed by the dead-pane branch of the guarded commands; tmux itself never prints it.
_DEAD_MARK = "asched:pane-dead"
# The whole mark of a guard's refusing branch: dead, in a mode, and the program's pid (all empty
# for a pane that is gone).
_MARK = _DEAD_MARK + "-#{pane_dead}-#{pane_in_mode}-#{pane_pid}"
_MARK_SEEN = re.compile(re.escape(_DEAD_MARK) + r"-(\d?)-(\d?)-(\d*)")

# One format for every pane listing. Names are escaped by tmux; the current command is raw and
# therefore last, so a tab inside it cannot shift the other fields.
_FIELDS = (
    "pane_id",
    "session_name",
    "window_index",
    "window_name",
    "pane_index",
    "pane_active",
    "pane_dead",
    "pane_in_mode",
    "pane_mode",
    "pane_pid",
    "pane_tty",
    "window_activity",
    "pane_current_command",
)


# ---------------------------------------------------------------------------------------------
# Errors


class TmuxError(AschedError):
    """A tmux call failed. ``reason`` is a stable machine-readable word, ``detail`` one line.

    Reasons: ``tmux-missing``, ``server-missing``, ``target-missing``, ``target-ambiguous``,
    ``pane-dead``, ``timeout``, ``command-failed``.
    """

    reason = "command-failed"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        self.detail = " ".join(detail.split()) or self.reason
        super().__init__(self.detail)


class TmuxMissing(TmuxError):
    """The tmux binary could not be executed."""

    reason = "tmux-missing"


class ServerMissing(TmuxError):
    """No tmux server answers on the socket ("no server running" / "error connecting to")."""

    reason = "server-missing"


class TargetMissing(TmuxError):
    """The session, window or pane named by a target does not exist."""

    reason = "target-missing"


class TargetAmbiguous(TargetMissing):
    """A window name matches more than one window of the session; name it by index instead."""

    reason = "target-ambiguous"


class PaneDead(TargetMissing):
    """The pane's program has exited and the pane only remains on screen (remain-on-exit)."""

    reason = "pane-dead"


class PaneReplaced(TargetMissing):
    """The pane now runs another program than the one that was typed into (a respawned pane, or
    a pane of a new server that reuses the id): what was typed went away with the old one."""

    reason = "pane-replaced"


class PaneInMode(TmuxError):
    """The pane went into a mode (copy mode: someone scrolls back) after the paste: an Enter
    now would go to the mode, not to the program. Nothing was sent."""

    reason = "copy-mode"


class BufferMissing(TmuxError):
    """The named buffer is not loaded: this call pasted nothing (the buffer was pasted already by
    someone, or was lost with a server)."""

    reason = "buffer-missing"


class TmuxTimeout(TmuxError):
    """A tmux call did not finish in time; the client was killed and reaped."""

    reason = "timeout"


# ---------------------------------------------------------------------------------------------
# Targets


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class CompletedCall:
    """The outcome of one tmux client invocation."""

    args: tuple[str, ...]
    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        """stdout as text (UTF-8, undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        """stderr as one line of text."""
        return " ".join(self.stderr.decode("utf-8", "replace").split())


@dataclass(frozen=True, slots=True)
class PaneInfo:
    """What tmux says about one pane at the time of the call."""

    pane_id: str
    session: str
    window_index: int
    window_name: str
    pane_index: int
    active: bool  # the active pane of its window
    dead: bool  # the program exited and the pane remains (remain-on-exit)
    in_mode: bool  # copy, view, clock or tree mode: typed keys would go to the mode
    mode: str  # e.g. "copy-mode"; "" when in no mode
    pane_pid: int
    tty: str
    activity: int  # #{window_activity}: last output in the window, epoch seconds
    current_command: str  # argv[0] of the tty's foreground process group leader, raw


@dataclass(frozen=True, slots=True)
class Screen:
    """What a pane shows: its visible rows (top first, trailing spaces removed) and the cursor."""

    rows: tuple[str, ...]
    cursor_y: int
    pane_pid: int | None = None  # the pane's program when it was looked at

    @classmethod
    def parse(cls, text: str, cursor_y: int, pane_pid: int | None = None) -> Screen:
        """From ``capture-pane -p`` output (one row a line), ``#{cursor_y}``, ``#{pane_pid}``."""
        return cls(tuple(r.rstrip(" ") for r in text.split("\n")), cursor_y, pane_pid)

    @property
    def cursor_line(self) -> str:
        """The row the cursor is on ("" when below the captured rows)."""
        return self.rows[self.cursor_y] if self.cursor_y < len(self.rows) else ""


def _parse_panes(out: str, marker: str) -> list[PaneInfo]:
    panes: list[PaneInfo] = []
    for record in out.split(marker)[1:]:
        record = record.removesuffix("\n")
        f = record.split("\t", len(_FIELDS) - 1)
        if len(f) != len(_FIELDS):
            raise TmuxError(f"unexpected tmux output: {record[:80]!r}")
        try:
            panes.append(
                PaneInfo(
                    pane_id=f[0],
                    session=f[1],
                    window_index=int(f[2]),
                    window_name=f[3],
                    pane_index=int(f[4]),
                    active=f[5] == "1",
                    dead=f[6] == "1",
                    in_mode=f[7] not in ("", "0"),  # a count: modes can be stacked
                    mode=f[8],
                    pane_pid=int(f[9] or 0),
                    tty=f[10],
                    activity=int(f[11] or 0),
                    current_command=f[12],
                )
            )
        except ValueError:
            raise TmuxError(f"unexpected tmux output: {record[:80]!r}") from None
    return panes


def _pane_format() -> tuple[str, str]:
    """A list-panes format and the random marker that starts each of its records.

    The marker is unguessable, so no process name can forge a record boundary.
    """
    marker = f"\x1e{secrets.token_hex(8)}\x1e"
    return marker + "\t".join(f"#{{{name}}}" for name in _FIELDS), marker


# ---------------------------------------------------------------------------------------------
# The client


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
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        # At most this many tmux clients at once (the threads that start them).
        self._pool = ThreadPoolExecutor(max_workers=max_calls, thread_name_prefix="asched-tmux")
        self._listing: asyncio.Future[list[PaneInfo]] | None = None
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self.tmux_bin = tmux_bin
        self._prefix: tuple[str, ...] = (tmux_bin, "-N", "-u") + (
            ("-S", socket_path) if socket_path is not None else ()
        )
        env = child_env()
        # Inside tmux, TMUX names the enclosing server and TMUX_PANE a pane of it; the client must
        # talk to the server we were configured for, not the one we happen to run in.
        env.pop("TMUX", None)
        env.pop("TMUX_PANE", None)
        self._env = env

    def __repr__(self) -> str:
        return f"TmuxClient(socket_path={self.socket_path!r}, timeout_s={self.timeout_s})"

    @property
    def socket(self) -> str:
        """The socket this client talks to: ``socket_path``, else tmux's default for this user
        (``$TMUX_TMPDIR`` or /tmp, then ``tmux-UID/default``)."""
        if self.socket_path is not None:
            return self.socket_path
        base = self._env.get("TMUX_TMPDIR") or "/tmp"  # tmux's own default
        return os.path.join(base, f"tmux-{os.getuid()}", "default")

    def close(self) -> None:
        """Start no more clients; the ones running end within their (bounded) time."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the one place that starts processes ----------------------------------------------

    async def run(
        self, *args: str, input: bytes | None = None, timeout_s: float | None = None
    ) -> CompletedCall:
        """Run one tmux client command (``args`` may chain commands with a ``";"`` argument).

        Raises :class:`TmuxMissing`, :class:`ServerMissing` or :class:`TmuxTimeout`; any other
        failure is left to the caller in ``rc``/``stderr``. stdin is ``input`` when given, else
        /dev/null.
        """
        argv = (*self._prefix, *args)
        limit = self.timeout_s if timeout_s is None else timeout_s
        rc, stdout, stderr = await _run_in_thread(
            self._pool, argv, input, limit, self._env, self.tmux_bin
        )
        call = CompletedCall(argv, rc, stdout, stderr)
        if rc != 0 and _server_missing(call.err):
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
        fmt, marker = _pane_format()
        call = await self.run("list-panes", "-a", "-F", fmt)
        if call.rc != 0:
            raise TmuxError(f"list-panes: {call.err}")
        return _parse_panes(call.out, marker)

    async def resolve(self, target: Target) -> PaneInfo:
        """The pane ``target`` names, matched exactly.

        Sessions match by full name only (``work`` never matches ``workbench``), windows by index
        or by exact name, panes by index (default: the window's active pane). Raises
        :class:`TargetMissing` (or :class:`TargetAmbiguous` when a name matches several windows).
        """
        return _select(target, await self._shared_listing())

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
        commit between them (see paste.py)."""
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
            for name, body in zip(names, bodies, strict=True):
                path = spool / name
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                files.append(path)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(body)
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
        check_pane_id(pane_id)
        if not _BUFFER_NAME.fullmatch(buffer_name):
            raise UsageError(f"bad tmux buffer name {buffer_name!r}: use [A-Za-z0-9_.-], 1-64")
        # The if-shell branches are command strings parsed by tmux: safe, because the pane id and
        # the buffer name were checked against [%0-9] and [A-Za-z0-9_.-] above. Quoted: an
        # unquoted { opens a command block in tmux's parser.
        call = await self.run(
            "if-shell", "-F", "-t", pane_id, _not_ours(pane_pid, target),
            f"delete-buffer -b {buffer_name} ; "
            f"display-message -p -t {pane_id} '{_MARK}'",
            f"paste-buffer -p -d -b {buffer_name} -t {pane_id}",
        )  # fmt: skip
        if call.rc != 0:
            if call.err.startswith("no buffer"):
                raise BufferMissing(f"{pane_id}: {call.err}")
            await self.delete_buffers([buffer_name])
            _raise_for(pane_id, "paste", call)
        _raise_for_mark(pane_id, pane_pid, call.out)

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
        tag = secrets.token_hex(4)
        groups = []
        for n, (pane_id, buffer_name, pid) in enumerate(items):
            check_pane_id(pane_id)
            if not _BUFFER_NAME.fullmatch(buffer_name):
                raise UsageError(f"bad tmux buffer name {buffer_name!r}")
            groups.append([
                "if-shell", "-F", "-t", pane_id, _not_ours(pid, targets[n] if targets else None),
                f"delete-buffer -b {buffer_name} ; "
                f"display-message -p -t {pane_id} '{tag}-gone#{{pane_dead}}-{n}'",
                f"paste-buffer -p -d -b {buffer_name} -t {pane_id} ; "
                f"display-message -p {tag}-ok-{n}",
            ])  # fmt: skip
        # "gone" alone: the pane itself is gone (see _raise_for_mark): a replaced pane.
        outcome = {
            f"{tag}-ok": "pasted",
            f"{tag}-gone1": "dead",
            f"{tag}-gone0": "replaced",
            f"{tag}-gone": "replaced",
        }
        packs = _pack(groups)
        calls = await asyncio.gather(
            *(self.run(*_join(groups, pack)) for pack in packs), return_exceptions=True
        )
        done: dict[int, str] = {}
        for pack, call in zip(packs, calls, strict=True):
            if isinstance(call, TmuxTimeout):
                # That client may have pasted any of its items: unknown, never "not pasted".
                done.update((n, "unknown") for n in pack)
            elif isinstance(call, CompletedCall):
                for line in call.out.split():
                    head, _, index = line.rpartition("-")
                    if head in outcome and index.isdigit():
                        done[int(index)] = outcome[head]
            elif not isinstance(call, Exception):
                raise call  # a cancellation
            # Any other failure of one client (no server, a failed connection): its items are
            # "not-pasted", and a single call each tells more; the other clients' count.
        return [done.get(n, "not-pasted") for n in range(len(items))]

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
        call = await self.run(
            "if-shell", "-F", "-t", pane_id, f"#{{||:{_not_ours(pane_pid)},#{{pane_in_mode}}}}",
            # Quoted: an unquoted { opens a command block in tmux's parser.
            f"display-message -p -t {pane_id} '{_MARK}'",
            f"send-keys -t {pane_id} Enter",
        )  # fmt: skip
        if call.rc != 0:
            _raise_for(pane_id, "send-keys", call)
        _raise_for_mark(pane_id, pane_pid, call.out, in_mode=True)

    async def cancel_mode(self, pane_id: str) -> None:
        """Leave every mode the pane is in (copy, view, clock, tree); a no-op when in none.

        Uses ``copy-mode -q``: ``send-keys -X cancel`` only works for copy/view mode and fails
        with "not in a mode" otherwise.
        """
        check_pane_id(pane_id)
        call = await self.run("copy-mode", "-q", "-t", pane_id)
        if call.rc != 0 and "not in a mode" not in call.err:
            _raise_for(pane_id, "copy-mode -q", call)

    async def capture(self, pane_id: str, start: int | None = None) -> str:
        """The pane's text (``capture-pane -p -J``), wrapped lines joined; ``start`` as ``-S``
        (negative numbers reach into the history)."""
        check_pane_id(pane_id)
        args = ["capture-pane", "-p", "-J", "-t", pane_id]
        if start is not None:
            args += ["-S", str(int(start))]
        call = await self.run(*args)
        if call.rc != 0:
            _raise_for(pane_id, "capture-pane", call)
        return call.out

    async def screen(self, pane_id: str) -> Screen:
        """The visible rows of the pane and the cursor's row, in one client call.

        Unjoined (``capture-pane -p`` without ``-J``), so rows map 1:1 onto ``#{cursor_y}``.
        """
        check_pane_id(pane_id)
        call = await self.run(
            "display-message", "-p", "-t", pane_id, "#{pane_id} #{cursor_y} #{pane_pid}",
            ";",
            "capture-pane", "-p", "-t", pane_id,
        )  # fmt: skip
        if call.rc != 0:
            _raise_for(pane_id, "capture-pane", call)
        head, _, screen = call.out.partition("\n")
        got_id, y, pid = [*head.split(" "), "", ""][:3]
        if got_id != pane_id or not y.isdigit():
            raise TargetMissing(f"{pane_id}: pane not found")
        return Screen.parse(screen, int(y), int(pid) if pid.isdigit() else None)

    async def cursor_line(self, pane_id: str) -> str:
        """The text of the screen row the cursor is on, trailing spaces removed."""
        return (await self.screen(pane_id)).cursor_line

    async def send_enter_many(
        self, pane_ids: Sequence[str], pane_pids: Sequence[int | None] | None = None
    ) -> list[str]:
        """Press Enter in several panes with few client calls; ``"entered"``, ``"dead"``,
        ``"replaced"`` or ``"missing"`` for each, in order (guarded like :meth:`send_enter`)."""
        tag = secrets.token_hex(4)
        pids = list(pane_pids) if pane_pids is not None else [None] * len(pane_ids)
        groups = []
        for n, (pane_id, pid) in enumerate(zip(pane_ids, pids, strict=True)):
            check_pane_id(pane_id)
            groups.append([
                "if-shell", "-F", "-t", pane_id, f"#{{||:{_not_ours(pid)},#{{pane_in_mode}}}}",
                f"display-message -p -t {pane_id} "
                f"'{tag}-gone#{{pane_dead}}#{{?pane_in_mode,m,}}-{n}'",
                f"send-keys -t {pane_id} Enter ; display-message -p {tag}-ok-{n}",
            ])  # fmt: skip
        # In a mode ("m"): nothing sent, and "missing" makes the caller ask once more alone,
        # where the answer is exact (in a mode, or replaced as well).
        outcome = {
            f"{tag}-ok": "entered",
            f"{tag}-gone1": "dead",
            f"{tag}-gone1m": "dead",
            f"{tag}-gone0": "replaced",
            f"{tag}-gone": "replaced",
        }
        done: dict[int, str] = {}
        for call in await self._run_chunked(groups):
            for line in call.out.split():
                head, _, index = line.rpartition("-")
                if head in outcome and index.isdigit():
                    done[int(index)] = outcome[head]
        return [done.get(n, "missing") for n in range(len(pane_ids))]

    async def screens(self, pane_ids: Sequence[str]) -> list[Screen | None]:
        """:meth:`screen` of several panes with few client calls; None for a pane that could
        not be read (gone)."""
        tag = secrets.token_hex(6)
        groups = []
        for n, pane_id in enumerate(pane_ids):
            check_pane_id(pane_id)
            groups.append([
                "display-message", "-p", "-t", pane_id, f"{tag} {n} #{{cursor_y}} #{{pane_pid}}",
                ";",
                "capture-pane", "-p", "-t", pane_id,
            ])  # fmt: skip
        found: dict[int, Screen] = {}
        for call in await self._run_chunked(groups):
            # Each pane's screen follows its marker line; the random tag cannot be forged.
            for part in call.out.split(tag + " ")[1:]:
                head, _, screen = part.partition("\n")
                index, y, pid = [*head.split(" "), "", ""][:3]
                if index.isdigit() and y.isdigit():
                    found[int(index)] = Screen.parse(
                        screen, int(y), int(pid) if pid.isdigit() else None
                    )
        return [found.get(n) for n in range(len(pane_ids))]

    async def _run_chunked(self, groups: Sequence[list[str]]) -> list[CompletedCall]:
        """Run command groups joined by ``;`` in as few clients as the 16 KiB limit allows,
        the clients in parallel."""
        calls = await asyncio.gather(*(self.run(*_join(groups, pack)) for pack in _pack(groups)))
        return list(calls)


def _pack(groups: Sequence[list[str]]) -> list[list[int]]:
    """The indices of ``groups``, packed into clients whose command line fits the 16 KiB limit."""
    packs: list[list[int]] = [[]]
    size = 0
    for n, group in enumerate(groups):
        cost = sum(len(a) + 1 for a in group) + 2
        if packs[-1] and size + cost > _ARGV_BUDGET:
            packs.append([])
            size = 0
        packs[-1].append(n)
        size += cost
    return [p for p in packs if p]


def _join(groups: Sequence[list[str]], pack: list[int]) -> list[str]:
    """One client's argv: the groups of ``pack`` joined by ``;``."""
    argv: list[str] = []
    for n in pack:
        argv += ([";"] if argv else []) + groups[n]
    return argv


def _not_ours(pane_pid: int | None, target: Target | None = None) -> str:
    """An if-shell -F condition, true when the pane is dead, runs another program, or is no
    longer what ``target`` names (its window renamed or moved, another pane made active)."""
    conds = ["#{pane_dead}"]
    if pane_pid is not None and pane_pid > 0:
        conds.append(f"#{{!=:#{{pane_pid}},{int(pane_pid)}}}")
    if target is not None and target.pane_id is None:
        if isinstance(target.window, int):
            conds.append(f"#{{!=:#{{window_index}},{target.window}}}")
        elif isinstance(target.window, str) and "#" not in target.window:
            # Escaped for the format: "#," is a comma and "#}" a brace there. A name with a "#"
            # is left out: tmux expands formats inside such a name when it prints it.
            name = target.window.replace(",", "#,").replace("}", "#}")
            conds.append(f"#{{!=:#{{window_name}},{name}}}")
        if target.pane is not None:
            conds.append(f"#{{!=:#{{pane_index}},{target.pane}}}")
        else:
            conds.append("#{?pane_active,0,1}")
    expr = conds[0]
    for cond in conds[1:]:
        expr = f"#{{||:{expr},{cond}}}"
    return expr


def _raise_for_mark(pane_id: str, pane_pid: int | None, out: str, *, in_mode: bool = False) -> None:
    """Raise for the guard's branch that did nothing (see :func:`_not_ours`).

    A pane that is gone makes the guard's condition true (an empty ``#{pane_pid}`` is not
    ``pane_pid``) and its ``display-message -t`` print the mark with empty values, with exit
    status 0 (tmux 3.3a): nothing was pasted or pressed. It counts as a replaced pane: the
    program that was typed into is gone, and the target may name a new pane. ``in_mode``: the
    guard refused a pane in a mode too (the Enter's).
    """
    seen = _MARK_SEEN.search(out)
    if seen is None:
        return
    dead, mode, pid = seen.groups()
    if dead == "1":
        raise PaneDead(f"{pane_id}: the pane is dead (its program exited)")
    if dead == "":
        raise PaneReplaced(f"{pane_id}: the pane is gone")
    if pane_pid is not None and pid != str(pane_pid):
        raise PaneReplaced(f"{pane_id}: the pane runs another program than pid {pane_pid}")
    if in_mode and mode == "1":
        raise PaneInMode(f"{pane_id}: the pane is in a mode")
    raise PaneReplaced(f"{pane_id}: the target no longer names this pane")


def _server_missing(err: str) -> bool:
    # The first two: nobody listens on the socket. The others: the server went away mid-call.
    return err.startswith(
        ("no server running", "error connecting to", "server exited unexpectedly", "lost server")
    )


def _raise_for(pane_id: str, what: str, call: CompletedCall) -> None:
    if "can't find pane" in call.err or "can't find window" in call.err:
        raise TargetMissing(f"{pane_id}: {call.err}")
    raise TmuxError(f"{pane_id}: {what}: {call.err or f'exit {call.rc}'}")


# tmux clients are started from a small pool of threads with the stdlib's subprocess (vfork /
# posix_spawn) rather than with the loop's create_subprocess_exec: under uvloop, which forks,
# a tmux call cost 2.9 ms at the median against 1.3 ms this way (and 1.5 ms on the stdlib loop),
# and the due-to-pasted path of a delivery is one such call. The pool bounds concurrent clients.
async def _run_in_thread(
    pool: ThreadPoolExecutor,
    argv: tuple[str, ...],
    input: bytes | None,
    limit: float,
    env: dict[str, str],
    tmux_bin: str,
) -> tuple[int, bytes, bytes]:
    """Run one client in the pool; on timeout or cancellation its process group is killed.

    Every wait is bounded: the worker returns within ``limit`` plus :data:`REAP_S`, and within
    :data:`SLICE_S` plus :data:`REAP_S` of a cancellation, whatever the server does.
    """
    started: list[subprocess.Popen[bytes]] = []
    cancelled = threading.Event()

    def work() -> tuple[int, bytes, bytes]:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            # Its own session: a Ctrl-C at the daemon's terminal does not cut a paste in half,
            # and a timeout can kill the whole group.
            start_new_session=True,
        )
        started.append(proc)
        deadline = time.monotonic() + limit
        feed = input
        while True:
            # In slices, so that a cancellation is noticed soon; a call that answers (nearly
            # all of them, in milliseconds) returns at once from the first slice. The input is
            # given once: a repeated communicate() goes on writing what is left of it.
            left = deadline - time.monotonic()
            try:
                out, err = proc.communicate(feed, timeout=max(min(left, SLICE_S), 0.0))
            except subprocess.TimeoutExpired:
                feed = None
                if left > SLICE_S and not cancelled.is_set():
                    continue
                _kill_group(proc)
                _reap(proc)
                raise
            return proc.returncode, out, err

    done = pool.submit(work)
    try:
        return await asyncio.wrap_future(done)
    except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
        raise TmuxMissing(f"cannot run {tmux_bin!r}: {e.strerror or e}") from None
    except subprocess.TimeoutExpired:
        raise TmuxTimeout(f"tmux {' '.join(argv[1:4])} took more than {limit:g} s") from None
    except asyncio.CancelledError:
        # Do not leave a client (or a zombie) behind: kill the group, let the worker reap it.
        cancelled.set()
        if started:
            _kill_group(started[0])
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)), SLICE_S + REAP_S)
        raise


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the client's process group (it leads its own session)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.kill()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Collect a killed client without waiting on its pipes' end for long.

    A tmux client hands its stdin and stdout to the server, so the pipes reach their end only when
    the server closes its copies: a frozen (SIGSTOPped) server never does. Waiting for that end
    kept a SIGTERMed daemon alive for as long as the freeze (1,236 s once). Our ends are closed
    instead, and the killed process itself is reaped.
    """
    try:
        proc.communicate(timeout=REAP_S / 2)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=REAP_S / 2)


def _select(target: Target, panes: Sequence[PaneInfo]) -> PaneInfo:
    """Pick the pane ``target`` names out of a session's (or window's) panes, exactly."""
    if target.pane_id is not None:
        for p in panes:
            if p.pane_id == target.pane_id:
                return p
        raise TargetMissing(f"{target}: no such pane")
    # tmux was asked for exactly this session; check anyway rather than trust the lookup.
    panes = [p for p in panes if p.session == target.session]
    if not panes:
        raise TargetMissing(f"{target}: no session named {target.session!r}")
    if isinstance(target.window, int):
        in_window = [p for p in panes if p.window_index == target.window]
        what = f"no window with index {target.window}"
    else:
        in_window = [p for p in panes if p.window_name == target.window]
        what = f"no window named {target.window!r}"
    if not in_window:
        raise TargetMissing(f"{target}: {what} in session {target.session!r}")
    indexes = sorted({p.window_index for p in in_window})
    if len(indexes) > 1:
        raise TargetAmbiguous(
            f"{target}: {len(indexes)} windows named {target.window!r} "
            f"(indexes {', '.join(map(str, indexes))}); use an index"
        )
    if target.pane is None:
        chosen = [p for p in in_window if p.active]
    else:
        chosen = [p for p in in_window if p.pane_index == target.pane]
    if len(chosen) != 1 or not PANE_ID.fullmatch(chosen[0].pane_id):
        which = "no active pane" if target.pane is None else f"no pane {target.pane}"
        raise TargetMissing(f"{target}: {which} in window {indexes[0]}")
    return chosen[0]
