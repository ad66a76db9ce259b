"""asched.tmux against real tmux servers, one private server (socket) per test.

Every server is killed at teardown, by ``kill-server`` and then by pid; every wait polls with a
deadline. Receivers: ``cat > FILE`` (cooked tty: exact bytes, lines under 4096), ``stty raw; cat``
(any line length; LF arrives as CR because paste-buffer sends CR like a terminal), interactive bash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psutil
import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from asched.core.errors import UsageError
from asched.tmux.client import TmuxClient
from asched.tmux.errors import (
    PaneDead,
    PaneReplaced,
    ServerMissing,
    TargetAmbiguous,
    TargetMissing,
    TmuxError,
    TmuxMissing,
    TmuxTimeout,
)
from asched.tmux.panes import PaneInfo
from asched.tmux.runner import REAP_S, SLICE_S
from asched.tmux.shellguard import foreground_commands, pane_runs_shell
from asched.tmux.targets import MAX_BODY_BYTES, Target, check_body, parse_target
from tests.support.tmux import Server

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


@pytest.fixture(params=["one-shot", "control"])
async def client(server: Server, request: pytest.FixtureRequest) -> AsyncIterator[TmuxClient]:
    """A client on the private server: one-shot clients, or the control client (attached at the
    first call), which must give the same answers."""
    c = TmuxClient(
        server.sock, timeout_s=5.0, control=request.param == "control", attach_first=True
    )
    yield c
    await c.aclose()


async def until(pred: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await pred():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_command(client: TmuxClient, pane: str, name: str) -> PaneInfo:
    """Wait until the pane's foreground command is ``name``; return the pane's info."""
    info: PaneInfo | None = None

    async def check() -> bool:
        nonlocal info
        info = await client.resolve(Target(pane_id=pane))
        return info.current_command == name

    await until(check, f"{name} in {pane}")
    assert info is not None
    return info


async def wait_file(path: Path, expected: bytes, timeout: float = 5.0) -> None:
    async def check() -> bool:
        return path.exists() and path.read_bytes() == expected

    with contextlib.suppress(AssertionError):
        await until(check, f"{path}", timeout)
    got = path.read_bytes() if path.exists() else None
    assert got == expected


# ---------------------------------------------------------------------------------------------
# parse_target


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("work:0", Target("work", 0), "work:0"),
        ("work:0.1", Target("work", 0, 1), "work:0.1"),
        ("work:editor", Target("work", "editor"), "work:editor"),
        ("work:editor.2", Target("work", "editor", 2), "work:editor.2"),
        ("work:01", Target("work", 1), "work:1"),
        ("work:=3", Target("work", "3"), "work:=3"),
        ("work:=3.1", Target("work", "3", 1), "work:=3.1"),
        ("work:==x", Target("work", "=x"), "work:==x"),
        ("work:api.v2", Target("work", "api.v2"), "work:api.v2"),
        ("work:python3.11.0", Target("work", "python3.11", 0), "work:python3.11.0"),
        ("work:python3.11", Target("work", "python3", 11), "work:python3.11"),
        ("work:a:b", Target("work", "a:b"), "work:a:b"),
        ("my agents:main window", Target("my agents", "main window"), "my agents:main window"),
        ("wörk:ünï", Target("wörk", "ünï"), "wörk:ünï"),
        ("$1:0", Target("$1", 0), "$1:0"),
        ("%s:0", Target("%s", 0), "%s:0"),
        ("%0", Target(pane_id="%0"), "%0"),
        ("%123", Target(pane_id="%123"), "%123"),
    ],
)
def test_parse_target_good(text: str, expected: Target, canonical: str) -> None:
    t = parse_target(text)
    assert t == expected
    assert str(t) == canonical
    assert parse_target(str(t)) == t


@pytest.mark.parametrize(
    "text",
    [
        "",
        "work",
        ":0",
        "work:",
        "work:.1",
        "work:0.",
        "work:=",
        "%",
        "%x",
        "%1.0",
        "%-1",
        "wo.rk:0",
        " work:0",
        "work :0",
        "work: 0",
        "work:0 ",
        "wo\x1brk:0",
        "work:0\n",
        "work:a\tb",
        "work:\x7f",
        "work:99999999999",
        "work:0.99999999999",
    ],
)
def test_parse_target_bad(text: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_target(text)
    assert "\n" not in str(e.value)


_names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    session=_names,
    window=st.one_of(st.integers(0, 2**31 - 1), _names),
    pane=st.one_of(st.none(), st.integers(0, 2**31 - 1)),
)
def test_target_round_trips(session: str, window: int | str, pane: int | None) -> None:
    # Whatever Target accepts, its canonical form parses back to the same target.
    try:
        t = Target(session, window, pane)
    except UsageError:
        return
    assert parse_target(str(t)) == t


def test_target_constructor_validates() -> None:
    with pytest.raises(UsageError):
        Target("work", None)
    with pytest.raises(UsageError):
        Target("work", 0, pane_id="%1")
    with pytest.raises(UsageError):
        Target("work", -1)
    with pytest.raises(UsageError):
        Target(pane_id="1")
    with pytest.raises(UsageError):  # would print as window "python3", pane 11
        Target("work", "python3.11")


# ---------------------------------------------------------------------------------------------
# resolve


async def test_session_match_is_exact(server: Server, client: TmuxClient) -> None:
    wb = server.new_session("workbench", "cat")
    with pytest.raises(TargetMissing) as e:
        await client.resolve(parse_target("work:0"))
    assert e.value.reason == "target-missing"
    w = server.new_session("work", "cat")
    assert (await client.resolve(parse_target("work:0"))).pane_id == w
    assert (await client.resolve(parse_target("workbench:0"))).pane_id == wb
    with pytest.raises(TargetMissing):
        await client.resolve(parse_target("wor:0"))


async def test_window_by_index_and_exact_name(server: Server, client: TmuxClient) -> None:
    p0 = server.new_session("work", "cat", window_name="main")
    p1 = server.new_window("work", "cat", "editor")
    p2 = server.new_window("work", "cat", "3")
    p3 = server.new_window("work", "cat", "python3.11")
    p4 = server.new_window("work", "cat", "ed")

    async def pane(text: str) -> str:
        return (await client.resolve(parse_target(text))).pane_id

    assert await pane("work:0") == p0
    assert await pane("work:main") == p0
    assert await pane("work:1") == p1
    assert await pane("work:editor") == p1
    assert await pane("work:ed") == p4  # not a prefix of "editor"
    assert await pane("work:2") == p2
    assert await pane("work:=3") == p2  # the window *named* 3 ...
    assert await pane("work:3") == p3  # ... is not window index 3
    assert await pane("work:python3.11.0") == p3
    for missing in ("work:edit", "work:9", "work:=9", "work:Editor", "work:editor.1"):
        with pytest.raises(TargetMissing):
            await client.resolve(parse_target(missing))
    info = await client.resolve(parse_target("work:editor"))
    assert (info.session, info.window_index, info.window_name, info.pane_index) == (
        "work",
        1,
        "editor",
        0,
    )


async def test_duplicate_window_names_are_ambiguous(server: Server, client: TmuxClient) -> None:
    server.new_session("work", "cat", window_name="dup")
    server.new_window("work", "cat", "dup")
    with pytest.raises(TargetAmbiguous) as e:
        await client.resolve(parse_target("work:dup"))
    assert e.value.reason == "target-ambiguous"
    assert isinstance(e.value, TargetMissing)
    assert (await client.resolve(parse_target("work:1"))).window_index == 1


async def test_panes_by_index_active_and_id(server: Server, client: TmuxClient) -> None:
    p0 = server.new_session("work", "cat")
    p1 = server.tmux("split-window", "-t", p0, "-P", "-F", "#{pane_id}", "cat").strip()
    assert (await client.resolve(parse_target("work:0.0"))).pane_id == p0
    assert (await client.resolve(parse_target("work:0.1"))).pane_id == p1
    assert (await client.resolve(parse_target("work:0"))).pane_id == p1  # split made p1 active
    server.tmux("select-pane", "-t", p0)
    active = await client.resolve(parse_target("work:0"))
    assert active.pane_id == p0 and active.active
    assert (await client.resolve(parse_target(p1))).pane_index == 1
    with pytest.raises(TargetMissing):
        await client.resolve(parse_target("work:0.2"))
    with pytest.raises(TargetMissing):
        await client.resolve(parse_target("%9999"))


async def test_pane_info_fields(server: Server, client: TmuxClient) -> None:
    pane = server.new_session("work", "exec sleep 60")
    info = await wait_command(client, pane, "sleep")
    assert info.pane_id == pane
    assert info.pane_pid == int(server.tmux("display", "-p", "-t", pane, "#{pane_pid}"))
    assert psutil.Process(info.pane_pid).name() == "sleep"
    assert info.tty.startswith("/dev/")
    assert not info.dead and not info.in_mode and info.mode == ""
    assert abs(info.activity - time.time()) < 60


async def test_non_ascii_names_without_a_utf8_locale(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without -u, a client with no UTF-8 locale prints "w_rk" and nothing would ever match.
    for var in ("LANG", "LC_ALL", "LC_CTYPE"):
        monkeypatch.delenv(var, raising=False)
    pane = server.new_session("wörk", "cat", window_name="ünï 🎉")
    client = TmuxClient(server.sock)
    info = await client.resolve(parse_target("wörk:ünï 🎉"))
    assert (info.pane_id, info.session, info.window_name) == (pane, "wörk", "ünï 🎉")


async def test_current_command_with_tabs_and_newlines(server: Server, client: TmuxClient) -> None:
    # #{pane_current_command} is raw argv[0]: it must not break record parsing.
    script = server.root / "argv0.py"
    script.write_text("import os; os.execvp('sleep', ['we\\tir\\n\\x1ed', '60'])\n")
    pane = server.new_session("weird", f"exec python3 {script}")
    server.new_session("other", "cat")

    async def weird() -> bool:
        return (await client.resolve(Target(pane_id=pane))).current_command == "we\tir\n\x1ed"

    await until(weird, "argv0")
    panes = await client.list_panes()
    assert sorted(p.session for p in panes) == ["other", "weird"]
    assert {p.pane_id for p in panes if p.session == "weird"} == {pane}


async def test_list_panes_and_server_running(server: Server, client: TmuxClient) -> None:
    a = server.new_session("a", "cat")
    b = server.new_window("a", "cat", "w")
    c = server.new_session("b", "cat")
    assert await client.server_running()
    panes = await client.list_panes()
    assert {p.pane_id for p in panes} == {a, b, c}
    assert all(p.pane_pid > 0 for p in panes)


# ---------------------------------------------------------------------------------------------
# failures of the client itself


async def test_server_missing(server: Server) -> None:
    client = TmuxClient(str(server.root / "nosock"))
    assert not await client.server_running()
    with pytest.raises(ServerMissing) as e:
        await client.resolve(parse_target("work:0"))
    assert e.value.reason == "server-missing"
    with pytest.raises(ServerMissing):
        await client.paste("%0", "hello", "asched-x")
    # A stale socket file (nobody listening): "no server running on ...".
    import socket

    stale = str(server.root / "stale")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(stale)
    with pytest.raises(ServerMissing):
        await TmuxClient(stale).list_panes()
    assert not (server.root / "nosock").exists()  # -N: nothing started a server


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("tmux_bin", ["/nonexistent/tmux", "asched-no-such-tmux"])
def test_tmux_missing(loop: str, tmux_bin: str) -> None:
    client = TmuxClient("/tmp/asched-none", tmux_bin=tmux_bin)
    with pytest.raises(TmuxMissing) as e:
        run_on(loop, client.server_running())
    assert e.value.reason == "tmux-missing"


def run_on(loop: str, coro: Awaitable[object]) -> object:
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop

    async def main() -> object:
        async with asyncio.timeout(20):
            return await coro

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


def fake_tmux(root: Path, body: str) -> str:
    path = root / "fake-tmux"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_timeout_kills_and_reaps(loop: str, server: Server) -> None:
    pids = server.root / "pids"
    # A shell that leaves a grandchild holding the pipes: killing only the shell would leave
    # communicate() waiting for EOF.
    tmux_bin = fake_tmux(server.root, f"sleep 30 & echo $$ $! > {pids}\nwait\n")
    client = TmuxClient(server.sock, timeout_s=0.3, tmux_bin=tmux_bin)
    t0 = time.monotonic()
    with pytest.raises(TmuxTimeout) as e:
        run_on(loop, client.run("list-sessions"))
    assert e.value.reason == "timeout"
    assert time.monotonic() - t0 < 3
    child, grandchild = map(int, pids.read_text().split())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # reaped: not even a zombie is left
    deadline = time.monotonic() + 2
    while not gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gone(grandchild)


async def test_cancel_kills_and_reaps(server: Server) -> None:
    pids = server.root / "pids"
    tmux_bin = fake_tmux(server.root, f"echo $$ > {pids}\nexec sleep 30\n")
    client = TmuxClient(server.sock, timeout_s=10, tmux_bin=tmux_bin)
    task = asyncio.create_task(client.run("list-sessions"))
    await until(lambda: asyncio.sleep(0, pids.exists()), "fake tmux start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(int(pids.read_text()), 0)


async def test_child_environment_and_argv(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TMUX", "TMUX_PANE", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.setenv(var, "leak")
    out = server.root / "out"
    tmux_bin = fake_tmux(
        server.root, f'printf "%s\\n" "$@" > {out}.argv\nenv > {out}.env\ncat > {out}.stdin\n'
    )
    client = TmuxClient(server.sock, tmux_bin=tmux_bin)
    call = await client.run("list-sessions", "-F", "#{session_name}")
    assert call.rc == 0
    assert out.with_suffix(".argv").read_text().split("\n")[:-1] == [
        "-N",
        "-u",
        "-S",
        server.sock,
        "list-sessions",
        "-F",
        "#{session_name}",
    ]
    env = out.with_suffix(".env").read_text()
    assert "leak" not in env
    assert out.with_suffix(".stdin").read_bytes() == b""  # /dev/null when no input
    await client.run("load-buffer", "-", input=b"body")
    assert out.with_suffix(".stdin").read_bytes() == b"body"


# ---------------------------------------------------------------------------------------------
# paste


HOSTILE = {
    "semicolon": "check in;",
    "escaped-semicolon": "check in \\;",
    "lone-semicolon": ";",
    "shell": "$(touch /tmp/asched-pwned) `id` ${HOME} $HOME && rm -rf / || true",
    "formats": "100% #{pane_id} #S #[fg=red] ## %s %%",
    "tab": "a\tb\t\tc",
    "lines": "line 1\nline 2\n\nline 4",
    "dash": "-t %0 --",
    "keys": "Enter",
    "keys2": "C-c Enter Escape M-x",
    "quotes": "'single' \"double\" \\backslash\\ \\n",
    "spaces": "  leading and trailing  ",
    "emoji": "👩‍👩‍👧 🎉 🇩🇪 ✔︎",
    "rtl": "שלום עולם مرحبا بالعالم \u200fmixed\u200e LTR",
    "combining": "e\u0301 n\u0303 a\u0308 Z\u0335\u0321\u034e",
    "cjk": "日本語のテキスト 한국어",
    "long-lines": "\n".join(f"{i:05d} " + "x" * 200 for i in range(300)),
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
async def test_paste_hostile_body_arrives_exactly(
    server: Server, client: TmuxClient, body: str
) -> None:
    out = server.root / "out"
    pane = server.new_session("recv", f"exec cat > {out}")
    await wait_command(client, pane, "cat")
    await client.paste(pane, body, "asched-test-1")
    await client.send_enter(pane)
    # Cooked tty: paste-buffer sends LF as CR, ICRNL makes it LF again; Enter adds the last LF.
    await wait_file(out, body.encode() + b"\n")
    assert server.tmux("list-buffers") == ""
    assert not Path("/tmp/asched-pwned").exists()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_paste_64k_single_line_raw_tty(loop: str, server: Server) -> None:
    # A canonical tty keeps only 4095 bytes of a line; raw mode takes everything.
    out = server.root / "out"
    pane = server.new_session("recv", f"stty raw -echo && exec cat > {out}")
    body = "".join(chr(0x21 + i % 94) for i in range(65536))
    client = TmuxClient(server.sock)

    async def go() -> None:
        await wait_command(client, pane, "cat")
        await client.paste(pane, body, "asched-big")
        await wait_file(out, body.encode(), timeout=10)

    run_on(loop, go())


async def test_paste_64k_multi_line(server: Server, client: TmuxClient) -> None:
    out = server.root / "out"
    pane = server.new_session("recv", f"exec cat > {out}")
    body = "\n".join("é✓ " + f"{i:06d}" * 12 for i in range(900))
    assert len(body.encode()) > 65536
    await wait_command(client, pane, "cat")
    await client.paste(pane, body, "asched-big")
    await client.send_enter(pane)
    await wait_file(out, body.encode() + b"\n", timeout=10)


async def test_canonical_tty_truncates_long_lines(server: Server, client: TmuxClient) -> None:
    # Documents the kernel limit that makes the raw-mode receiver necessary.
    out = server.root / "out"
    pane = server.new_session("recv", f"exec cat > {out}")
    await wait_command(client, pane, "cat")
    await client.paste(pane, "x" * 5000, "asched-long")
    await client.send_enter(pane)
    await wait_file(out, b"x" * 4095 + b"\n")


async def test_bash_bracketed_paste_waits_for_enter(server: Server, client: TmuxClient) -> None:
    m1, m2 = server.root / "m1", server.root / "m2"
    pane = server.new_session("sh", "exec env PS1='READY$ ' bash --norc --noprofile -i")

    async def prompt() -> bool:
        return (await client.cursor_line(pane)) == "READY$"

    await until(prompt, "bash prompt")
    await client.paste(pane, f"touch {m1}\ntouch {m2}", "asched-bash")

    async def shown() -> bool:
        return f"touch {m2}" in await client.capture(pane)

    await until(shown, "pasted text on screen")
    await asyncio.sleep(0.3)  # bash had time to run it, if it were going to
    assert not m1.exists() and not m2.exists()
    assert (await client.cursor_line(pane)).endswith(f"touch {m2}")
    await client.send_enter(pane)

    async def ran() -> bool:
        return m1.exists() and m2.exists()

    await until(ran, "both commands after Enter")


async def test_paste_failure_leaves_no_buffer(server: Server, client: TmuxClient) -> None:
    pane = server.new_session("recv", "cat")
    with pytest.raises(TargetMissing):
        await client.paste("%9999", "hello", "asched-orphan")
    assert server.tmux("list-buffers") == ""
    with pytest.raises(TargetMissing):
        await client.send_enter("%9999")
    await client.paste(pane, "ok", "asched-ok")
    assert server.tmux("list-buffers") == ""


async def test_dead_pane_is_refused_and_server_survives(server: Server, client: TmuxClient) -> None:
    # tmux 3.3a: paste-buffer or send-keys -l into a dead pane crashes the server (every session).
    live = server.new_session("d", "cat")
    server.tmux("set-option", "-g", "remain-on-exit", "on")
    dead = server.new_window("d", "exit 0")

    async def died() -> bool:
        return (await client.resolve(Target(pane_id=dead))).dead

    await until(died, "pane death")
    with pytest.raises(PaneDead) as e:
        await client.paste(dead, "hello", "asched-dead")
    assert e.value.reason == "pane-dead" and isinstance(e.value, TargetMissing)
    with pytest.raises(PaneDead):
        await client.send_enter(dead)
    assert server.tmux("list-buffers") == ""
    assert await client.server_running()
    await client.paste(live, "still works", "asched-live")
    await client.send_enter(live)
    assert server.tmux("list-buffers") == ""


@pytest.mark.parametrize(
    "body", ["", "a\x1b[201~b", "ctrl-c \x03", "cr\r\n", "nul\x00", "del\x7f", "\ud800", "\x85"]
)
def test_check_body_refuses(body: str) -> None:
    with pytest.raises(UsageError):
        check_body(body)


async def test_paste_refuses_bad_input_without_calling_tmux() -> None:
    client = TmuxClient("/tmp/asched-none", tmux_bin="/nonexistent/tmux")
    with pytest.raises(UsageError):
        await client.paste("%1", "x" * (MAX_BODY_BYTES + 1), "asched-x")
    with pytest.raises(UsageError):
        await client.paste("%1", "x", "bad;name")
    with pytest.raises(UsageError):
        await client.paste("work:0", "x", "asched-x")
    with pytest.raises(UsageError):
        await client.send_enter("1")


# ---------------------------------------------------------------------------------------------
# modes and screen


async def test_copy_mode_and_cancel(server: Server, client: TmuxClient) -> None:
    pane = server.new_session("m", "cat")
    await client.cancel_mode(pane)  # in no mode: no error
    server.tmux("copy-mode", "-t", pane)
    info = await client.resolve(Target(pane_id=pane))
    assert info.in_mode and info.mode == "copy-mode"
    await client.cancel_mode(pane)
    assert not (await client.resolve(Target(pane_id=pane))).in_mode
    # clock mode: send-keys -X cancel cannot leave it; copy-mode -q can.
    server.tmux("clock-mode", "-t", pane)
    server.tmux("copy-mode", "-t", pane)  # modes stack
    assert (await client.resolve(Target(pane_id=pane))).in_mode
    await client.cancel_mode(pane)
    assert not (await client.resolve(Target(pane_id=pane))).in_mode
    with pytest.raises(TargetMissing):
        await client.cancel_mode("%9999")


async def test_capture_and_cursor_line(server: Server, client: TmuxClient) -> None:
    pane = server.new_session("c", "printf 'one\\ntwo\\nthree'; exec cat")
    await wait_command(client, pane, "cat")

    async def drawn() -> bool:
        return (await client.cursor_line(pane)) == "three"

    await until(drawn, "output")
    text = await client.capture(pane)
    assert text.startswith("one\ntwo\nthree\n")
    assert (await client.capture(pane, start=-100)).startswith("one\n")
    await client.paste(pane, "typed", "asched-c")
    await until(lambda: _eq(client.cursor_line(pane), "threetyped"), "typed text")
    with pytest.raises(TargetMissing):
        await client.capture("%9999")
    with pytest.raises(TargetMissing):
        await client.cursor_line("%9999")


async def _eq(value: Awaitable[str], expected: str) -> bool:
    return await value == expected


# ---------------------------------------------------------------------------------------------
# the shell guard


async def test_shell_guard(server: Server, client: TmuxClient) -> None:
    panes = {
        "bash": server.new_session("g", "exec bash --norc --noprofile -i"),
        "sh": server.new_window("g", "exec sh -i"),
        "login": server.new_window("g", "exec bash -c 'exec -a -bash bash --norc --noprofile -i'"),
        "cat": server.new_window("g", "exec cat"),
        "python3": server.new_window("g", "exec python3 -q"),
        # dash does not exec the last command: sh is the group leader, python3 reads the keys.
        "sh-parent": server.new_window("g", "python3 -q; true"),
    }
    expect = {
        "bash": True,
        "sh": True,
        "login": True,
        "cat": False,
        "python3": False,
        "sh-parent": False,
    }
    commands = {"bash": "bash", "sh": "sh", "login": "bash", "cat": "cat", "python3": "python3"}
    for key, name in commands.items():
        await wait_command(client, panes[key], name)

    async def child_started() -> bool:
        # Started and exec'd: a child forked a moment ago is still "sh" (the control client
        # answers fast enough to see that moment).
        info = await client.resolve(Target(pane_id=panes["sh-parent"]))
        return any(c.name() == "python3" for c in psutil.Process(info.pane_pid).children())

    await until(child_started, "python3 under sh")
    for key, pane in panes.items():
        info = await client.resolve(Target(pane_id=pane))
        assert pane_runs_shell(info) is expect[key], (key, info, foreground_commands(info))
    sh_parent = await client.resolve(Target(pane_id=panes["sh-parent"]))
    assert sh_parent.current_command == "sh"
    assert foreground_commands(sh_parent) == ("python3",)


async def test_shell_guard_foreground_job(server: Server, client: TmuxClient) -> None:
    pane = server.new_session("g", "exec env PS1='READY$ ' bash --norc --noprofile -i")
    await until(lambda: _eq(client.cursor_line(pane), "READY$"), "prompt")
    server.tmux("send-keys", "-t", pane, "python3 -q", "Enter")
    info = await wait_command(client, pane, "python3")
    assert not pane_runs_shell(info)
    server.tmux("send-keys", "-t", pane, "exit()", "Enter")
    info = await wait_command(client, pane, "bash")
    assert pane_runs_shell(info)
    # A background job does not make the shell less of a shell.
    server.tmux("send-keys", "-t", pane, "sleep 100 &", "Enter")
    await until(lambda: asyncio.sleep(0, bool(psutil.Process(info.pane_pid).children())), "bg")
    assert pane_runs_shell(await client.resolve(Target(pane_id=pane)))
    # A foreground program that never reads the tty: by design not a shell (see the docstring).
    server.tmux("send-keys", "-t", pane, "sleep 100", "Enter")
    info = await wait_command(client, pane, "sleep")
    assert foreground_commands(info) == ("sleep",)
    assert not pane_runs_shell(info)


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux script is not installed")
async def test_shell_guard_looks_through_wrappers(server: Server, client: TmuxClient) -> None:
    # script (like sudo with use_pty) runs the shell on a pty of its own.
    pane = server.new_session("g", "exec script -qc 'bash --norc --noprofile -i' /dev/null")
    info = await wait_command(client, pane, "script")

    async def inner_bash() -> bool:
        return foreground_commands(info) == ("bash",)

    await until(inner_bash, "bash behind script")
    assert pane_runs_shell(info)
    assert not pane_runs_shell(info, frozenset({"zsh"}))


def test_shell_guard_falls_back_to_current_command() -> None:
    def info(command: str) -> PaneInfo:
        return PaneInfo("%1", "s", 0, "w", 0, True, False, False, "", 0, "", 0, command)

    assert pane_runs_shell(info("bash"))
    assert pane_runs_shell(info("-zsh"))
    assert pane_runs_shell(info("/usr/bin/fish"))
    assert not pane_runs_shell(info("python3"))
    assert not pane_runs_shell(info("bash"), frozenset({"zsh"}))
    assert foreground_commands(info("bash")) is None


def test_error_hierarchy() -> None:
    e = TargetMissing(detail="work:0: no session")
    assert (e.reason, e.detail, str(e)) == ("target-missing", "work:0: no session", e.detail)
    assert isinstance(e, TmuxError)
    assert TmuxError("x\ny", reason="odd").detail == "x y"


# ---------------------------------------------------------------------------------------------
# bursts: load_buffers, then paste_buffers


async def paste_many(
    client: TmuxClient, items: list[tuple[str, str, str]], spool: Path
) -> list[str]:
    """Stage every (pane, text, buffer), then paste them all: the Typist's two steps."""
    await client.load_buffers([(name, text) for _, text, name in items], spool)
    assert list(spool.iterdir()) == []  # bodies removed once loaded
    return await client.paste_buffers([(pane, name, None) for pane, _, name in items])


async def test_burst_pastes_report_each_outcome(server: Server, client: TmuxClient) -> None:
    outs = [server.root / f"pm{n}" for n in range(3)]
    panes = [server.new_session(f"pm{n}", f"cat > {outs[n]}") for n in range(3)]
    server.tmux("set-option", "-g", "remain-on-exit", "on")
    dead = server.new_window("pm0", "exit 0")

    async def died() -> bool:
        return (await client.resolve(Target(pane_id=dead))).dead

    await until(died, "pane death")
    spool = server.root / "spool"
    spool.mkdir(mode=0o700)
    # A pane that does not exist fails its guard; whatever tmux does next, the outcomes say
    # exactly what was pasted.
    items = [
        (panes[0], "first;", "pm-a"),
        (dead, "into the dead", "pm-b"),
        (panes[1], "second $(x)", "pm-c"),
        ("%9999", "nowhere", "pm-d"),
        (panes[2], "never run", "pm-e"),
    ]
    outcomes = await paste_many(client, items, spool)
    assert outcomes[:4] == ["pasted", "dead", "pasted", "not-pasted"]
    for pane in panes:
        await client.send_enter(pane)
    await until(lambda: asyncio.sleep(0, outs[1].read_text() == "second $(x)\n"), "second")
    assert outs[0].read_text() == "first;\n"
    last = ("never run" if outcomes[4] == "pasted" else "") + "\n"
    await until(lambda: asyncio.sleep(0, outs[2].read_text() == last), "the last item")
    # Pasted and dead ones are deleted; one not pasted stays loaded (a later paste may use it).
    left = await client.buffer_names("pm-")
    assert left == {"pm-d"} | ({"pm-e"} if outcomes[4] == "not-pasted" else set())
    await client.delete_buffers(sorted(left))
    assert await client.buffer_names() == set()
    assert server.tmux("display-message", "-p", "#{pid}").strip()  # the server survived


async def test_burst_pastes_split_long_command_lines(server: Server, client: TmuxClient) -> None:
    out = server.root / "many"
    panes = [server.new_session(f"s{n}", f"cat > {out}.{n}") for n in range(60)]
    spool = server.root / "spool"
    spool.mkdir(mode=0o700)
    items = [(p, f"m{n}", f"burst-buffer-name-{n:03d}") for n, p in enumerate(panes)]
    assert await paste_many(client, items, spool) == ["pasted"] * 60
    assert await client.buffer_names() == set()


async def test_enter_and_look_in_many_panes_at_once(server: Server, client: TmuxClient) -> None:
    outs = [server.root / f"e{n}" for n in range(40)]
    panes = [server.new_session(f"e{n}", f"cat > {outs[n]}") for n in range(40)]
    spool = server.root / "spool"
    spool.mkdir(mode=0o700)
    items = [(p, f"line {n}", f"eb-{n}") for n, p in enumerate(panes)]
    assert await paste_many(client, items, spool) == ["pasted"] * 40

    async def typed() -> bool:
        # The pane's echo of a paste reaches tmux a moment after the paste: look until it has.
        looks = await client.screens([*panes, "%9999"])
        assert looks[40] is None
        return [s.cursor_line for s in looks[:40] if s] == [f"line {n}" for n in range(40)]

    await until(typed, "the pastes' echo in every pane")
    assert await client.send_enter_many([*panes, "%9999"]) == ["entered"] * 40 + ["missing"]
    for n, out in enumerate(outs):
        await until(
            lambda out=out, n=n: asyncio.sleep(0, out.read_text() == f"line {n}\n"), "Enter"
        )
    assert [s and s.cursor_line for s in await client.screens(panes)] == [""] * 40


async def test_enter_only_reaches_the_program_that_was_typed_into(
    server: Server, client: TmuxClient
) -> None:
    out = server.root / "respawned"
    pane = server.new_session("rp", f"cat >> {out}")
    first = (await client.resolve(Target(pane_id=pane))).pane_pid
    await client.paste(pane, "typed into the first cat", "asched-rp")
    # The pane gets a new program (respawn-pane -k): the typed line went with the old one.
    server.tmux("respawn-pane", "-k", "-t", pane, f"cat >> {out}")

    async def respawned() -> bool:
        return (await client.resolve(Target(pane_id=pane))).pane_pid != first

    await until(respawned, "respawn")
    with pytest.raises(PaneReplaced) as e:
        await client.send_enter(pane, first)
    assert e.value.reason == "pane-replaced"
    other = server.new_session("rp2", "cat")
    other_pid = (await client.resolve(Target(pane_id=other))).pane_pid
    assert await client.send_enter_many([pane, other], [first, other_pid]) == [
        "replaced",
        "entered",
    ]
    assert not out.exists() or out.read_text() == ""  # no Enter ever reached the new cat
    now = (await client.resolve(Target(pane_id=pane))).pane_pid
    await client.send_enter(pane, now)
    await until(lambda: asyncio.sleep(0, out.exists() and out.read_text() == "\n"), "Enter")


async def test_a_paste_only_reaches_the_program_the_checks_saw(
    server: Server, client: TmuxClient
) -> None:
    out = server.root / "guarded"
    pane = server.new_session("gp", f"cat >> {out}")
    first = (await client.resolve(Target(pane_id=pane))).pane_pid
    await client.load_buffers([("gp-1", "for the first cat")])
    server.tmux("respawn-pane", "-k", "-t", pane, f"cat >> {out}")

    async def respawned() -> bool:
        return (await client.resolve(Target(pane_id=pane))).pane_pid != first

    await until(respawned, "respawn")
    with pytest.raises(PaneReplaced):
        await client.paste_buffer(pane, "gp-1", first)
    assert await client.buffer_names("gp-") == set()  # deleted, nothing pasted
    assert await client.cursor_line(pane) == ""
    await client.load_buffers([("gp-2", "a"), ("gp-3", "b")], server.root)
    assert await client.paste_buffers([(pane, "gp-2", first), (pane, "gp-3", None)]) == [
        "replaced",
        "pasted",
    ]


async def test_a_burst_client_that_times_out_makes_its_items_unknown(
    server: Server, client: TmuxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    panes = [server.new_session(f"u{n}", "cat") for n in range(60)]
    names = [f"burst-buffer-name-{n:03d}" for n in range(60)]
    spool = server.root / "spool"
    spool.mkdir(mode=0o700)
    await client.load_buffers([(name, f"m{n}") for n, name in enumerate(names)], spool)
    real_run = client.run

    async def run(*args: str, **kw: object) -> object:
        if names[-1] in " ".join(args):  # the last client of the burst hangs
            raise TmuxTimeout("timed out")
        return await real_run(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "run", run)
    outcomes = await client.paste_buffers([(p, n, None) for p, n in zip(panes, names, strict=True)])
    assert "unknown" in outcomes and outcomes[-1] == "unknown"
    first_unknown = outcomes.index("unknown")
    assert first_unknown > 0
    assert outcomes[:first_unknown] == ["pasted"] * first_unknown
    assert set(outcomes[first_unknown:]) == {"unknown"}


async def test_a_pane_that_is_gone_is_a_replaced_pane_never_a_success(
    server: Server, client: TmuxClient, tmp_path: Path
) -> None:
    # tmux 3.3a: the guard's -t on a killed pane fails silently, exit 0, its mark empty.
    keep = server.new_session("keep", "cat")
    gone = server.new_window("keep", "cat")
    pid = (await client.resolve(Target(pane_id=gone))).pane_pid
    server.tmux("kill-pane", "-t", gone)
    await client.load_buffers([("gone-b", "never typed")], tmp_path)
    with pytest.raises(PaneReplaced, match="gone"):
        await client.paste_buffer(gone, "gone-b", pid)
    assert await client.buffer_names("gone-") == set()  # deleted, not pasted
    with pytest.raises(PaneReplaced, match="gone"):
        await client.send_enter(gone, pid)
    keep_pid = (await client.resolve(Target(pane_id=keep))).pane_pid
    assert await client.send_enter_many([gone, keep], [pid, keep_pid]) == [
        "replaced",
        "entered",
    ]
    await client.load_buffers([("gone-c", "x"), ("gone-d", "y")], tmp_path)
    assert await client.paste_buffers([(gone, "gone-c", pid), (keep, "gone-d", keep_pid)]) == [
        "replaced",
        "pasted",
    ]


async def test_a_frozen_server_costs_at_most_the_timeout_and_a_cancel_returns_soon(
    server: Server,
) -> None:
    # A tmux client hands its stdout to the server: after the client is killed, its pipe ends
    # only when the server closes its copy, which a SIGSTOPped server never does. Neither a
    # timeout nor a cancellation may wait for that (a daemon once took 1,236 s to stop).
    server.new_session("fr", "sleep 3600")
    assert server.pid is not None
    client = TmuxClient(server.sock, timeout_s=0.5)
    os.kill(server.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(TmuxTimeout):
            await client.run("list-sessions")
        timed_out_s = time.monotonic() - started
        call = asyncio.ensure_future(client.run("list-sessions", timeout_s=60))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        cancelled_s = time.monotonic() - started
    finally:
        os.kill(server.pid, signal.SIGCONT)
        client.close()
    assert timed_out_s < 0.5 + REAP_S + 0.5, timed_out_s
    assert cancelled_s < SLICE_S + REAP_S + 0.5, cancelled_s
    assert await TmuxClient(server.sock).server_running()  # the server itself is unharmed
