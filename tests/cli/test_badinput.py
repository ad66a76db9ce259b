"""Bad input on the command line (issue 7): every argument of every command, fuzzed.

Whatever text an argument holds (NUL, lone surrogates as Python decodes invalid UTF-8 argv,
control characters, very long strings) the CLI either succeeds or exits with a documented code
and exactly one line on stderr, never a traceback, and a command that failed leaves the database
as it was. ``ASCHED_FUZZ_EXAMPLES`` raises the number of examples per argument for a deep run, and
``ASCHED_FUZZ_RANDOM=1`` draws them from a fresh seed instead of the fixed one.
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asched.cli import demo
from asched.cli.main import main
from asched.core.models import NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.daemon import control
from asched.daemon import process as daemon
from asched.install import installer as install
from asched.store.store import Store
from asched.tmux.targets import MAX_BODY_BYTES
from tests.support.daemons import PYTHON

EXAMPLES = int(os.environ.get("ASCHED_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="ASCHED_FUZZ_RANDOM" not in os.environ,  # reproducible unless asked
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
# The spelling variants (a separate word, no "--") mostly meet argparse: fewer examples do.
FUZZ_SPELLING = settings(FUZZ, max_examples=max(EXAMPLES // 2, 10))

# Text a user (or a script gone wrong) might pass: the edges of every parser in the CLI.
INTERESTING = [
    "", " ", "\x00", "a\x00b", "\udcff", "w\udcc3:0", "\t", "\n", "\r", "\x1b[201~", "\x7f",
    "-", "--", "-h", "-x", "--in", "=", "%", "%1", "%-1", "%99999999999999999999",
    "w:0", "w:0.1", "w:=3", ":0", "w:", "w:.", "w:0.", "w:a.b", "w:01", "w: 0", " w:0",
    "0", "1", "-1", "01", "1e309", "nan", "inf", "-inf", "0x10", "1_000", "٣", "²",
    "9" * 30, "1s", "0s", "90s", "1h30m", "1m1h", "5", "1 m", "99999999999999w", "3661d",
    "10:00", "24:00", "23:60", "9:5", "2026-13-40", "2026-02-30T25:00", "9999-12-31T23:59",
    "0001-01-01T00:00", "2026-06-01T09:00+25:00", "2026-06-01T09:00Z", "@reboot", "@daily",
    "* * * * *", "61 * * * *", "0 0 31 2 *", "*/0 * * * *", "0-59/99999999999 * * * *",
    "1-0 * * * *", "* * * * 8", "0 9 * * MON-FRI", "UTC", "Europe/Berlin", "Nowhere/Else",
    "../../etc/passwd", "/etc/passwd", "Europe/../UTC", "posixrules", "skip", "once", "SKIP",
    "uvloop", "asyncio", "debug", "DEBUG", "root", "nobody", ".", "..", "/", "/dev/null",
    "/proc/self/mem", "~", "$HOME", "'; rm -rf / #", "`id`", "$(id)",
]  # fmt: skip

# Tried on every argument, before the random examples: what breaks parsers and printers.
ALWAYS = [
    "", "\x00", "a\x00b", "\udcff", "\ud800", "w\udcc3:0", "\n", "a\nb", "\x1b[201~", "-",
    "--", "-h", "x" * 300, "%1", "/", "..",
]  # fmt: skip

CHARS = st.characters(codec=None, categories=None)  # every code point, surrogates included
TEXT = st.one_of(
    st.sampled_from(INTERESTING),
    st.text(CHARS, max_size=40),
    st.builds(lambda a, b: a + b, st.sampled_from(INTERESTING), st.text(CHARS, max_size=8)),
    st.builds(lambda a, n: a * n, st.sampled_from(["x", "é", "\x00", "9"]), st.integers(1, 5000)),
)

DOCUMENTED = {0, 1, 2, 3, 75}
# `send` exits 1 when the delivery failed: its outcome is on stdout, and journaled.
SEND_OUTCOMES = ("failed (", "skipped (")
SAFE_STATE_DIRS: set[str] = set()  # the sandbox's own state dir, added by the fixture


@dataclass
class Ran:
    """One in-process run: exit code and what it wrote."""

    argv: list[str]
    code: int
    out: str
    err: str


def _stream(errors: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors=errors, write_through=True)


def _text_of(stream: io.TextIOWrapper) -> str:
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8", "backslashreplace")


def _confined(argv: list[str]) -> list[str]:
    """The state directory a command line names, kept inside the cwd: a fuzzed "/x" must never
    create a directory at the root of the file system (the tests run as root)."""
    out = list(argv)
    for i, word in enumerate(out):
        if word.startswith("--state-dir="):
            out[i] = "--state-dir=" + word.removeprefix("--state-dir=").replace("/", "_")
        elif i > 0 and out[i - 1] == "--state-dir" and word not in SAFE_STATE_DIRS:
            out[i] = word.replace("/", "_")
    return out


def cli(argv: list[str], *, confine: bool = False) -> Ran:
    """``asched.cli.main(argv)`` with streams like a real process's under a strict UTF-8 locale:
    stdout refuses what UTF-8 cannot encode (so a lone surrogate printed there would raise),
    stderr escapes it. ``confine``: keep a fuzzed --state-dir inside the cwd."""
    out, err = _stream("strict"), _stream("backslashreplace")
    logging_config = structlog.get_config()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(_confined(argv) if confine else argv)
            except SystemExit as exc:  # argparse: usage errors and --help
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        structlog.configure(**logging_config)  # `send` points the logs at our stderr
    return Ran(argv, code, _text_of(out), _text_of(err))


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text
    assert not any(line.lstrip().startswith('File "') for line in text.splitlines()), text


def check(ran: Ran, allowed: set[int] = DOCUMENTED - {3, 75}) -> None:
    """The contract for one run: a documented code, no traceback, one line on failure."""
    where = f"argv={ran.argv!r}\nstdout={ran.out[:2000]!r}\nstderr={ran.err[:2000]!r}"
    assert ran.code in allowed, f"exit {ran.code}; {where}"
    no_traceback(ran.out)
    no_traceback(ran.err)
    delivered = ran.argv[0] == "send" and ran.code == 1 and ran.out.startswith(SEND_OUTCOMES)
    # doctor's exit 1 is its report of what is wrong (stdout), and one line on stderr.
    delivered |= (
        ran.argv[0] == "doctor" and ran.code == 1 and ran.out.startswith(("ok ", "FAIL ", "{"))
    )
    if ran.code == 3:  # status says so on stdout, reload on stderr: one line at most
        assert len(ran.err.splitlines()) <= 1, where
    if ran.code in (1, 2) and not delivered:
        assert ran.out == "", where
        lines = [line for line in ran.err.splitlines() if line.strip()]
        assert len(lines) == 1, f"not one line on stderr; {where}"
        assert lines[0].startswith("asched"), where
        assert ran.err.endswith("\n") and ran.err.count("\n") == 1, where


def dump(state: Path) -> list[str] | None:
    """The database's whole content (None: no database), read without writing anything."""
    db = state / DB_NAME
    if not db.exists():
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def seed(state: Path) -> None:
    """Two check-ins, one with a key, so rm/pause/resume --key and ids have something to hit."""
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    with Store.open(state / DB_NAME) as store:
        for n, key in ((1, None), (2, "k")):
            due = now + timedelta(hours=n)
            store.add_checkin(
                NewCheckIn(target=f"w:{n}", message=f"m{n}", rule=Once(due), next_due=due, key=key)
            )


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A seeded state dir; no daemon, no tmux, no terminal, cwd a scratch dir (a relative
    --state-dir lands there), and the commands that would start something long stubbed out."""
    for var in ("COLUMNS", "TMUX_PANE", "TMUX", "ASCHED_STATE_DIR", "ASCHED_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ASCHED_TMUX_SOCKET", str(tmp_path / "no-tmux-here"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))  # no tmux: `send` fails at once
    monkeypatch.setattr(control, "send", lambda *a, **k: False)
    monkeypatch.setattr(daemon, "run", lambda options, services=None: 0)
    monkeypatch.setattr(demo, "run_demo", lambda seconds: 0)
    # install-service as root would really install: whatever the command line, a dry run.
    for name in ("install", "uninstall"):
        real = getattr(install, name)
        monkeypatch.setattr(
            install, name, lambda user, dry_run, _f=real, **kw: _f(user, True, **kw)
        )
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    state = tmp_path / "state"
    seed(state)
    SAFE_STATE_DIRS.add(str(state))
    try:
        yield state
    finally:
        SAFE_STATE_DIRS.discard(str(state))


# Each slot: a command line with one argument replaced by the fuzzed text X. The rest of each
# line is valid, so the fuzzed argument is what decides. Options take the text as --opt=X so
# that a leading "-" stays the argument's; positionals come after "--".
X = "\x00X\x00"
NOW_PLUS = (datetime.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
SLOTS: dict[str, list[str]] = {
    "add TARGET": ["add", "--in", "1m", "--", X, "msg"],
    "add MESSAGE": ["add", "--in", "1m", "--", "w:0", X],
    "add --in": ["add", "w:0", "m", f"--in={X}"],
    "add --at": ["add", "w:0", "m", f"--at={X}"],
    "add --every": ["add", "w:0", "m", f"--every={X}"],
    "add --cron": ["add", "w:0", "m", f"--cron={X}"],
    "add --tz": ["add", "w:0", "m", "--cron", "0 9 * * *", f"--tz={X}"],
    "add --tz --at": ["add", "w:0", "m", "--at", NOW_PLUS, f"--tz={X}"],
    "add --count": ["add", "w:0", "m", "--every", "1h", f"--count={X}"],
    "add --until": ["add", "w:0", "m", "--every", "1h", f"--until={X}"],
    "add --key": ["add", "w:0", "m", "--in", "1m", f"--key={X}"],
    "add --grace": ["add", "w:0", "m", "--in", "1m", f"--grace={X}"],
    "add --catch-up": ["add", "w:0", "m", "--in", "1m", f"--catch-up={X}"],
    "add --jitter": ["add", "w:0", "m", "--in", "1m", f"--jitter={X}"],
    "add --if-idle": ["add", "w:0", "m", "--every", "1h", f"--if-idle={X}"],
    "add --when-idle": ["add", "w:0", "m", "--in", "1h", f"--when-idle={X}"],
    "add --state-dir": ["add", "w:0", "m", "--in", "1m", f"--state-dir={X}"],
    "ls --target": ["ls", f"--target={X}"],
    "ls --state-dir": ["ls", f"--state-dir={X}"],
    "rm ID": ["rm", "--", X],
    "rm --key": ["rm", f"--key={X}"],
    "pause ID": ["pause", "--", X],
    "pause --key": ["pause", f"--key={X}"],
    "pause --target": ["pause", f"--target={X}"],
    "resume ID": ["resume", "--", X],
    "resume --key": ["resume", f"--key={X}"],
    "resume --target": ["resume", f"--target={X}"],
    "history ID": ["history", "--", X],
    "history --target": ["history", f"--target={X}"],
    "history --limit": ["history", f"--limit={X}"],
    "next DUR": ["next", "--target", "w:0", "--", X, "m"],
    "next MESSAGE": ["next", "--target", "w:0", "--", "1m", X],
    "next --target": ["next", f"--target={X}", "1m", "m"],
    "send TARGET": ["send", "--grace", "0", "--", X, "m"],
    "send MESSAGE": ["send", "--grace", "0", "--", "w:0", X],
    "send --tmux-socket": ["send", "--grace", "0", f"--tmux-socket={X}", "w:0", "m"],
    "send --grace": ["send", f"--grace={X}", "w:0", "m"],
    "send --config": ["send", "--grace", "0", f"--config={X}", "w:0", "m"],
    "import-legacy PATH": ["import-legacy", "--", X],
    "status --state-dir": ["status", f"--state-dir={X}"],
    "doctor --state-dir": ["doctor", f"--state-dir={X}"],
    "doctor --config": ["doctor", f"--config={X}"],
    "doctor --tmux-socket": ["doctor", f"--tmux-socket={X}"],
    "reload --state-dir": ["reload", f"--state-dir={X}"],
    "config check FILE": ["config", "check", "--", X],
    "daemon --lock-timeout": ["daemon", f"--lock-timeout={X}"],
    "daemon --loop": ["daemon", f"--loop={X}"],
    "daemon --log-level": ["daemon", f"--log-level={X}"],
    "daemon --config": ["daemon", f"--config={X}"],
    "daemon --tmux-socket": ["daemon", f"--tmux-socket={X}"],
    "demo --seconds": ["demo", f"--seconds={X}"],
    "install-service --system": ["install-service", "--dry-run", f"--system={X}"],
    "uninstall-service --system": ["uninstall-service", "--dry-run", f"--system={X}"],
    "completion SHELL": ["completion", "--", X],
    "COMMAND": [X],
}
# Commands that take --state-dir get the sandbox's unless the slot fuzzes it.
NO_STATE_DIR = {"completion", "config", "demo", "install-service", "uninstall-service"}
# Exit 3 is documented for these only ("not running").
MAY_SAY_NOT_RUNNING = {"status", "reload"}


def _argv(slot: list[str], text: str, state: Path) -> list[str]:
    argv = [part.replace(X, text) for part in slot]
    fuzzes_state = any(part.startswith("--state-dir=") for part in slot)
    if slot[0] not in NO_STATE_DIR and slot[0] != X and not fuzzes_state:
        # Before any "--", so that it stays an option.
        at = argv.index("--") if "--" in argv else len(argv)
        argv[at:at] = ["--state-dir", str(state)]
    return argv


def _fuzz_one(slot: list[str], text: str, state: Path) -> Ran:
    """Run ``slot`` with ``text`` in it and check the contract; a failure wrote nothing."""
    before = dump(state)
    cwd_before = sorted(os.listdir("."))
    ran = cli(_argv(slot, text, state), confine=True)
    allowed = DOCUMENTED - {75}
    if slot[0] not in MAY_SAY_NOT_RUNNING:
        allowed = allowed - {3}
    check(ran, allowed)
    delivered = slot[0] == "send" and ran.code == 1 and ran.out.startswith(SEND_OUTCOMES)
    if ran.code != 0 and not delivered:
        # A refused command wrote nothing: not the database, not a relative state dir.
        assert dump(state) == before, ran
        assert sorted(os.listdir(".")) == cwd_before, ran
    return ran


@pytest.mark.parametrize("slot_name", list(SLOTS))
def test_fuzzed_argument(sandbox: Path, slot_name: str) -> None:
    slot = SLOTS[slot_name]
    for text in ALWAYS:
        _fuzz_one(slot, text, sandbox)

    @FUZZ
    @given(text=TEXT)
    def fuzz(text: str) -> None:
        _fuzz_one(slot, text, sandbox)

    fuzz()


@pytest.mark.parametrize("slot_name", [s for s in SLOTS if s != "COMMAND"])
def test_fuzzed_argument_without_the_equals_sign(sandbox: Path, slot_name: str) -> None:
    """The same slots with the text as a separate word and no "--": a text that looks like an
    option meets argparse's own errors, which must be one line too."""
    raw = [p for p in SLOTS[slot_name] if p != "--"]
    raw = [w for p in raw for w in (p.split("=", 1) if p.startswith("--") and "=" in p else [p])]
    for text in ALWAYS:
        _fuzz_one(raw, text, sandbox)

    @FUZZ_SPELLING
    @given(text=TEXT)
    def fuzz(text: str) -> None:
        _fuzz_one(raw, text, sandbox)

    fuzz()


COMMANDS = sorted({s.split()[0] for s in SLOTS if s != "COMMAND"})
OPTION_WORDS = sorted(
    {w.split("=")[0] for s in SLOTS.values() for w in s if w.startswith("-")} | {"-a", "-l"}
)


@FUZZ
@given(
    command=st.sampled_from(COMMANDS),
    words=st.lists(st.one_of(st.sampled_from(OPTION_WORDS), TEXT), max_size=8),
)
def test_fuzzed_command_lines(sandbox: Path, command: str, words: list[str]) -> None:
    """Whole command lines: any mix of real option names and arbitrary words."""
    if command in ("install-service", "uninstall-service"):
        words = ["--dry-run", *words]
    _fuzz_one([command, *(w.replace(X, "") for w in words)], "", sandbox)


# -- real processes: invalid UTF-8 in argv, the largest argument exec takes -----------------------


def _proc(
    argv: list[bytes], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``python -m asched`` with bytes argv (what a shell passes for invalid UTF-8)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ASCHED_", "TMUX"))}
    full_env["XDG_STATE_HOME"] = str(cwd / "xdg-state")
    full_env.update(env or {})
    return subprocess.run(
        [PYTHON.encode(), b"-m", b"asched", *argv],
        capture_output=True,
        timeout=60,
        env=full_env,
        cwd=cwd,
        check=False,
    )


# Under C.UTF-8 Python's stdout escapes surrogates; under en_US.UTF-8 it is strict. Both.
LOCALES = [{}, {"PYTHONIOENCODING": "utf-8"}]

INVALID_UTF8_ARGV = [
    [b"add", b"w\xff:0", b"m", b"--in", b"1m"],
    [b"add", b"w:0", b"m\xff\xfe", b"--in", b"1m"],
    [b"add", b"w:0", b"m", b"--in", b"1m", b"--key", b"k\xff"],
    [b"add", b"w:0", b"m", b"--cron", b"0 9 * * *", b"--tz", b"Europe/\xff"],
    [b"add", b"w:0", b"m", b"--cron", b"0 9 * * \xff"],
    [b"add", b"w:0", b"m", b"--in", b"1\xffm"],
    [b"add", b"w:0", b"m", b"--at", b"2030-01-01T09:00\xff"],
    [b"add", b"w:0", b"m", b"--in", b"1m", b"--bogus\xff"],
    [b"ls", b"--target", b"w\xff:0"],
    [b"rm", b"--key", b"\xff"],
    [b"pause", b"--target", b"\xc3(:0"],
    [b"history", b"\xff"],
    [b"next", b"1m", b"m", b"--target", b"w:\xff"],
    [b"send", b"--grace", b"0", b"w\xff:0", b"m"],
    [b"\xff"],
]


@pytest.mark.parametrize("locale_env", LOCALES, ids=["C.UTF-8", "strict-stdout"])
@pytest.mark.parametrize(
    "argv", INVALID_UTF8_ARGV, ids=lambda a: b" ".join(a[:3]).decode("latin-1")
)
def test_invalid_utf8_in_argv_is_a_usage_error(
    tmp_path: Path, argv: list[bytes], locale_env: dict[str, str]
) -> None:
    state = tmp_path / "state"
    out = _proc([*argv, b"--state-dir", os.fsencode(state)], tmp_path, locale_env)
    err = out.stderr.decode("utf-8", "surrogateescape")
    assert out.returncode == 2, err
    no_traceback(err)
    assert out.stdout == b""
    assert err.count("\n") == 1 and err.startswith("asched"), err
    assert not state.exists()


@pytest.mark.parametrize("locale_env", LOCALES, ids=["C.UTF-8", "strict-stdout"])
def test_a_state_dir_named_in_invalid_utf8_works(
    tmp_path: Path, locale_env: dict[str, str]
) -> None:
    """A path is bytes: a state directory whose name is not UTF-8 is used as it is, and printed
    back as the same bytes."""
    state = os.fsencode(tmp_path) + b"/st\xffate"
    added = _proc(
        [b"add", b"w:0", b"m", b"--in", b"1h", b"--state-dir", state], tmp_path, locale_env
    )
    assert added.returncode == 0, added.stderr
    assert os.path.isdir(state)
    for argv in ([b"ls"], [b"history"], [b"status"], [b"status", b"--json"]):
        out = _proc([*argv, b"--state-dir", state], tmp_path, locale_env)
        no_traceback(out.stderr.decode("utf-8", "replace"))
        assert out.returncode == (3 if argv[0] == b"status" else 0), out.stderr
    status = _proc([b"status", b"--state-dir", state], tmp_path, locale_env)
    assert state in status.stdout


def test_the_largest_argument_exec_takes_is_stored_whole(tmp_path: Path) -> None:
    """Linux caps one argv string at 128 KiB (MAX_ARG_STRLEN, with its NUL); the message limit
    (1 MiB) is above it, so the largest message a shell can pass arrives and is stored whole."""
    state = tmp_path / "state"
    body = ("é" * 40_000 + "x" * (131_071 - 80_000)).encode()
    assert len(body) == 131_071
    out = _proc(
        [b"add", b"w:0", body, b"--in", b"1h", b"--state-dir", os.fsencode(state)], tmp_path
    )
    assert out.returncode == 0, out.stderr[:500]
    with Store.open(state / DB_NAME) as store:
        assert [c.message.encode() for c in store.list_checkins()] == [body]
    with pytest.raises(OSError, match="Argument list too long"):
        _proc([b"add", b"w:0", body + b"x", b"--in", b"1h"], tmp_path)


# -- 1 MiB arguments, in-process (beyond what exec takes) -----------------------------------------


def test_a_message_of_exactly_the_limit_is_stored_whole(sandbox: Path) -> None:
    for body in (
        "x" * MAX_BODY_BYTES,
        "é" * (MAX_BODY_BYTES // 2),
        "a\tb\n" * (MAX_BODY_BYTES // 4),
    ):
        before = len(dump(sandbox) or [])
        ran = cli(["add", "w:0", body, "--in", "1h", "--state-dir", str(sandbox)])
        check(ran, {0})
        with Store.open(sandbox / DB_NAME) as store:
            assert any(c.message == body for c in store.list_checkins())
        assert len(dump(sandbox) or []) == before + 1


def test_a_message_over_the_limit_is_refused_in_one_short_line(sandbox: Path) -> None:
    before = dump(sandbox)
    for body in (
        "x" * (MAX_BODY_BYTES + 1),
        "é" * (MAX_BODY_BYTES // 2) + "x",
        "x" * 4 * MAX_BODY_BYTES,
    ):
        for argv in (
            ["add", "w:0", body, "--in", "1h"],
            ["next", "1m", body, "--target", "w:0"],
            ["send", "--grace", "0", "w:0", body],
        ):
            ran = cli([*argv, "--state-dir", str(sandbox)])
            check(ran, {2})
            assert "limit is 1048576" in ran.err and len(ran.err) < 200, ran.err[:300]
    assert dump(sandbox) == before


@pytest.mark.parametrize("slot_name", [s for s in SLOTS if "MESSAGE" not in s and s != "COMMAND"])
def test_a_mebibyte_in_any_other_argument_is_one_bounded_line(
    sandbox: Path, slot_name: str
) -> None:
    """An error that echoes a 1 MiB argument shows its start and its end, not the whole."""
    for text in ("x" * MAX_BODY_BYTES, "\x00" * MAX_BODY_BYTES):
        ran = _fuzz_one(SLOTS[slot_name], text, sandbox)
        if ran.code != 0:
            assert len(ran.err) < 5000, (slot_name, len(ran.err))
