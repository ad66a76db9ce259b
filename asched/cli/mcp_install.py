"""``asched mcp install|uninstall claude|gemini``: register ``asched mcp`` with an agent UI.

The command registered is this interpreter, ``-P -m asched mcp`` (absolute, chosen as for the
systemd unit by :func:`asched.install.interpreter.interpreter`; ``-P`` keeps the agent's working
directory off ``sys.path``, so a directory named ``asched`` there cannot shadow the package), plus
``--state-dir DIR`` when one was given. The agent starts it with its own environment, so
``$ASCHED_STATE_DIR`` and ``$TMUX_PANE`` reach it as they reach a shell in the pane.

* Claude Code: through its own command line, ``claude mcp add -s user asched -- COMMAND`` (every
  project of the user). What is registered now is read from Claude Code's config file
  (``claude mcp get`` would start the server to check it, which can take a minute).
* Gemini CLI: ``mcpServers.asched`` merged into ``~/.gemini/settings.json``: every other key and
  server kept, the file replaced atomically (its real path, when it is a symlink).

Both are idempotent: the same entry again is reported and left alone (exit 0); an ``asched``
entry with another command is replaced only with ``--force``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from asched.cli.shared import error_line
from asched.core import paths
from asched.core.errors import EXIT_OK, AschedError, UsageError
from asched.install.interpreter import interpreter

__all__ = ["AGENTS", "NAME", "run", "server_command"]

AGENTS = ("claude", "gemini")
NAME = "asched"  # the server's name in the agents' configuration
CLAUDE_TIMEOUT_S = 60.0


def server_command(state_dir: str | None = None) -> list[str]:
    """The argv an agent runs to start ``asched mcp``."""
    python, _note = interpreter()
    argv = [python, "-P", "-m", "asched", "mcp"]
    if state_dir is not None:
        argv += ["--state-dir", str(paths.state_dir(state_dir))]
    return argv


def run(action: str, agent: str, claude: str | None, force: bool, state_dir: str | None) -> int:
    """Install or uninstall the server for ``agent``; the exit code."""
    if agent == "claude":
        binary = _claude_binary(claude)
        if action == "install":
            return _install_claude(binary, server_command(state_dir), force)
        return _uninstall_claude(binary)
    if claude is not None:
        raise UsageError("--claude goes with claude, not gemini")
    settings = Path.home() / ".gemini" / "settings.json"
    if action == "install":
        return _install_gemini(settings, server_command(state_dir), force)
    return _uninstall_gemini(settings)


# -- Claude Code -----------------------------------------------------------------------------------


def _claude_binary(given: str | None) -> str:
    if given is not None:
        path = paths.path_arg(given, "--claude")
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            raise UsageError(f"--claude {given!r} is not an executable file")
        return os.path.abspath(path)
    found = shutil.which("claude")
    if found is None:
        raise UsageError("claude is not on PATH; install Claude Code or give --claude PATH")
    return found


def _claude_config() -> Path:
    """Claude Code's own state file, where ``-s user`` servers are kept (``mcpServers``)."""
    base = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(base) / ".claude.json" if base else Path.home() / ".claude.json"


def _claude_entry() -> dict[str, Any] | None:
    """The user-scope ``asched`` server Claude Code has, if any (its config file, read-only)."""
    try:
        data = json.loads(_claude_config().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no file yet (or one we cannot read): `claude mcp add` has the last word
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    entry = servers.get(NAME) if isinstance(servers, dict) else None
    return entry if isinstance(entry, dict) else None


def _entry_text(entry: dict[str, Any]) -> str:
    """How an existing entry reads: its command line, else its JSON."""
    command, args = entry.get("command"), entry.get("args", [])
    if isinstance(command, str) and isinstance(args, list) and not entry.get("env"):
        return shlex.join([command, *map(str, args)])
    return json.dumps(entry)


def _same(entry: Any, command: list[str]) -> bool:
    """``entry`` (an agent's config) starts ``command``, and nothing else is set that matters."""
    return (
        isinstance(entry, dict)
        and entry.get("command") == command[0]
        and entry.get("args", []) == command[1:]
        and not entry.get("env")
        and entry.get("type", "stdio") == "stdio"
    )


def _claude(binary: str, *args: str) -> None:
    argv = [binary, "mcp", *args]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=CLAUDE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AschedError(f"{shlex.join(argv)} did not finish in {CLAUDE_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise AschedError(f"cannot run {binary}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).replace("\n", " ")
        raise AschedError(
            f"{shlex.join(argv[:4])} failed (exit {done.returncode}): {error_line(said)}"
        )


def _install_claude(binary: str, command: list[str], force: bool) -> int:
    shown = shlex.join(command)
    current = _claude_entry()
    if _same(current, command):
        print(f"asched is already registered with Claude Code (user scope): {shown}")
        return EXIT_OK
    if current is not None:
        if not force:
            raise UsageError(
                f"Claude Code already has an MCP server named asched: {_entry_text(current)}"
                " (pass --force to replace it)"
            )
        _claude(binary, "remove", "-s", "user", NAME)
    _claude(binary, "add", "-s", "user", NAME, "--", *command)
    verb = "replaced" if current is not None else "registered"
    print(f"{verb} asched with Claude Code (user scope): {shown}")
    print("check it: claude mcp list (asched: ... ✔ Connected); new sessions have its tools")
    return EXIT_OK


def _uninstall_claude(binary: str) -> int:
    if _claude_entry() is None:
        print("asched is not registered with Claude Code (user scope); nothing to do")
        return EXIT_OK
    _claude(binary, "remove", "-s", "user", NAME)
    print("removed asched from Claude Code (user scope)")
    return EXIT_OK


# -- Gemini CLI ------------------------------------------------------------------------------------


def _read_settings(path: Path) -> dict[str, Any]:
    """The settings as a JSON object; {} when the file does not exist. UsageError when it is not
    JSON (nothing is written then)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise AschedError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg});"
            " left unchanged: fix it, or add mcpServers.asched by hand"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} holds no JSON object; left unchanged")
    servers = data.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise UsageError(f"{path}: mcpServers is not an object; left unchanged")
    return data


def _write_settings(path: Path, data: dict[str, Any]) -> None:
    """Replace the file (its real path, when it is a symlink) atomically, keeping its mode."""
    real = path.resolve()
    real.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = real.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600  # settings may hold API keys
    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", dir=real.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _install_gemini(path: Path, command: list[str], force: bool) -> int:
    data = _read_settings(path)
    servers: dict[str, Any] = data.setdefault("mcpServers", {})
    entry = {"command": command[0], "args": command[1:]}
    current = servers.get(NAME)
    shown = shlex.join(command)
    if _same(current, command):
        print(f"asched is already registered with Gemini CLI ({path}): {shown}")
        return EXIT_OK
    if current is not None and not force:
        text = _entry_text(current) if isinstance(current, dict) else json.dumps(current)
        raise UsageError(
            f"{path} already has an MCP server named asched: {text} (pass --force to replace it)"
        )
    servers[NAME] = entry
    _write_settings(path, data)
    verb = "replaced" if current is not None else "registered"
    print(f"{verb} asched with Gemini CLI ({path}): {shown}")
    print("check it: gemini mcp list; new sessions have its tools")
    return EXIT_OK


def _uninstall_gemini(path: Path) -> int:
    data = _read_settings(path)
    servers = data.get("mcpServers", {})
    if NAME not in servers:
        print(f"asched is not registered with Gemini CLI ({path}); nothing to do")
        return EXIT_OK
    del servers[NAME]
    if not servers:
        del data["mcpServers"]
    _write_settings(path, data)
    print(f"removed asched from Gemini CLI ({path})")
    return EXIT_OK
