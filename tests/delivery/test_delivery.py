"""The delivery engine against a real tmux server on a private socket and a real SQLite journal."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asched.core.models import Delivery, NewCheckIn, Once
from asched.core.states import DeliveryState
from asched.delivery.engine import DeliveryEngine
from asched.delivery.hookbook import HookEvent
from asched.delivery.settings import DeliverySettings, with_prefix
from asched.store.async_store import AsyncStore
from asched.tmux.client import TmuxClient
from asched.tmux.targets import parse_target
from tests.support.delivery import FAST
from tests.support.tmux import Server

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def engine_for(
    store: AsyncStore, server: Server, settings: DeliverySettings = FAST
) -> DeliveryEngine:
    return DeliveryEngine(store, TmuxClient(server.sock), settings, spool=server.root / "spool")


async def enqueue(
    store: AsyncStore, engine: DeliveryEngine, target: str, message: str, grace_s: float = 60.0
) -> Delivery:
    now = datetime.now(UTC)
    new = NewCheckIn(target=target, message=message, rule=Once(now), next_due=now, grace_s=grace_s)
    checkin, delivery = await store.add_claimed(new, now)
    engine.submit(checkin, delivery)
    return delivery


async def final(store: AsyncStore, delivery_id: int) -> Delivery:
    row = await store.get_delivery(delivery_id)
    assert row is not None
    return row


async def wait_for(pred: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def hostile_corpus() -> list[str]:
    """Bodies that break send-keys, a shell or tmux's parser if any byte is interpreted."""
    pieces = [
        "ends with a semicolon;",
        "ends with an escaped semicolon \\;",
        "'single' \"double\" `backticks` $(echo pwned) ${HOME} $HOME",
        "100% done, #{pane_id} #{session_name} #[fg=red] ##",
        "tab\tseparated\tcolumns",
        "-leading dash",
        "--also-an-option",
        "Enter",
        "C-c",
        "C-d Escape Up",
        "emoji 🚀🔥 and a family 👨‍👩‍👧‍👦",
        "right-to-left: שלום عليكم",
        "combining: e\u0301 a\u0308 n\u0303 Z\u0337\u0336",
        "line one\nline two\nline three",
        "; send-keys -t 0 'rm -rf /' Enter",
        "\\\\ backslashes \\n \\t \\",
        "{ braces } [ brackets ] < angle > | pipe & amp",
        "~ tilde ^ caret * star ? question ! bang",
    ]
    out = []
    for i in range(500):
        body = pieces[i % len(pieces)]
        out.append(f"[{i:03d}] {body}")
    return out


async def test_hostile_corpus_arrives_byte_exact_exactly_once(
    store: AsyncStore, server: Server
) -> None:
    files = [server.root / f"out{n}" for n in range(10)]
    for n, f in enumerate(files):
        server.new_session(f"c{n}", f"tee {f} > /dev/null")
    engine = engine_for(store, server)
    corpus = hostile_corpus()
    ids = []
    for i, body in enumerate(corpus):
        ids.append((await enqueue(store, engine, f"c{i % 10}:0", body)).id)
    async with asyncio.timeout(90):
        await engine.wait_idle()
    for i, f in enumerate(files):
        expected = "".join(b + "\n" for b in corpus[i::10])
        await wait_for(lambda f=f, e=expected: f.read_text() == e, f"{f} complete", timeout=10)
    states = [(await final(store, d)).state for d in ids]
    assert states.count(DeliveryState.VERIFIED) == 500, states


async def test_64_kib_bodies_arrive_intact(store: AsyncStore, server: Server) -> None:
    raw = server.root / "raw"
    cooked = server.root / "cooked"
    server.new_session("raw", f"stty raw -echo; cat > {raw}")
    server.new_session("cooked", f"cat > {cooked}")
    engine = engine_for(store, server)
    one_line = ("x" * 63 + "é") * 1000  # 65,000 bytes on one line: needs a raw tty
    many_lines = "\n".join(f"{n:05d} " + "y" * 58 for n in range(1000))  # 65 KiB, short lines
    a = await enqueue(store, engine, "raw:0", one_line)
    b = await enqueue(store, engine, "cooked:0", many_lines)
    async with asyncio.timeout(60):
        await engine.wait_idle()
    # A raw tty gets the Enter key as CR; the body itself has no line ends.
    await wait_for(lambda: raw.read_bytes() == one_line.encode() + b"\r", "raw body", 20)
    await wait_for(lambda: cooked.read_text() == many_lines + "\n", "cooked body", 20)
    assert (await final(store, a.id)).state in (DeliveryState.VERIFIED, DeliveryState.UNVERIFIED)
    assert (await final(store, b.id)).state is DeliveryState.VERIFIED


async def test_into_bash_nothing_runs_before_enter(store: AsyncStore, server: Server) -> None:
    a, b = server.root / "a", server.root / "b"
    server.new_session("sh", "bash --norc --noprofile")
    await asyncio.sleep(0.3)  # bash enables bracketed paste when it prints its first prompt
    slow = DeliverySettings(
        settle_s=1.0, verify_delay_s=0.05, min_gap_s=0, shells=frozenset(), retry_base_s=0.05
    )
    engine = engine_for(store, server, slow)
    d = await enqueue(store, engine, "sh:0", f"touch {a}; echo 'x;y' > {b}\ntouch {a}.2")
    deadline = time.monotonic() + 5
    while (await final(store, d.id)).state is not DeliveryState.TYPED:
        assert time.monotonic() < deadline, "never reached typed"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # typed, Enter not pressed yet: nothing may have run
    assert not a.exists() and not b.exists()
    async with asyncio.timeout(10):
        await engine.wait_idle()
    await wait_for(lambda: Path(f"{a}.2").exists() and b.exists(), "both lines ran")
    assert b.read_text() == "x;y\n"


async def test_into_a_python_repl(store: AsyncStore, server: Server) -> None:
    out = server.root / "py"
    server.new_session("py", f"{sys.executable} -q")
    await asyncio.sleep(0.5)
    engine = engine_for(store, server)
    d = await enqueue(store, engine, "py:0", f"x = 6 * 7; open({str(out)!r}, 'w').write(f'{{x}};')")
    async with asyncio.timeout(10):
        await engine.wait_idle()
    await wait_for(out.exists, "the REPL ran the line")
    assert out.read_text() == "42;"
    assert (await final(store, d.id)).state is DeliveryState.VERIFIED


async def test_work_never_reaches_workbench(store: AsyncStore, server: Server) -> None:
    out = server.root / "bench"
    server.new_session("workbench", f"cat > {out}")
    engine = engine_for(store, server)
    d = await enqueue(store, engine, "work:0", "for work only", grace_s=0.5)
    async with asyncio.timeout(10):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert row.state is DeliveryState.FAILED and row.reason == "target-missing"
    assert row.attempts >= 1  # retried before giving up
    assert out.read_text() == ""


@pytest.mark.parametrize("shell", ["bash", "sh", "zsh"])
async def test_shell_panes_get_nothing(store: AsyncStore, server: Server, shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (CI installs it)")
    server.new_session("s", shell)
    await asyncio.sleep(0.3)
    engine = engine_for(store, server)
    d = await enqueue(store, engine, "s:0", "SCHEDULED CHECK-IN: hello")
    async with asyncio.timeout(10):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert (row.state, row.reason) == (DeliveryState.SKIPPED, "shell")
    assert "SCHEDULED" not in server.tmux("capture-pane", "-p", "-t", "=s:0")


async def test_panes_just_started_are_looked_at_once_their_program_runs(
    store: AsyncStore, server: Server
) -> None:
    # Right after new-session the pane's process is tmux's own fork ("tmux: server") until it
    # execs bash: the guard must wait for bash, not type because "tmux" is no shell.
    from asched.tmux.shellguard import pane_starting

    assert pane_starting(("tmux", "tmux: server")) and not pane_starting(("tmux: client",))
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    engine = engine_for(store, server)
    rows = []
    for i in range(10):
        server.new_session(f"b{i}", "bash")
        rows.append(await enqueue(store, engine, f"b{i}:0", f"SCHEDULED CHECK-IN {i}"))
    async with asyncio.timeout(30):
        await engine.wait_idle()
    for i, d in enumerate(rows):
        row = await final(store, d.id)
        assert (row.state, row.reason) == (DeliveryState.SKIPPED, "shell"), i
        assert "SCHEDULED" not in server.tmux("capture-pane", "-p", "-t", f"=b{i}:0")


async def test_copy_mode_wait_policy(store: AsyncStore, server: Server) -> None:
    out = server.root / "cm"
    server.new_session("cm", f"cat > {out}")
    server.tmux("copy-mode", "-t", "=cm:0")
    engine = engine_for(store, server)
    d = await enqueue(store, engine, "cm:0", "after copy mode", grace_s=10)
    await asyncio.sleep(1.0)
    assert out.read_text() == ""  # waiting, nothing typed into copy mode
    assert (await final(store, d.id)).state is DeliveryState.CLAIMED
    server.tmux("send-keys", "-X", "-t", "=cm:0", "cancel")
    async with asyncio.timeout(10):
        await engine.wait_idle()
    await wait_for(lambda: out.read_text() == "after copy mode\n", "delivered after copy mode")
    assert (await final(store, d.id)).state is DeliveryState.VERIFIED


async def test_copy_mode_never_left_is_skipped(store: AsyncStore, server: Server) -> None:
    out = server.root / "cm"
    server.new_session("cm", f"cat > {out}")
    server.tmux("copy-mode", "-t", "=cm:0")
    engine = engine_for(store, server)
    d = await enqueue(store, engine, "cm:0", "never", grace_s=0.6)
    async with asyncio.timeout(10):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert (row.state, row.reason) == (DeliveryState.SKIPPED, "copy-mode")
    assert out.read_text() == ""


async def test_copy_mode_cancel_policy(store: AsyncStore, server: Server) -> None:
    out = server.root / "cm"
    server.new_session("cm", f"cat > {out}")
    server.tmux("copy-mode", "-t", "=cm:0")
    settings = DeliverySettings(settle_s=0.05, verify_delay_s=0.05, min_gap_s=0, copy_mode="cancel")
    engine = engine_for(store, server, settings)
    d = await enqueue(store, engine, "cm:0", "cancelled it")
    async with asyncio.timeout(10):
        await engine.wait_idle()
    await wait_for(lambda: out.read_text() == "cancelled it\n", "delivered")
    assert (await final(store, d.id)).state is DeliveryState.VERIFIED


async def test_no_server_retries_then_fails(store: AsyncStore, tmp_path: Path) -> None:
    engine = DeliveryEngine(
        store, TmuxClient(str(tmp_path / "nosock")), FAST, spool=tmp_path / "spool"
    )
    d = await enqueue(store, engine, "work:0", "hello", grace_s=0.5)
    async with asyncio.timeout(10):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert (row.state, row.reason) == (DeliveryState.FAILED, "server-missing")
    assert row.attempts >= 2


async def test_same_pane_is_serialised_and_spaced(store: AsyncStore, server: Server) -> None:
    out = server.root / "gap"
    server.new_session("g", f"cat > {out}")
    settings = DeliverySettings(settle_s=0.01, verify_delay_s=0.01, min_gap_s=0.3)
    engine = engine_for(store, server, settings)
    started = time.monotonic()
    for i in range(4):
        await enqueue(store, engine, "g:0", f"m{i}")
    async with asyncio.timeout(20):
        await engine.wait_idle()
    assert time.monotonic() - started >= 0.9  # three gaps of 0.3 s
    assert len(engine._pane_locks) == 0 and len(engine._target_locks) == 0  # nothing kept
    lines = out.read_text().splitlines()
    assert sorted(lines) == ["m0", "m1", "m2", "m3"]


async def test_recovery_never_retypes(store: AsyncStore, server: Server) -> None:
    out = server.root / "rec"
    server.new_session("r", f"cat > {out}")
    engine = engine_for(store, server)
    now = datetime.now(UTC)
    rows = {}
    for state in ("claimed", "typing", "typed", "submitted"):
        new = NewCheckIn(target="r:0", message=f"was {state}", rule=Once(now), next_due=now)
        _, d = await store.add_claimed(new, now)
        pane = (await engine.tmux.resolve(parse_target("r:0"))).pane_id
        if state != "claimed":
            await store.transition(d.id, DeliveryState.TYPING, pane=pane)
        if state in ("typed", "submitted"):
            await store.transition(d.id, DeliveryState.TYPED)
        if state == "submitted":
            await store.transition(d.id, DeliveryState.SUBMITTED)
        rows[state] = d.id
    assert await engine.recover() == 4
    async with asyncio.timeout(10):
        await engine.wait_idle()
    await wait_for(lambda: "was claimed" in out.read_text(), "the claimed row delivered")
    text = out.read_text()
    # Only the row that never reached the pane was typed; the others were settled by looking.
    assert text == "was claimed\n"
    states = {k: (await final(store, v)).state for k, v in rows.items()}
    assert states["claimed"] is DeliveryState.VERIFIED
    assert states["typing"] is DeliveryState.UNVERIFIED
    assert states["typed"] is DeliveryState.UNVERIFIED
    assert states["submitted"] is DeliveryState.VERIFIED


def chatty(out: Path, seconds: float, every_s: float = 0.5) -> str:
    """A program that prints every ``every_s`` for ``seconds`` (busy), then stays quiet, and
    writes what it reads to ``out``."""
    script = out.with_suffix(".py")
    script.write_text(
        "import sys, threading, time\n"
        f"def sink():\n    with open({str(out)!r}, 'a') as f:\n"
        "        for line in sys.stdin:\n            f.write(line); f.flush()\n"
        "threading.Thread(target=sink, daemon=True).start()\n"
        f"end = time.time() + {seconds}\n"
        "while time.time() < end:\n"
        f"    print('working', time.time(), flush=True); time.sleep({every_s})\n"
        "time.sleep(3600)\n"
    )
    return f"{sys.executable} {script}"


async def test_recovery_pastes_a_committed_paste_that_was_never_made(
    store: AsyncStore, server: Server
) -> None:
    # A daemon died after committing "typing" and before its paste: the body is still staged in
    # its buffer. The next one pastes it (once); it deletes buffers of rows no longer in flight.
    out = server.root / "staged"
    server.new_session("st", f"cat > {out}")
    engine = engine_for(store, server)
    now = datetime.now(UTC)
    pane = (await engine.tmux.resolve(parse_target("st:0"))).pane_id
    ids = []
    for message in ("staged, never pasted", "pasted already"):
        new = NewCheckIn(target="st:0", message=message, rule=Once(now), next_due=now)
        _, d = await store.add_claimed(new, now)
        await store.transition(d.id, DeliveryState.TYPING, pane=pane)
        ids.append(d.id)
    # One more, committed an hour ago and never pasted: past its grace, "skip" skips it.
    old = now - timedelta(hours=1)
    new = NewCheckIn(target="st:0", message="too late", rule=Once(old), next_due=old, grace_s=60)
    _, late = await store.add_claimed(new, old)
    await store.transition(late.id, DeliveryState.TYPING, pane=pane)
    typist = engine._typist
    spool = server.root / "spool"
    staged = [
        (typist.buffer(ids[0]), "staged, never pasted"),
        (typist.buffer(late.id), "too late"),
        (typist.buffer(999), "stale"),
    ]
    await engine.tmux.load_buffers(staged, spool)
    assert await typist.staged() == {name for name, _ in staged}
    assert await engine.recover() == 3
    async with asyncio.timeout(10):
        await engine.wait_idle()
    await wait_for(lambda: out.exists() and out.read_text() != "", "the staged paste")
    assert out.read_text() == "staged, never pasted\n"
    assert (await final(store, ids[0])).state is DeliveryState.VERIFIED
    # The other one's buffer was gone (pasted) and its text is not on the line: unknown.
    assert (await final(store, ids[1])).state is DeliveryState.UNVERIFIED
    too_late = await final(store, late.id)
    assert (too_late.state, too_late.reason) == (DeliveryState.SKIPPED, "missed")
    assert await typist.staged() == set()  # the stale buffer was deleted too


async def test_if_idle_skips_a_busy_pane_and_serves_a_quiet_one(
    store: AsyncStore, server: Server
) -> None:
    busy, quiet = server.root / "busy", server.root / "quiet"
    server.new_session("busy", chatty(busy, 3600, every_s=1.0))  # prints every second
    server.new_session("quiet", f"cat > {quiet}")
    await asyncio.sleep(6.5)  # quiet for 5 s, even counting the second tmux rounds away
    engine = engine_for(store, server)
    now = datetime.now(UTC)
    rows = []
    for target in ("busy:0", "quiet:0"):
        new = NewCheckIn(target=target, message="nudge", rule=Once(now), next_due=now, idle_s=5.0)
        checkin, delivery = await store.add_claimed(new, now)
        engine.submit(checkin, delivery)
        rows.append(delivery.id)
    async with asyncio.timeout(20):
        await engine.wait_idle()
    b, q = [await final(store, r) for r in rows]
    assert (b.state, b.reason) == (DeliveryState.SKIPPED, "busy")
    assert q.state is DeliveryState.VERIFIED
    await wait_for(lambda: quiet.read_text() == "nudge\n", "the quiet pane got it")
    assert not busy.exists() or "nudge" not in busy.read_text()


async def test_when_idle_waits_for_the_first_quiet_moment(
    store: AsyncStore, server: Server
) -> None:
    out = server.root / "later"
    server.new_session("agent", chatty(out, 3.0))
    await asyncio.sleep(0.5)
    engine = engine_for(store, server)
    now = datetime.now(UTC)
    new = NewCheckIn(
        target="agent:0",
        message="now that you are free",
        rule=Once(now),
        next_due=now,
        idle_s=1.0,
        idle_wait=True,
        grace_s=20.0,
    )
    checkin, delivery = await store.add_claimed(new, now)
    engine.submit(checkin, delivery)
    async with asyncio.timeout(30):
        await engine.wait_idle()
    row = await final(store, delivery.id)
    assert row.state is DeliveryState.VERIFIED, row
    await wait_for(lambda: out.exists() and "now that you are free" in out.read_text(), "delivered")
    # Not before the output stopped (about 3 s after start) and the pane was quiet for 1 s.
    assert row.finished_at is not None
    assert (row.finished_at - now).total_seconds() >= 3.0


async def test_a_hooked_agent_is_busy_until_its_turn_ends_though_its_screen_is_quiet(
    store: AsyncStore, server: Server
) -> None:
    # The program prints nothing (chatty for 0 s): by its screen it is idle at once. Its hooks
    # say a turn is running: --when-idle waits for the turn's end, plus idle_s; the agent's
    # report of the prompt then confirms the delivery.
    out = server.root / "got"
    server.new_session("agent", chatty(out, 0.0))
    await asyncio.sleep(0.5)
    engine = engine_for(store, server)
    pane = (await engine.tmux.resolve(parse_target("agent:0"))).pane_id
    engine.on_hook(HookEvent(pane, "prompt", "the task the user gave"))
    now = datetime.now(UTC)
    message = "when your turn is over"
    new = NewCheckIn(
        target="agent:0",
        message=message,
        rule=Once(now),
        next_due=now,
        idle_s=0.5,
        idle_wait=True,
        grace_s=20.0,
    )
    checkin, delivery = await store.add_claimed(new, now)
    engine.submit(checkin, delivery)
    await asyncio.sleep(2.0)
    assert not out.exists() or message not in out.read_text()  # not while the turn runs
    ended = datetime.now(UTC)
    engine.on_hook(HookEvent(pane, "stop"))
    async with asyncio.timeout(30):
        await engine.wait_idle()
    row = await final(store, delivery.id)
    assert row.state is DeliveryState.VERIFIED and row.finished_at is not None, row
    assert (row.finished_at - ended).total_seconds() >= 0.5, (row, ended)
    await wait_for(lambda: out.exists() and message in out.read_text(), "delivered")
    assert row.confirmed_at is None
    engine.on_hook(HookEvent(pane, "prompt", message + "\n"))  # what the agent's hook reports
    async with asyncio.timeout(10):
        await engine.wait_idle()
    assert (await final(store, delivery.id)).confirmed_at is not None


async def test_recovery_leaves_a_live_send_alone_and_honours_catch_up_once(
    store: AsyncStore, server: Server
) -> None:
    from asched.core.models import CatchUp

    out = server.root / "rec2"
    server.new_session("r", f"cat > {out}")
    engine = engine_for(store, server)
    now = datetime.now(UTC)
    # A row of a running `asched send` (no lock, its own engine): recovery must not take it.
    sending, sent_row = await store.add_claimed(
        NewCheckIn(target="r:0", message="being sent", rule=Once(now), next_due=now, origin="send"),
        now,
    )
    # A one-shot deferred at shutdown, an hour past its grace, with --catch-up once.
    old = now - timedelta(hours=1)
    _, late_row = await store.add_claimed(
        NewCheckIn(
            target="r:0",
            message="caught up",
            rule=Once(old),
            next_due=old,
            grace_s=60,
            catch_up=CatchUp.ONCE,
        ),
        old,
    )
    assert await engine.recover() == 2
    async with asyncio.timeout(10):
        await engine.wait_idle()
    assert (await final(store, sent_row.id)).state is DeliveryState.CLAIMED  # untouched
    assert (await final(store, late_row.id)).state is DeliveryState.VERIFIED
    await wait_for(lambda: out.read_text() == "caught up\n", "the caught-up one")
    assert sending.origin == "send"


@pytest.mark.parametrize("policy", ["skip", "once"])
async def test_held_up_past_its_grace_follows_the_catch_up_policy(
    store: AsyncStore, server: Server, policy: str
) -> None:
    from asched.core.models import CatchUp

    out = server.root / "held"
    server.new_session("h", f"cat > {out}")
    engine = engine_for(store, server)
    # Handed over on time, but only now reaching the pane (as after a SIGSTOP): 5 s late.
    due = datetime.now(UTC) - timedelta(seconds=5)
    new = NewCheckIn(
        target="h:0",
        message="held up",
        rule=Once(due),
        next_due=due,
        grace_s=1.0,
        catch_up=CatchUp(policy),
    )
    checkin, row = await store.add_claimed(new, due)
    assert not engine.catching_up(checkin.id, due + timedelta(seconds=2))
    engine.submit(checkin, row)
    assert engine.catching_up(checkin.id, due + timedelta(seconds=2))  # not typed yet
    async with asyncio.timeout(10):
        await engine.wait_idle()
    done = await final(store, row.id)
    if policy == "skip":
        assert (done.state, done.reason) == (DeliveryState.SKIPPED, "missed")
        assert not out.exists() or out.read_text() == ""
        assert not engine.catching_up(checkin.id, due + timedelta(seconds=2))
    else:
        assert done.state is DeliveryState.VERIFIED
        await wait_for(lambda: out.read_text() == "held up\n", "the late one")
        # It typed after an occurrence due 2 s after it: that one needs no catch-up of its own;
        # an occurrence due after it was typed does.
        assert engine.catching_up(checkin.id, due + timedelta(seconds=2))
        assert not engine.catching_up(checkin.id, datetime.now(UTC) + timedelta(seconds=1))


@pytest.mark.parametrize("loss", ["server-lost", "pane-replaced"])
async def test_text_lost_before_its_enter_is_typed_again(
    store: AsyncStore, server: Server, loss: str
) -> None:
    import os
    import signal

    first = server.root / "first"
    second = server.root / "second"
    server.new_session("s", f"cat > {first}")
    # A long settle: the text is lost between the paste and the Enter.
    settings = DeliverySettings(settle_s=1.0, verify_delay_s=0.05, min_gap_s=0.0, retry_base_s=0.1)
    engine = engine_for(store, server, settings)
    d = await enqueue(store, engine, "s:0", "survives", grace_s=30)

    async def typed() -> bool:
        return (await final(store, d.id)).state is DeliveryState.TYPED

    async with asyncio.timeout(10):
        while not await typed():
            await asyncio.sleep(0.01)
    if loss == "server-lost":
        # A new server on the same socket reuses the pane id %0: the Enter must not go there.
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        server.pid = None
        await asyncio.sleep(0.3)
        server.new_session("s", f"cat > {second}")
    else:
        server.tmux("respawn-pane", "-k", "-t", "s:0", f"cat > {second}")
    async with asyncio.timeout(20):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert (row.state, row.attempts) == (DeliveryState.VERIFIED, 1)
    assert second.read_text() == "survives\n"
    assert not first.exists() or first.read_text() == ""


async def test_a_row_claimed_elsewhere_is_not_typed_or_touched(
    store: AsyncStore, server: Server
) -> None:
    out = server.root / "taken"
    server.new_session("t", f"cat > {out}")
    engine = engine_for(store, server)
    now = datetime.now(UTC)
    checkin, row = await store.add_claimed(
        NewCheckIn(target="t:0", message="mine", rule=Once(now), next_due=now), now
    )
    pane = (await engine.tmux.resolve(parse_target("t:0"))).pane_id
    await store.transition(row.id, DeliveryState.TYPING, pane=pane)  # another process got it
    engine.submit(checkin, row)
    async with asyncio.timeout(10):
        await engine.wait_idle()
    assert (await final(store, row.id)).state is DeliveryState.TYPING
    assert out.read_text() == ""


def test_the_daemon_clears_bodies_a_killed_run_left_in_the_spool(tmp_path: Path) -> None:
    from asched.daemon.wiring import clear_spool

    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    (spool / "as1234-7").write_text("a body from a SIGKILLed burst")
    clear_spool(spool)
    assert list(spool.iterdir()) == []
    clear_spool(tmp_path / "absent")  # nothing to do, no error


async def test_a_preflight_lets_a_paste_due_this_moment_go_first(
    store: AsyncStore, server: Server
) -> None:
    engine = engine_for(store, server)
    now = time.time()
    engine.ledger.fires[now + 0.01] += 1  # another delivery pastes in 10 ms
    started = time.monotonic()
    await engine._yield_to_pastes(now + 0.2)
    assert time.monotonic() - started >= 0.015  # waited past that paste (and its room)
    engine.ledger.fires.clear()
    engine.ledger.fires[now + 0.5] += 1  # not now: no wait
    started = time.monotonic()
    await engine._yield_to_pastes(now + 0.2)
    assert time.monotonic() - started < 0.005


async def test_an_agent_run_by_a_shell_script_is_not_a_shell(
    store: AsyncStore, server: Server
) -> None:
    # `bash run-agent.sh`: no job control, so the agent shares bash's process group. The script's
    # bash never prompts; the agent reads the keyboard.
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    out = server.root / "scripted"
    script = server.root / "run-agent.sh"
    script.write_text(f"while :; do cat >> {out}; done\n")
    server.new_session("sa", f"bash {script}")
    engine = engine_for(store, server)
    await asyncio.sleep(0.3)
    d = await enqueue(store, engine, "sa:0", "to the agent, not the shell")
    async with asyncio.timeout(10):
        await engine.wait_idle()
    assert (await final(store, d.id)).state is DeliveryState.VERIFIED
    await wait_for(lambda: out.exists() and out.read_text() != "", "the line")
    assert out.read_text() == "to the agent, not the shell\n"


async def test_no_grace_and_a_jitter_still_deliver(store: AsyncStore, server: Server) -> None:
    out = server.root / "nograce"
    server.new_session("ng", f"cat > {out}")
    engine = engine_for(store, server)
    now = datetime.now(UTC)
    new = NewCheckIn(
        target="ng:0", message="on time", rule=Once(now), next_due=now, grace_s=0.0, jitter_s=0.3
    )
    checkin, row = await store.add_claimed(new, now)
    engine.submit(checkin, row)
    async with asyncio.timeout(10):
        await engine.wait_idle()
    assert (await final(store, row.id)).state is DeliveryState.VERIFIED


async def test_recovery_looks_again_before_pasting_a_staged_body(
    store: AsyncStore, server: Server
) -> None:
    # Committed and staged, then the daemon died; meanwhile the agent exited to a shell prompt.
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    server.new_session("gone", "bash")
    await asyncio.sleep(0.3)
    engine = engine_for(store, server)
    pane = (await engine.tmux.resolve(parse_target("gone:0"))).pane_id
    now = datetime.now(UTC)
    new = NewCheckIn(target="gone:0", message="echo NEVER-RUN", rule=Once(now), next_due=now)
    _, d = await store.add_claimed(new, now)
    await store.transition(d.id, DeliveryState.TYPING, pane=pane)
    await engine.tmux.load_buffers([(engine._typist.buffer(d.id), "echo NEVER-RUN")])
    assert await engine.recover() == 1
    async with asyncio.timeout(10):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert (row.state, row.reason) == (DeliveryState.SKIPPED, "shell")
    assert await engine._typist.staged() == set()
    assert "NEVER-RUN" not in server.tmux("capture-pane", "-p", "-t", "=gone:0")


# -- agent profiles: the input guard and a "working" mark, with a program of our own --------

FAKE_AGENT = """\
import sys, time
out, busy, blank_s = sys.argv[1], sys.argv[2] == "busy", float(sys.argv[3])
print("fake agent", flush=True)
if busy:
    print("thinking... (esc to interrupt)", flush=True)
while True:
    print("agent> ", end="", flush=True)
    line = sys.stdin.readline()
    if not line:
        break
    with open(out, "a") as f:
        f.write(line)
    if blank_s:
        # A whole-screen redraw after the submit: no input area for a moment.
        print("\\x1b[2J\\x1b[H", end="", flush=True)
        time.sleep(blank_s)
"""


def fake_agent(root: Path, out: Path, busy: bool, blank_s: float = 0.0) -> str:
    """Our own agent ("agent> " prompt); ``blank_s``: it blanks its screen that long after each
    submit, as an agent UI's redraw does."""
    script = root / "fakeagent.py"
    script.write_text(FAKE_AGENT)
    return f"{sys.executable} {script} {out} {'busy' if busy else 'idle'} {blank_s}"


def with_profile(
    settings: DeliverySettings, script: str, busy: str | None = None, enters: int = 1
) -> DeliverySettings:
    """``settings`` with a profile for our own program ``script`` ("agent> " is its prompt)."""
    from asched.delivery.profiles import BUILTIN, Profile

    ours = Profile(
        name=script,
        programs=("python3", "python", Path(sys.executable).name),
        command=re.escape(script),
        prompt=r"^agent>(?: (?P<text>.*))?$",
        busy=busy,
        enters=enters,
    )
    return replace(settings, profiles=(ours, *BUILTIN))


def with_fake_profile(settings: DeliverySettings = FAST) -> DeliverySettings:
    return with_profile(settings, "fakeagent.py", busy=r"esc to interrupt")


@pytest.mark.parametrize("busy", [True, False])
async def test_if_idle_sees_an_agent_that_is_working_in_silence(
    store: AsyncStore, server: Server, busy: bool
) -> None:
    # Quiet for 2.5 s by output, but its profile's "working" mark is on screen: busy.
    out = server.root / "got"
    server.new_session("agent", fake_agent(server.root, out, busy))
    await asyncio.sleep(2.5)
    engine = engine_for(store, server, with_fake_profile())
    now = datetime.now(UTC)
    new = NewCheckIn(
        target="agent:0", message="nudge", rule=Once(now), next_due=now, idle_s=1.0, grace_s=5
    )
    checkin, delivery = await store.add_claimed(new, now)
    engine.submit(checkin, delivery)
    async with asyncio.timeout(20):
        await engine.wait_idle()
    row = await final(store, delivery.id)
    if busy:
        assert (row.state, row.reason) == (DeliveryState.SKIPPED, "busy")
        assert not out.exists()
    else:
        assert row.state is DeliveryState.VERIFIED, row
        await wait_for(lambda: out.exists() and out.read_text() == "nudge\n", "delivered")


async def test_the_input_guard_waits_for_a_persons_text_to_go(
    store: AsyncStore, server: Server
) -> None:
    out = server.root / "got"
    pane = server.new_session("agent", fake_agent(server.root, out, busy=False))
    await asyncio.sleep(1.0)
    server.tmux("send-keys", "-t", pane, "-l", "half typed")
    engine = engine_for(store, server, with_fake_profile())
    d = await enqueue(store, engine, "agent:0", "the check-in", grace_s=10.0)
    await asyncio.sleep(1.5)
    assert not out.exists()  # waiting, nothing pasted onto the person's text
    server.tmux("send-keys", "-t", pane, "Enter")  # the person sends it
    async with asyncio.timeout(20):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert row.state is DeliveryState.VERIFIED, row
    await wait_for(lambda: out.read_text() == "half typed\nthe check-in\n", "both, apart")


async def test_the_input_guard_skips_when_the_text_stays(store: AsyncStore, server: Server) -> None:
    out = server.root / "got"
    pane = server.new_session("agent", fake_agent(server.root, out, busy=False))
    await asyncio.sleep(1.0)
    server.tmux("send-keys", "-t", pane, "-l", "half typed")
    engine = engine_for(store, server, with_fake_profile())
    d = await enqueue(store, engine, "agent:0", "the check-in", grace_s=1.0)
    async with asyncio.timeout(20):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert (row.state, row.reason) == (DeliveryState.SKIPPED, "input-busy"), row
    screen = server.tmux("capture-pane", "-p", "-t", pane)
    assert [r for r in screen.split("\n") if r.startswith("agent>")] == ["agent> half typed"]
    assert not out.exists()


# A paste-aware program of our own, in raw mode with bracketed paste: like Gemini CLI, it takes
# an Enter that arrives within SWALLOW_S of a paste as a newline; a later Enter submits. It draws
# its input line as "agent> TEXT" ("\n" shown as a space) and appends each submission to a file.
PASTE_AGENT = r"""
import os, sys, time, tty
out, swallow_s = sys.argv[1], float(sys.argv[2])
tty.setraw(0)
os.write(1, b"\x1b[?2004h")  # ask for bracketed paste
buf, pasted_at, pending = "", 0.0, b""
def draw():
    os.write(1, ("\r\x1b[K" + "agent> " + buf.replace("\n", " ")).encode())
draw()
while True:
    data = pending + os.read(0, 65536)
    pending = b""
    while data:
        if data.startswith(b"\x1b[200~"):
            end = data.find(b"\x1b[201~")
            if end < 0:
                pending = data
                break
            buf += data[6:end].decode().replace("\r", "\n")
            pasted_at = time.monotonic()
            data = data[end + 6 :]
        elif data[:1] == b"\r":
            data = data[1:]
            if time.monotonic() - pasted_at < swallow_s:
                buf += "\n"
            elif buf:
                with open(out, "a") as f:
                    f.write(buf.strip("\n").replace("\n", " / ") + "\n")
                buf = ""
        elif data[:1] == b"\x03":
            sys.exit(0)
        else:
            buf += data[:1].decode(errors="replace")
            data = data[1:]
    draw()
"""


def paste_agent(root: Path, out: Path, swallow_s: float) -> str:
    script = root / "pasteagent.py"
    script.write_text(PASTE_AGENT)
    return f"{sys.executable} {script} {out} {swallow_s}"


def with_paste_profile(settings: DeliverySettings, enters: int) -> DeliverySettings:
    return with_profile(settings, "pasteagent.py", enters=enters)


@pytest.mark.parametrize("enters", [1, 2])
async def test_a_swallowed_enter_is_pressed_again_or_reported(
    store: AsyncStore, server: Server, enters: int
) -> None:
    # Settle 0: the first Enter lands in the program's paste window and becomes a newline.
    out = server.root / "got"
    server.new_session("agent", paste_agent(server.root, out, swallow_s=0.25))
    await asyncio.sleep(1.0)
    # Two looks 0.15 s apart confirm the swallow: the Enter again comes past the 0.25 s window.
    settings = with_paste_profile(replace(FAST, settle_s=0.0, verify_delay_s=0.15), enters)
    engine = engine_for(store, server, settings)
    d = await enqueue(store, engine, "agent:0", "check-in\nsecond line")
    async with asyncio.timeout(20):
        await engine.wait_idle()
    row = await final(store, d.id)
    await asyncio.sleep(0.5)
    got = out.read_text() if out.exists() else ""
    if enters == 2:
        assert (row.state, row.attempts) == (DeliveryState.VERIFIED, 1), row  # one Enter again
        assert got == "check-in / second line\n"
    else:
        assert (row.state, row.reason) == (DeliveryState.UNVERIFIED, "text-still-in-input"), row
        assert got == ""


async def test_text_added_to_ours_before_the_enter_gets_no_enter(
    store: AsyncStore, server: Server
) -> None:
    # Between the guard's look and the paste, someone typed: the input area holds more than our
    # text, and an Enter would send their words with ours. No Enter; unverified.
    out = server.root / "got"
    pane = server.new_session("agent", paste_agent(server.root, out, swallow_s=0.0))
    await asyncio.sleep(1.0)
    settings = with_paste_profile(FAST, 2)
    engine = engine_for(store, server, settings)
    real_stage = engine._typist.stage

    async def stage_then_type(paste: Any) -> None:
        await real_stage(paste)
        server.tmux("send-keys", "-t", pane, "-l", "hello ")

    engine._typist.stage = stage_then_type  # type: ignore[method-assign]
    d = await enqueue(store, engine, "agent:0", "the check-in")
    async with asyncio.timeout(20):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert (row.state, row.reason) == (DeliveryState.UNVERIFIED, "input-changed"), row
    assert not out.exists()
    screen = server.tmux("capture-pane", "-p", "-t", pane)
    assert "agent> hello the check-in" in screen


async def test_a_pane_replaced_before_the_paste_gets_the_text_in_the_new_pane_once(
    store: AsyncStore, server: Server
) -> None:
    # Between staging and the paste the pane is killed and a new one takes its target: nothing
    # reached the old one, so the occurrence is claimed again and the new pane gets it, once.
    old_out, new_out = server.root / "old", server.root / "new"
    server.new_session("w", "sleep 3600")
    server.new_window("w", f"cat > {old_out}", name="agent")
    engine = engine_for(store, server)
    real_stage = engine._typist.stage
    swapped: list[str] = []

    async def stage_then_swap(paste: Any) -> None:
        await real_stage(paste)
        if not swapped:
            server.tmux("kill-pane", "-t", paste.pane_id)
            swapped.append(server.new_window("w", f"cat > {new_out}", name="agent"))
            await asyncio.sleep(0.3)  # past the new pane's start

    engine._typist.stage = stage_then_swap  # type: ignore[method-assign]
    d = await enqueue(store, engine, "w:agent", "to whoever is the agent now")
    async with asyncio.timeout(20):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert row.state is DeliveryState.VERIFIED and row.pane == swapped[0], row
    assert row.attempts >= 1  # the replaced pane was recorded, then retried
    await wait_for(lambda: new_out.read_text() == "to whoever is the agent now\n", "new pane")
    assert old_out.read_text() == ""


async def test_a_reload_applies_a_new_rate_budget(store: AsyncStore, server: Server) -> None:
    engine = engine_for(store, server, replace(FAST, rate_per_s=50.0, burst=500))
    engine.settings = replace(engine.settings, rate_per_s=2.0, burst=1)
    out = server.root / "rate"
    server.new_session("r", f"cat > {out}")
    started = time.monotonic()
    rows = [await enqueue(store, engine, "r:0", f"m{n}") for n in range(3)]
    async with asyncio.timeout(20):
        await engine.wait_idle()
    # A burst of 1 at 2 a second: the third waits about a second for its token.
    assert time.monotonic() - started >= 0.9
    assert [(await final(store, r.id)).state for r in rows] == [DeliveryState.VERIFIED] * 3


async def test_a_checkin_paused_while_its_occurrence_waits_is_never_typed(
    store: AsyncStore, server: Server
) -> None:
    # Held up by copy mode (the "wait" policy); `asched pause` lands meanwhile. When copy mode
    # ends, nothing is typed: the commit to "typing" finds the check-in paused and skips the row.
    out = server.root / "pz"
    server.new_session("pz", f"cat > {out}")
    server.tmux("copy-mode", "-t", "=pz:0")
    engine = engine_for(store, server)
    d = await enqueue(store, engine, "pz:0", "not after a pause", grace_s=10)
    await asyncio.sleep(0.5)
    assert await store.set_paused(d.checkin_id, True)
    server.tmux("send-keys", "-X", "-t", "=pz:0", "cancel")
    async with asyncio.timeout(10):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert (row.state, row.reason) == (DeliveryState.SKIPPED, "paused")
    await asyncio.sleep(0.3)
    assert out.read_text() == ""


async def test_a_paste_that_timed_out_on_a_frozen_server_is_settled_once_it_wakes(
    store: AsyncStore, server: Server
) -> None:
    # The server is SIGSTOPped just as the paste is made: the client times out, yet the server
    # makes the paste when it wakes. The engine waits for it to answer, finds the text on the
    # line, presses Enter: one whole line, journaled verified and late (not "unverified", and no
    # second copy that would join the first on one line).
    out = server.root / "fz"
    server.new_session("fz", f"cat > {out}")
    assert server.pid is not None
    tmux = TmuxClient(server.sock, timeout_s=0.5)
    engine = DeliveryEngine(store, tmux, FAST, spool=server.root / "spool")
    real_paste = engine._typist.paste

    async def freeze_then_paste(paste: Any) -> None:
        os.kill(server.pid or 0, signal.SIGSTOP)
        loop = asyncio.get_running_loop()
        loop.call_later(2.0, os.kill, server.pid, signal.SIGCONT)
        await real_paste(paste)

    engine._typist.paste = freeze_then_paste  # type: ignore[method-assign]
    try:
        d = await enqueue(store, engine, "fz:0", "pasted while frozen")
        async with asyncio.timeout(20):
            await engine.wait_idle()
    finally:
        os.kill(server.pid, signal.SIGCONT)
    row = await final(store, d.id)
    assert (row.state, row.reason, row.late) == (DeliveryState.VERIFIED, None, True), row
    await wait_for(lambda: out.read_text() == "pasted while frozen\n", "one whole line")


async def test_a_window_renamed_before_the_paste_sends_nothing_to_it(
    store: AsyncStore, server: Server
) -> None:
    # Between the lookup and the paste, the window "agent" is renamed and another window takes
    # the name: the paste's guard finds the name no longer names that pane (checked by tmux in
    # the same command), so nothing reaches the old window and the new "agent" gets the text.
    old_out, new_out = server.root / "old", server.root / "new"
    server.new_session("rn", "sleep 3600")
    server.new_window("rn", f"cat > {old_out}", name="agent")
    engine = engine_for(store, server)
    real_stage = engine._typist.stage
    renamed: list[str] = []

    async def stage_then_rename(paste: Any) -> None:
        await real_stage(paste)
        if not renamed:
            server.tmux("rename-window", "-t", paste.pane_id, "was-agent")
            renamed.append(server.new_window("rn", f"cat > {new_out}", name="agent"))
            await asyncio.sleep(0.3)  # past the new pane's start

    engine._typist.stage = stage_then_rename  # type: ignore[method-assign]
    d = await enqueue(store, engine, "rn:agent", "to the window named agent now")
    async with asyncio.timeout(20):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert row.state is DeliveryState.VERIFIED and row.pane == renamed[0], row
    await wait_for(lambda: new_out.read_text() == "to the window named agent now\n", "new window")
    assert old_out.read_text() == ""


async def test_a_line_a_canonical_tty_would_cut_is_refused_not_verified(
    store: AsyncStore, server: Server
) -> None:
    # `cat` reads a canonical tty, which keeps 4,095 bytes of a line and drops the rest without
    # a sign on the screen: a 5,000-byte line is refused (failed, line-too-long), not typed in
    # part and journaled verified. 4,095 bytes still go through whole.
    out = server.root / "canon"
    server.new_session("canon", f"cat > {out}")
    engine = engine_for(store, server)
    long = await enqueue(store, engine, "canon:0", "z" * 5000)
    async with asyncio.timeout(20):
        await engine.wait_idle()
    row = await final(store, long.id)
    assert (row.state, row.reason) == (DeliveryState.FAILED, "line-too-long"), row
    fits = await enqueue(store, engine, "canon:0", "é" * 2047 + "z")  # 4,095 bytes
    async with asyncio.timeout(20):
        await engine.wait_idle()
    assert (await final(store, fits.id)).state is DeliveryState.VERIFIED
    await wait_for(lambda: out.read_text() == "é" * 2047 + "z\n", "the line that fits, whole")


async def test_copy_mode_entered_between_paste_and_enter_holds_the_enter(
    store: AsyncStore, server: Server
) -> None:
    # Someone scrolls back (copy mode) in the settle moment between the paste and the Enter: the
    # Enter would go to copy mode and leave the text stuck on the input line. The Enter's guard
    # refuses a pane in a mode; the engine waits for the mode to end, then presses it.
    out = server.root / "cm2"
    server.new_session("cm2", f"cat > {out}")
    engine = engine_for(store, server)
    real_paste = engine._typist.paste

    async def paste_then_scroll(paste: Any) -> None:
        await real_paste(paste)
        server.tmux("copy-mode", "-t", paste.pane_id)
        asyncio.get_running_loop().call_later(
            1.0, server.tmux, "send-keys", "-X", "-t", paste.pane_id, "cancel"
        )

    engine._typist.paste = paste_then_scroll  # type: ignore[method-assign]
    d = await enqueue(store, engine, "cm2:0", "after the scroll-back")
    async with asyncio.timeout(20):
        await engine.wait_idle()
    row = await final(store, d.id)
    assert (row.state, row.reason) == (DeliveryState.VERIFIED, None), row
    await wait_for(lambda: out.read_text() == "after the scroll-back\n", "one whole line")


@pytest.mark.parametrize(
    ("prefix", "message", "typed"),
    [
        ("", "status?", "status?"),
        ("SCHEDULED CHECK-IN: ", "status?", "SCHEDULED CHECK-IN: status?"),
        # Imported from Tmux-Orchestrator: its text already, and its empty-note text.
        ("SCHEDULED CHECK-IN: ", "SCHEDULED CHECK-IN: status?", "SCHEDULED CHECK-IN: status?"),
        ("SCHEDULED CHECK-IN: ", "SCHEDULED CHECK-IN", "SCHEDULED CHECK-IN"),
        ("[asched] ", "SCHEDULED CHECK-IN: status?", "[asched] SCHEDULED CHECK-IN: status?"),
    ],
)
def test_the_prefix_is_never_typed_twice(prefix: str, message: str, typed: str) -> None:
    assert with_prefix(prefix, message) == typed


async def test_an_input_area_redrawn_after_the_enter_is_looked_at_again(
    store: AsyncStore, server: Server
) -> None:
    """An agent UI that blanks its screen for a moment after a submit: the first look finds no
    input area, a later one finds it empty, and the delivery is verified, not "input-unknown"."""
    out = server.root / "got"
    server.new_session("r", fake_agent(server.root, out, busy=False, blank_s=0.12))
    engine = engine_for(store, server, with_fake_profile())
    row = await enqueue(store, engine, "r:0", "after the redraw")
    async with asyncio.timeout(20):
        await engine.wait_idle()
    done = await final(store, row.id)
    assert (done.state, done.reason) == (DeliveryState.VERIFIED, None)
    assert out.read_text() == "after the redraw\n"
