"""The persistent control-mode client on a real tmux server: exact arguments, the same answers
as one-shot clients, and every way the connection can end."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from asched.tmux.client import TmuxClient
from asched.tmux.control import ControlLost, control_line
from asched.tmux.errors import (
    BufferMissing,
    PaneDead,
    PaneReplaced,
    ServerMissing,
    TmuxTimeout,
)
from tests.support.tmux import Server

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

NASTY = [
    "plain",
    "it's",
    "'",
    "''",
    'say "hi"',
    "$HOME and ${HOME}",
    "~user",
    "a ~ b",
    "back\\slash \\n \\",
    "#{pane_id} #[fg=red] ##",
    "a ; b \\; c",
    "{ block }",
    "}",
    "-t",
    "%if 1",
    "tab\there",
    "wörk ✓ 日本",
    'it\'s $HOME \\ "q" #{x} {y}',
]


@pytest.fixture
async def client(server: Server) -> AsyncIterator[TmuxClient]:
    server.new_session("main", "cat")
    c = TmuxClient(server.sock, timeout_s=3.0, control=True)
    assert await c.connect_control()
    yield c
    await c.aclose()


def exited(pid: int) -> bool:
    """The process is gone or a zombie (its parent reaps it)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_for(pred: object, timeout: float = 5.0) -> None:
    assert callable(pred)
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


async def test_arguments_arrive_byte_exact(client: TmuxClient, tmp_path: Path) -> None:
    """Every argument tmux's parser could misread (quotes, $, ~, #, braces, ;) reaches the
    command unchanged: set into a buffer through the control client, saved by tmux to a file."""
    for n, text in enumerate(NASTY):
        assert control_line(["set-buffer", "-b", "q", "--", text]) is not None, text
        out = tmp_path / f"out{n}"
        call = await client.run(
            "set-buffer", "-b", "q", "--", text, ";", "save-buffer", "-b", "q", str(out)
        )
        assert call.rc == 0, (text, call.err)
        assert out.read_text(encoding="utf-8") == text


async def test_what_quoting_cannot_carry_takes_a_one_shot_client(
    client: TmuxClient, tmp_path: Path
) -> None:
    """A line break, a NUL or a leading ~ with a quote cannot go through the parser: such a call
    is made by a one-shot client instead, and arrives exact all the same."""
    for text in ["two\nlines", "~it's"]:
        assert control_line(["set-buffer", "--", text]) is None
        out = tmp_path / "out"
        call = await client.run(
            "set-buffer", "-b", "q", "--", text, ";", "save-buffer", "-b", "q", str(out)
        )
        assert call.rc == 0, call.err
        assert out.read_text(encoding="utf-8") == text
    assert client.control_pid is not None  # still attached


async def test_same_answers_as_one_shot_clients(client: TmuxClient, server: Server) -> None:
    """Output, errors and exit codes match those of a one-shot client, for lists that fail in
    the middle too (tmux stops there)."""
    one_shot = TmuxClient(server.sock, timeout_s=3.0)
    try:
        for args in [
            ("display-message", "-p", "#{session_name} #{pane_id}"),
            ("list-panes", "-a", "-F", "#{pane_id} #{pane_pid}"),
            ("display-message", "-p", "a", ";", "paste-buffer", "-b", "none", "-t", "%0"),
            ("display-message", "-p", "", ";", "display-message", "-p", "x"),
            ("no-such-command",),
        ]:
            via_control = await client.run(*args)
            via_process = await one_shot.run(*args)
            assert (via_control.rc != 0, via_control.out) == (via_process.rc != 0, via_process.out)
            # (A parse error is prefixed "parse error: " in control mode.)
            assert via_control.err.removeprefix("parse error: ") == via_process.err, args
    finally:
        await one_shot.aclose()


async def test_pane_text_that_looks_like_framing_is_read_as_text(
    client: TmuxClient, server: Server
) -> None:
    """A pane that prints tmux's own framing lines (%end, %error, %exit) cannot end a reply
    early or end the connection: only the reply's own numbers close it."""
    lines = ["%end 1 2 1", "%error 1796628367 999 1", "%exit", "%begin 1 2 1", "after"]
    script = "printf '%s\\n' " + " ".join(f"'{line}'" for line in lines) + "; exec cat"
    pane = server.new_session("framed", ["sh", "-c", script])
    await wait_for(lambda: "after" in server.tmux("capture-pane", "-p", "-t", pane))
    for _ in range(3):
        text = await client.capture(pane)
        assert [line for line in text.splitlines() if line] == lines
    assert client.control_pid is not None


async def test_session_killed_the_client_moves_on(client: TmuxClient, server: Server) -> None:
    """When its session goes, the control client ends (tmux prints %exit); calls go on through
    one-shot clients, and the next attach takes another session."""
    server.new_session("other", "cat")
    first = client.control_pid
    assert first is not None
    attached = server.tmux("list-clients", "-F", "#{client_pid} #{session_name}").split()
    session = attached[attached.index(str(first)) + 1]
    server.tmux("kill-session", "-t", f"={session}")
    await wait_for(lambda: client.control_pid is None)
    await wait_for(lambda: exited(first))
    assert (await client.run("display-message", "-p", "ok")).out == "ok\n"
    assert await client.connect_control()
    assert client.control_pid not in (None, first)


async def test_server_killed(client: TmuxClient, server: Server) -> None:
    """A killed server: the control client is gone, and calls say the server is missing."""
    pid = client.control_pid
    assert pid is not None and server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    await wait_for(lambda: client.control_pid is None)
    with pytest.raises(ServerMissing):
        await client.list_panes()
    await wait_for(lambda: exited(pid))
    assert not await client.connect_control()


async def test_frozen_server_times_out_then_answers_in_order(
    client: TmuxClient, server: Server, tmp_path: Path
) -> None:
    """A frozen server: a call times out (its outcome unknown), and runs when the server
    resumes, in order; the connection stays, and the replies that come late are not taken for
    those of later calls."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        with pytest.raises(TmuxTimeout):
            await client.run("set-buffer", "-b", "late", "ran", timeout_s=0.3)
        with pytest.raises(TmuxTimeout):
            await client.run("display-message", "-p", "first", timeout_s=0.3)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert (await client.run("display-message", "-p", "second")).out == "second\n"
    assert "late" in await client.buffer_names()
    assert client.control_pid is not None


async def test_connection_lost_with_calls_in_flight(client: TmuxClient, server: Server) -> None:
    """Calls in flight when the client ends raise ControlLost: a time-out, since whether tmux
    ran them is unknown."""
    pid = client.control_pid
    assert pid is not None and server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        pending = asyncio.ensure_future(client.run("display-message", "-p", "x", timeout_s=5))
        await asyncio.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ControlLost):
            await asyncio.wait_for(pending, 3)
        assert isinstance(ControlLost("x"), TmuxTimeout)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert (await client.run("display-message", "-p", "ok")).out == "ok\n"


async def test_close_leaves_no_process_and_the_session_as_it_was(server: Server) -> None:
    server.new_session("main", "cat")
    c = TmuxClient(server.sock, control=True)
    assert await c.connect_control()
    pid = c.control_pid
    assert pid is not None
    assert server.tmux("list-clients", "-F", "#{client_control_mode}").split() == ["1"]
    await c.aclose()
    assert not psutil.pid_exists(pid)  # exited and reaped
    await wait_for(lambda: server.tmux("list-clients", "-F", "#{client_pid}").split() == [])
    assert server.tmux("list-sessions", "-F", "#{session_name}").split() == ["main"]


async def test_never_keeps_a_session_or_server_alive(server: Server) -> None:
    """No attach to a session with destroy-unattached (it would outlive its last real client,
    here a client of tmux's own), nor at all under exit-unattached (so would the server); calls
    still work, through one-shot clients."""
    server.new_session("keep", "cat")
    server.new_session("ephemeral", "cat")
    holder = await asyncio.create_subprocess_exec(
        "tmux", "-S", server.sock, "-C", "attach", "-t", "=ephemeral",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_for(lambda: server.tmux("list-clients", "-F", "#{client_pid}").strip() != "")
        server.tmux("set-option", "-t", "ephemeral", "destroy-unattached", "on")
        c = TmuxClient(server.sock, control=True)
        try:
            # An attached session is preferred, but not this one.
            assert await c.connect_control()
            rows = server.tmux("list-clients", "-F", "#{client_pid} #{session_name}").splitlines()
            assert f"{c.control_pid} keep" in rows
        finally:
            await c.aclose()
        server.tmux("set-option", "-g", "exit-unattached", "on")
        c = TmuxClient(server.sock, control=True)
        try:
            assert not await c.connect_control()
            assert (await c.run("display-message", "-p", "ok")).out == "ok\n"
        finally:
            await c.aclose()
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


async def test_a_file_load_buffer_cannot_read_fails_the_call(
    client: TmuxClient, tmp_path: Path
) -> None:
    """load-buffer reports a file it cannot read after its reply, on a line of its own: the call
    still fails (rc 1, the message), and a burst's load is undone."""
    call = await client.run("load-buffer", "-b", "nofile", str(tmp_path / "missing"))
    assert call.rc == 1 and "No such file" in call.err, call
    assert "nofile" not in await client.buffer_names()
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    await client.load_buffers([("one", "first"), ("two", "second")], spool)
    assert {"one", "two"} <= await client.buffer_names()
    assert list(spool.iterdir()) == []  # the bodies' files are removed once loaded
    assert client.control_pid is not None


async def test_a_hook_that_detaches_every_client_neither_sticks_nor_loops(
    server: Server, tmp_path: Path
) -> None:
    """A client-attached hook that detaches the new client: the control client ends at once.
    Calls keep working (one-shot), no dead connection is kept, and attaches back off rather
    than run the user's hooks in a loop."""
    server.new_session("main", "cat")
    seen = tmp_path / "attaches"
    server.tmux(
        "set-hook", "-g", "client-attached", f"detach-client ; run-shell 'echo x >> {seen}'"
    )
    c = TmuxClient(server.sock, timeout_s=3.0, control=True)
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + 3.0
        calls = 0
        while loop.time() < end:
            assert (await c.run("display-message", "-p", "ok")).out == "ok\n"
            calls += 1
            await asyncio.sleep(0.02)
        attaches = len(seen.read_text().splitlines()) if seen.exists() else 0
        assert 1 <= attaches <= 4, attaches  # 1 s, then 2 s of back-off
        assert calls > 50
    finally:
        await c.aclose()


# -- sent now: the instant's own write (delivery/typist.Typist.arm) -----------------------------


async def test_sent_now_is_written_before_the_call_returns(
    client: TmuxClient, server: Server
) -> None:
    """send_now writes in the caller's own step: with the loop blocked right after it, tmux has
    the command already (a one-shot client sees the buffer it set)."""
    sent = client.send_now("set-buffer", "-b", "now-1", "written at once")
    assert sent is not None
    deadline = time.monotonic() + 5
    while "now-1" not in server.tmux("list-buffers", "-F", "#{buffer_name}"):
        assert time.monotonic() < deadline, "the command never reached tmux"
        time.sleep(0.01)  # blocking on purpose: no loop step may write it
    assert (await sent).rc == 0


async def test_nothing_is_sent_now_without_a_control_client(server: Server) -> None:
    server.new_session("s", "cat")
    one_shot = TmuxClient(server.sock, timeout_s=3.0)
    assert one_shot.send_now("display-message", "-p", "x") is None
    assert one_shot.paste_buffer_now("%0", "nb-1") is None
    assert one_shot.paste_buffers_now([("%0", "nb-1", None), ("%0", "nb-2", None)]) is None
    assert one_shot.control_pid is None  # and it started none


async def test_what_quoting_cannot_carry_is_not_sent_now(client: TmuxClient) -> None:
    assert client.send_now("set-buffer", "-b", "nq", "two\nlines") is None
    assert client.control_pid is not None  # still attached: the caller takes the usual path


async def test_a_paste_sent_now_arrives_once_and_fails_as_paste_buffer_does(
    client: TmuxClient, server: Server, tmp_path: Path
) -> None:
    out = tmp_path / "now.txt"
    pane = server.new_session("p", f"cat > {out}")
    pid = int(server.tmux("display-message", "-p", "-t", pane, "#{pane_pid}").strip())
    # A line end: cat reads a tty line by line.
    await client.load_buffers([("pn-1", "pasted at its instant;\n")])
    sent = client.paste_buffer_now(pane, "pn-1", pid)
    assert sent is not None
    await sent
    await wait_for(lambda: out.exists() and out.read_text() == "pasted at its instant;\n")
    assert await client.buffer_names("pn-") == set()
    # No buffer (pasted already, or gone with its server): as paste_buffer says it.
    again = client.paste_buffer_now(pane, "pn-1", pid)
    assert again is not None
    with pytest.raises(BufferMissing):
        await again
    # Another program than the checks saw: nothing pasted, the buffer deleted.
    await client.load_buffers([("pn-2", "never")])
    replaced = client.paste_buffer_now(pane, "pn-2", pid + 100_000)
    assert replaced is not None
    with pytest.raises(PaneReplaced):
        await replaced
    assert await client.buffer_names("pn-") == set()
    server.tmux("set-option", "-g", "remain-on-exit", "on")
    dead = server.new_window("p", "exit 0")
    await wait_for(
        lambda: server.tmux("display-message", "-p", "-t", dead, "#{pane_dead}") == "1\n"
    )
    await client.load_buffers([("pn-3", "never")])
    refused = client.paste_buffer_now(dead, "pn-3")
    assert refused is not None
    with pytest.raises(PaneDead):
        await refused
    await asyncio.sleep(0.2)
    assert out.read_text() == "pasted at its instant;\n"  # once, and nothing else
    assert (await client.run("display-message", "-p", "alive")).out == "alive\n"  # no crash


async def test_pastes_sent_now_together_report_each(
    client: TmuxClient, server: Server, tmp_path: Path
) -> None:
    outs = [tmp_path / f"m{n}.txt" for n in range(3)]
    panes = [server.new_session(f"m{n}", f"cat > {out}") for n, out in enumerate(outs)]
    server.tmux("set-option", "-g", "remain-on-exit", "on")
    dead = server.new_window("m0", "exit 0")
    await wait_for(
        lambda: server.tmux("display-message", "-p", "-t", dead, "#{pane_dead}") == "1\n"
    )
    items = [(panes[0], "pm-0"), (dead, "pm-d"), (panes[1], "pm-1"), (panes[2], "pm-2")]
    await client.load_buffers([(name, f"text {name};\n") for _, name in items], tmp_path)
    sent = client.paste_buffers_now([(pane, name, None) for pane, name in items])
    assert sent is not None
    assert await sent == ["pasted", "dead", "pasted", "pasted"]
    for out, name in zip(outs, ["pm-0", "pm-1", "pm-2"], strict=True):
        await wait_for(
            lambda out=out, name=name: out.exists() and out.read_text() == f"text {name};\n"
        )
    assert await client.buffer_names("pm-") == set()
