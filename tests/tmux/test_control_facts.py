"""What a persistent control-mode client does to the user's tmux server: the facts asched relies on.

Measured on tmux 3.3a (docs/TMUX-CONTROL.md, "A persistent control-mode client", has the table and
what asched does about each). Each test starts the client the way the daemon does,
``tmux -N -u -S SOCK -C attach-session -t SESSION -f no-output,ignore-size``, on a private server
of its own, writes command lines to its stdin and matches the replies by order (``%begin`` ...
``%end``/``%error``). Every wait has a deadline; every process is ended by pid at teardown.

These pin tmux's behaviour, not asched's: when one fails after a tmux upgrade, the doc and the
daemon's control client need another look.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.support.tmux import TMUX_ENV, Server

pytestmark = [
    pytest.mark.timeout(20),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

FLAGS = "no-output,ignore-size"
WAIT_S = 3.0  # every wait's deadline (replies take milliseconds)

# The bytes that stand for themselves inside a double-quoted tmux argument. Everything else is
# written as a three-digit octal escape: \ " $ (escapes, variables), ~ (expanded to $HOME even
# inside double quotes when it leads), control characters (a raw newline ends the command line:
# the rest would run as a command of its own) and every byte >= 0x7f (0xff ends the token, an EOF
# for tmux's lexer, even inside single quotes).
_LITERAL = frozenset(range(0x20, 0x7F)) - frozenset(b'\\"$~')


def quote(arg: bytes) -> bytes:
    """``arg`` as one argument of a control-mode command line, arriving byte for byte.

    NUL cannot be carried (tmux's strings are C strings: ``\\000`` cuts the argument there).
    """
    if b"\0" in arg:
        raise ValueError("a tmux argument cannot hold NUL")
    out = bytearray(b'"')
    for byte in arg:
        if byte in _LITERAL:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    out += b'"'
    return bytes(out)


@dataclass
class Reply:
    """One ``%begin``..``%end``/``%error`` block."""

    ok: bool
    lines: list[bytes]
    flags: bytes  # "1" for a command this client sent, "0" for the attach-session of its argv


@dataclass
class _Parsed:
    replies: list[Reply] = field(default_factory=list)
    notes: list[bytes] = field(default_factory=list)  # every line outside a block, in order
    block: list[bytes] | None = None


class Control:
    """A control-mode client attached to ``session``, its stdout read by a thread of its own."""

    def __init__(self, server: Server, session: str, flags: str | None = FLAGS) -> None:
        argv = ["tmux", "-N", "-u", "-S", server.sock, "-C", "attach-session", "-t", session]
        if flags:
            argv += ["-f", flags]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=TMUX_ENV,
        )
        self._cond = threading.Condition()
        self._parsed = _Parsed()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # The attach-session of the argv answers first (flags 0): attached once it has.
        attach = self.wait_replies(1)[0]
        assert attach.ok and attach.flags == b"0", attach

    @property
    def pid(self) -> int:
        """The client process's pid."""
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        rest = b""
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            *lines, rest = (rest + chunk).split(b"\n")
            with self._cond:
                for line in lines:
                    self._take(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _take(self, line: bytes) -> None:
        p = self._parsed
        if p.block is None:
            if line.startswith(b"%begin "):
                p.block = []
            else:
                p.notes.append(line)
        elif line.startswith((b"%end ", b"%error ")):
            flags = line.split()[-1]
            p.replies.append(Reply(line.startswith(b"%end "), p.block, flags))
            p.block = None
        else:
            p.block.append(line)

    def _wait(self, pred: Callable[[], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(pred, timeout)

    def write(self, *lines: bytes) -> None:
        """Write command lines in one write (each small enough never to block on the pipe)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"".join(line + b"\n" for line in lines))
        self.proc.stdin.flush()

    @property
    def replies(self) -> list[Reply]:
        """Every reply so far (the attach-session's first)."""
        with self._cond:
            return list(self._parsed.replies)

    @property
    def notes(self) -> list[bytes]:
        """Every line outside a reply so far: notifications, and the odd bare error line."""
        with self._cond:
            return list(self._parsed.notes)

    def wait_replies(self, count: int, timeout: float = WAIT_S) -> list[Reply]:
        """The first ``count`` replies; AssertionError when they do not come in time."""
        assert self._wait(lambda: len(self._parsed.replies) >= count, timeout), self.replies
        return self.replies[:count]

    def run(self, *lines: bytes, timeout: float = WAIT_S) -> list[Reply]:
        """Write ``lines`` and return their replies."""
        before = len(self.replies)
        self.write(*lines)
        return self.wait_replies(before + len(lines), timeout)[before:]

    def wait_note(self, pred: Callable[[bytes], bool], timeout: float = WAIT_S) -> bytes | None:
        """The first line outside a reply that ``pred`` accepts, waiting up to ``timeout``."""
        found: list[bytes] = []

        def seen() -> bool:
            found[:] = [n for n in self._parsed.notes if pred(n)]
            return bool(found)

        return found[0] if self._wait(seen, timeout) else None

    def wait_exit(self, timeout: float = WAIT_S) -> int | None:
        """The exit code, or None when still running after ``timeout``; stdout is read to EOF."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._wait(lambda: self._eof, timeout)
        return code

    def close(self) -> None:
        """End the client by pid (if it still runs) and release its pipes and thread."""
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        self._reader.join(timeout=2)


class Human:
    """A terminal client in a pseudo-terminal (someone sitting at tmux), ``cols`` x ``rows``."""

    def __init__(self, server: Server, session: str, cols: int = 100, rows: int = 30) -> None:
        self.master, slave = os.openpty()
        os.set_blocking(self.master, True)
        _winsize(self.master, cols, rows)
        env = dict(TMUX_ENV, TERM="xterm-256color")
        self.proc = subprocess.Popen(
            ["tmux", "-S", server.sock, "attach-session", "-t", session],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        # The terminal's output must be read, or the client blocks writing it.
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):  # EIO once the client is gone
            while os.read(self.master, 65536):
                pass

    def type(self, data: bytes) -> None:
        """Keys typed at the terminal."""
        os.write(self.master, data)

    def resize(self, cols: int, rows: int) -> None:
        """The terminal resized (and the client told, as the kernel would for a session leader)."""
        _winsize(self.master, cols, rows)
        os.kill(self.proc.pid, signal.SIGWINCH)

    def close(self) -> None:
        """End the client by pid and close the terminal."""
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        os.close(self.master)
        self._drain.join(timeout=2)


def _winsize(fd: int, cols: int, rows: int) -> None:
    termios.tcsetwinsize(fd, (rows, cols))


@pytest.fixture
def control(server: Server) -> Iterator[Callable[..., Control]]:
    """``control(session, flags=FLAGS)``: a control client on ``server``, ended at teardown."""
    started: list[Control] = []

    def start(session: str, flags: str | None = FLAGS) -> Control:
        c = Control(server, session, flags)
        started.append(c)
        return c

    yield start
    for c in started:
        c.close()


@pytest.fixture
def human(server: Server) -> Iterator[Callable[..., Human]]:
    """``human(session, cols, rows)``: a terminal client on ``server``, ended at teardown."""
    started: list[Human] = []

    def start(session: str, cols: int = 100, rows: int = 30) -> Human:
        h = Human(server, session, cols, rows)
        started.append(h)
        return h

    yield start
    for h in started:
        h.close()


def until(pred: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    """Poll ``pred`` until true or ``timeout``; returns the last result."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def server_gone(server: Server) -> bool:
    """True once the server's process has exited (gone, or a zombie nobody reaped yet)."""
    assert server.pid is not None
    try:
        return psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def fmt(server: Server, target: str, spec: str) -> str:
    return server.tmux("display-message", "-p", "-t", target, spec).strip()


# --- quoting -------------------------------------------------------------------------------------


NASTY = [
    b"plain",
    b" a  b ",
    b"'",
    b'"',
    b"\\",
    b"'\\''",
    b"$HOME",
    b"${HOME}",
    b"~",
    b"~/x",
    b"#",
    b"# not a comment",
    b"#{session_name}",
    b"#(echo hi)",
    b"{",
    b"}",
    b";",
    b"a ; b",
    b"\\;",
    b"-",
    b"-n",
    b"--",
    b"%if 1",
    "h\u00e9llo \u2603 \U0001f600".encode(),
    b"\x01\x1b[31m\x7f",
    b"tab\there",
    b"cr\rhere",
    b"a\nb",
    b"\n",
    b"\\\n",
    b"\xff\xfe",
    b"\xc3",
    b"\xe2\x98",
    b"x" * 30_000,
]


def test_quoted_arguments_round_trip_byte_exact(
    server: Server, control: Callable[..., Control], tmp_path: Path
) -> None:
    # Any argument without NUL, newlines and invalid UTF-8 included, arrives byte for byte: set
    # into a buffer by the control client, saved to a file by the server. Random ones too.
    server.new_session("s", "cat")
    c = control("s")
    rnd = random.Random(18)
    special = b"'\"\\$~#{};- \n\t\r"
    args = NASTY + [
        bytes(
            rnd.choice((rnd.randint(1, 255), rnd.choice(special)))
            for _ in range(rnd.randint(1, 80))
        )
        for _ in range(200)
    ]
    lines = []
    for n, arg in enumerate(args):
        out = tmp_path / f"{n}.bin"
        lines += [
            b"set-buffer -b rt -- " + quote(arg),
            b"save-buffer -b rt " + quote(bytes(out)),
        ]
    replies = c.run(*lines, timeout=10)
    assert all(r.ok for r in replies), [r for r in replies if not r.ok][:3]
    got = [(tmp_path / f"{n}.bin").read_bytes() for n in range(len(args))]
    assert [g for g, a in zip(got, args, strict=True) if g != a] == []
    assert b"\n" not in b"".join(quote(a) for a in args)  # one command, one line


def test_what_the_quoting_must_avoid(
    server: Server, control: Callable[..., Control], tmp_path: Path
) -> None:
    # Why every byte outside printable ASCII, and \ " $ ~, is written as an octal escape.
    server.new_session("s", "cat")
    c = control("s")
    out = tmp_path / "o.bin"

    def saved(line: bytes) -> tuple[bool, bytes]:
        out.unlink(missing_ok=True)
        ok = c.run(line)[0].ok
        c.run(b"save-buffer -b q " + quote(bytes(out)))
        return ok, out.read_bytes() if out.exists() else b""

    home = os.path.expanduser("~").encode()
    assert saved(b'set-buffer -b q -- "~/x"') == (True, home + b"/x")  # expanded in "..."
    assert saved(b"set-buffer -b q -- '~/x'") == (True, b"~/x")
    assert saved(b'set-buffer -b q -- "a\\012b"') == (True, b"a\nb")  # a newline, escaped
    assert saved(b'set-buffer -b q -- "a\\000b"') == (True, b"a")  # NUL cuts the argument
    bad = c.run(b"set-buffer -b q -- '\xff'")[0]  # 0xff ends the token, even in '...'
    assert not bad.ok and b"too many arguments" in b"".join(bad.lines), bad
    # A raw newline ends the command line, quote or not: the rest runs as a command.
    c.write(b"set-buffer -b q -- 'x\ndisplay-message -p injected'")
    split = c.wait_replies(len(c.replies) + 2)[-2:]
    assert split[1].ok and split[1].lines == [b"injected"], split


# --- attached, and what keeps what alive ---------------------------------------------------------


def test_the_control_client_counts_as_attached(
    server: Server, control: Callable[..., Control]
) -> None:
    # session_attached, `tmux ls` "(attached)", destroy-unattached: a control client counts as
    # a client like any other. list-clients names it with #{client_control_mode} (3.3a has no
    # #{client_control}) and the pid of the process asched spawned.
    server.new_session("s", "cat")
    server.new_session("other", "cat")
    assert fmt(server, "s", "#{session_attached}") == "0"
    c = control("s")
    assert fmt(server, "s", "#{session_attached}") == "1"
    assert "(attached)" in next(ln for ln in server.tmux("ls").splitlines() if ln.startswith("s:"))
    clients = server.tmux(
        "list-clients", "-F", "#{client_control_mode} #{client_pid} #{client_flags}"
    )
    mode, pid, flags = clients.split()
    assert (mode, int(pid)) == ("1", c.pid)
    assert {"control-mode", "no-output", "ignore-size"} <= set(flags.split(","))
    server.tmux("set-option", "-t", "s", "destroy-unattached", "on")
    time.sleep(0.1)
    server.tmux("has-session", "-t", "=s")  # still there (AssertionError if not)
    c.close()  # the client gone: now the session is unattached, and destroyed
    assert until(lambda: "s:" not in server.tmux("ls"))


def test_the_last_session_gone_ends_the_server_and_the_client(
    server: Server, control: Callable[..., Control]
) -> None:
    # A control client does not keep a server without sessions alive: it is told %exit and exits.
    server.new_session("s", "cat")
    c = control("s")
    server.tmux("kill-session", "-t", "=s")
    assert c.wait_exit() == 0
    assert c.notes[-1] == b"%exit"
    assert until(lambda: server_gone(server))
    server.pid = None  # exited by itself: its pid must not be signalled at teardown


@pytest.mark.parametrize("detach_on_destroy", ["on", "off"])
def test_its_session_killed(
    server: Server, control: Callable[..., Control], detach_on_destroy: str
) -> None:
    # detach-on-destroy on (the default): %exit, exit 0, though other sessions remain. Off: the
    # client moves to another session and stays.
    server.new_session("s", "cat")
    server.new_session("other", "cat")
    server.tmux("set-option", "-g", "detach-on-destroy", detach_on_destroy)
    c = control("s")
    server.tmux("kill-session", "-t", "=s")
    if detach_on_destroy == "on":
        assert c.wait_exit() == 0
        assert c.notes[-1] == b"%exit"
    else:
        assert c.wait_note(lambda n: n.startswith(b"%session-changed ") and n.endswith(b" other"))
        assert c.run(b"display-message -p '#{session_name}'")[0].lines == [b"other"]


def test_stdin_closed_ends_the_client(server: Server, control: Callable[..., Control]) -> None:
    # The daemon's end (even a SIGKILL) closes the pipe: the client detaches and exits 0.
    server.new_session("s", "cat")
    c = control("s")
    assert c.proc.stdin is not None
    c.proc.stdin.close()
    assert c.wait_exit() == 0
    assert c.notes[-1] == b"%exit"
    assert until(lambda: fmt(server, "s", "#{session_attached}") == "0")


# --- a frozen server, a killed server -------------------------------------------------------------


def test_commands_written_to_a_frozen_server_run_on_sigcont_in_order(
    server: Server, control: Callable[..., Control]
) -> None:
    server.new_session("s", "cat")
    c = control("s")
    before = len(c.replies)
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        c.write(*(b"display-message -p n%d" % i for i in range(50)))  # 1 KB: the pipe holds 64
        time.sleep(0.3)
        assert len(c.replies) == before  # nothing answers
        assert c.proc.poll() is None  # and the client waits
    finally:
        os.kill(server.pid, signal.SIGCONT)
    got = c.wait_replies(before + 50)[before:]
    assert [r.lines for r in got] == [[b"n%d" % i] for i in range(50)]


def test_the_server_reads_the_control_pipe_itself(
    server: Server, control: Callable[..., Control]
) -> None:
    # The client hands its stdin and stdout to the server: a stopped client process still gets
    # answers (so the pipe, not the client process, is what a frozen server fills up).
    server.new_session("s", "cat")
    c = control("s")
    os.kill(c.pid, signal.SIGSTOP)
    try:
        assert c.run(b"display-message -p still")[0].lines == [b"still"]
    finally:
        os.kill(c.pid, signal.SIGCONT)


def test_a_sigkilled_server_gives_exit_and_code_1(
    server: Server, control: Callable[..., Control]
) -> None:
    server.new_session("s", "cat")
    c = control("s")
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    c.write(b"display-message -p never")  # in the pipe when the server dies: never answered
    os.kill(server.pid, signal.SIGKILL)
    os.kill(server.pid, signal.SIGCONT)
    assert c.wait_exit() == 1
    assert c.notes[-1] == b"%exit server exited unexpectedly"
    assert len(c.replies) == 1  # the attach only
    assert until(lambda: server_gone(server))
    server.pid = None


# --- load-buffer ---------------------------------------------------------------------------------


def test_load_buffer_from_a_control_client(
    server: Server, control: Callable[..., Control], tmp_path: Path
) -> None:
    # From an attached client the server opens the file itself. %end comes as the read starts,
    # and an error comes later as a bare line outside any block, never as %error; the commands
    # after it wait for the read. `load-buffer -` (stdin) fails with EBADF, the same way.
    server.new_session("s", "cat")
    c = control("s")
    body = tmp_path / "body"
    body.write_bytes(bytes(range(1, 256)) * 4)
    ok = c.run(b"load-buffer -b lb " + quote(bytes(body)), b"show-buffer -b lb")
    assert ok[0].ok and ok[1].ok
    assert server.tmux("list-buffers", "-F", "#{buffer_name} #{buffer_size}").split() == [
        "lb",
        "1020",
    ]
    missing = tmp_path / "missing"
    r = c.run(b"load-buffer -b nb " + quote(bytes(missing)))[0]
    assert r.ok  # no %error...
    assert c.wait_note(lambda n: n == bytes(missing) + b": No such file or directory")  # but this
    r = c.run(b"load-buffer -b sb -")[0]
    assert r.ok
    assert c.wait_note(lambda n: n == b"-: Bad file descriptor")
    assert "nb" not in server.tmux("list-buffers", "-F", "#{buffer_name}").split()


# --- the user's clients: current client, hooks, sizes, notifications -----------------------------


def test_right_after_it_attaches_the_control_client_is_the_current_client(
    server: Server, control: Callable[..., Control], human: Callable[..., Human]
) -> None:
    # A command with no -c (from outside, or from a pane's shell with $TMUX set) goes to the
    # client with the latest activity: the control client once it attaches, until the human
    # types; the control client's own commands do not make it the latest again.
    pane = server.new_session("s", "cat")
    h = human("s")
    assert until(
        lambda: server.tmux("list-clients", "-F", "#{client_control_mode}").split() == ["0"]
    )
    time.sleep(0.02)  # activity times are compared to the microsecond; be sure they differ
    c = control("s")
    inside = dict(TMUX_ENV, TMUX=f"{server.sock},{server.pid},0", TMUX_PANE=pane)

    def current(env: dict[str, str] | None = None) -> str:
        argv = ["tmux", "-S", server.sock, "display-message", "-p", "#{client_control_mode}"]
        r = subprocess.run(argv, capture_output=True, text=True, env=env or TMUX_ENV, timeout=5)
        return r.stdout.strip()

    assert current() == current(inside) == "1"
    h.type(b"k")
    assert until(lambda: current() == "0")
    assert current(inside) == "0"
    c.run(
        b"display-message -p -t " + pane.encode() + b" x",
        b"capture-pane -p -t " + pane.encode(),
        b"set-buffer -b b x",
        b"paste-buffer -d -b b -t " + pane.encode(),
    )
    assert current() == "0"


def test_hooks_fire_for_the_control_client(server: Server, control: Callable[..., Control]) -> None:
    # The user's client-attached and client-detached hooks run for each connect and disconnect.
    server.new_session("s", "cat")
    server.tmux("set-hook", "-g", "client-attached", "set-option -gF @attached '#{client_name}'")
    server.tmux("set-hook", "-g", "client-detached", "set-option -g @detached 1")
    c = control("s")
    name = server.tmux("list-clients", "-F", "#{client_name}").strip()
    assert until(lambda: server.tmux("show-options", "-gv", "@attached").strip() == name)
    c.close()
    assert until(lambda: server.tmux("show-options", "-gqv", "@detached").strip() == "1")


def test_ignore_size_leaves_window_sizes_to_the_humans(
    server: Server, control: Callable[..., Control], human: Callable[..., Human]
) -> None:
    server.new_session("s", "cat", size=(123, 45))

    def size() -> str:
        return fmt(server, "s", "#{window_width}x#{window_height}")

    control("s")
    assert size() == "123x45"  # attached, nothing resized
    h = human("s", 100, 30)
    assert until(lambda: size() == "100x29")  # the human's terminal, less the status line
    h.resize(90, 20)
    assert until(lambda: size() == "90x19")


def test_no_output_and_the_notifications_that_still_come(
    server: Server, control: Callable[..., Control]
) -> None:
    # Pane output sends nothing; a change to windows or sessions still sends a notification.
    pane = server.new_session("s", "cat")
    c = control("s")
    server.tmux("send-keys", "-t", pane, "-l", "x" * 500)
    server.tmux("send-keys", "-t", pane, "Enter")
    until(lambda: "xxx" in server.tmux("capture-pane", "-p", "-t", pane))
    c.run(b"display-message -p sync")
    assert [n for n in c.notes if n.startswith(b"%output")] == []
    server.tmux("rename-window", "-t", "=s:0", "renamed")
    assert c.wait_note(lambda n: n.startswith(b"%window-renamed ") and n.endswith(b" renamed"))
