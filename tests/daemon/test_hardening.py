"""Security and bad-input guarantees: no shell anywhere, peers checked, unusable state refused."""

from __future__ import annotations

import ast
import hashlib
import os
import re
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from asched.core.paths import DB_NAME
from asched.daemon.control import ControlServer
from tests.cliharness import asched_process
from tests.statefiles import damage
from tests.support.daemons import PYTHON, Spawner, wait_until
from tests.support.tmux import Server

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0


def _python_files() -> Iterator[Path]:
    yield from (ROOT / "asched").rglob("*.py")


@pytest.mark.parametrize("path", sorted(_python_files()), ids=lambda p: p.name)
def test_no_shell_anywhere_in_the_package(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                assert not (
                    kw.arg == "shell"
                    and isinstance(kw.value, ast.Constant)
                    and kw.value.value is True
                ), f"{path}:{node.lineno}: shell=True"
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                name = f"{func.value.id}.{func.attr}"
                assert name not in {"os.system", "os.popen", "os.execlp", "os.spawnlp"}, (
                    f"{path}:{node.lineno}: {name}"
                )


def test_no_kill_by_name_in_the_product() -> None:
    # The product, its units, and every script and test: processes are ended by pid.
    pattern = re.compile(r"\b(pkill|killall)\b")
    trees = ("deploy", "bench", "tests", ".ci")
    paths = [*_python_files(), ROOT / "dev", ROOT / "tox.ini"]
    paths += [p for tree in trees for p in (ROOT / tree).rglob("*") if "__pycache__" not in p.parts]
    for path in paths:
        if path.is_file() and path.resolve() != Path(__file__).resolve():
            text = path.read_text(errors="replace")
            assert not pattern.search(text), path


@pytest.mark.skipif(not IS_ROOT, reason="needs root to connect as another user")
async def test_control_socket_refuses_another_user() -> None:
    root = Path(tempfile.mkdtemp(prefix="asched-peer-"))
    root.chmod(0o755)
    calls: list[str] = []
    server = ControlServer(root / "ctl.sock", {"wake": lambda: calls.append("wake")})
    await server.start()
    try:
        assert (server.path.stat().st_mode & 0o777) == 0o600
        server.path.chmod(0o666)  # only so that the peer check is what stands in the way
        code = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            # The server may close before the send: any error means "not served".
            "try:\n"
            f"    s.connect({str(server.path)!r}); s.sendall(b'wake\\n'); got = s.recv(64)\n"
            "except OSError:\n    got = b''\n"
            "sys.stdout.write(repr(got))\n"
        )
        import asyncio

        # The system's python: another user cannot reach the venv's interpreter under /root.
        other_python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else PYTHON
        proc = await asyncio.create_subprocess_exec(
            other_python, "-c", code, user=65534, cwd="/", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        assert out == b"b''"  # closed without an answer
        assert calls == []

        # The daemon's own user is served.
        def talk() -> bytes:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(str(server.path))
                sock.sendall(b"wake\n")
                return sock.recv(64)

        reply = await asyncio.wait_for(asyncio.to_thread(talk), 10)
        assert reply == b"ok\n" and calls == ["wake"]
    finally:
        await server.close()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return asched_process(*args, env=env, timeout=60)


def _one_line_error(out: subprocess.CompletedProcess[str], code: int) -> None:
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("asched: "), out.stderr


@pytest.mark.parametrize("kind", ["random", "truncated", "foreign", "newer"])
def test_a_damaged_database_is_refused_and_left_alone(tmp_path: Path, kind: str) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    db = state / DB_NAME
    damage(db, kind)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for args in (["ls"], ["add", "w:0", "x", "--in", "1m"], ["history"]):
        _one_line_error(_cli(*args, "--state-dir", str(state)), 1)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_a_state_dir_others_can_write_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    _one_line_error(_cli("add", "w:0", "x", "--in", "1m", "--state-dir", str(state)), 1)
    assert list(state.iterdir()) == []


@pytest.mark.skipif(not IS_ROOT, reason="needs root to hand a directory to another user")
def test_a_state_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    out = _cli("add", "w:0", "x", "--in", "1m", "--state-dir", str(state))
    _one_line_error(out, 1)
    assert "belongs to uid 65534" in out.stderr


def test_without_tmux_send_fails_at_once_with_a_reason(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    out = _cli("send", "w:0", "hello", "--state-dir", str(tmp_path / "s"), env=env)
    assert out.returncode == 1
    assert out.stdout.strip() == "failed (tmux-missing): w:0"
    assert "Traceback" not in out.stderr


def test_logs_never_hold_a_whole_message_body(
    spawner: Spawner, short_tmp: Path, server: Server
) -> None:
    state = short_tmp / "state"
    out = server.root / "got"
    server.new_session("a", f"cat > {out}")
    body = "TOP-SECRET " + "x" * 200 + " END-OF-BODY"
    d = spawner.spawn(state, extra=["--tmux-socket", server.sock], lock_timeout=5)
    d.notify.wait_for("READY", "1", timeout=15)
    assert _cli("add", "a:0", body, "--in", "1s", "--state-dir", str(state)).returncode == 0
    assert wait_until(lambda: out.exists() and body in out.read_text(), timeout=15)
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    text = d.stderr_path.read_text()
    assert "checkin.delivered" in text
    assert "END-OF-BODY" not in text and body not in text
