"""Where asched keeps its state, its control socket and its config; nothing is cwd-relative."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from asched.core.errors import StateDirError, UsageError

DB_NAME = "asched.db"
SOCKET_NAME = "asched.sock"
SPOOL_NAME = "spool"  # message bodies of a burst on their way into tmux, for milliseconds


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home)


def path_arg(text: str, what: str) -> str:
    """A path typed by the user; UsageError for a NUL, which no path can hold, and for text that
    is no file name (lone surrogates other than the ones invalid UTF-8 in argv decodes to)."""
    if "\x00" in text:
        raise UsageError(f"bad {what} {text!r}: a path cannot contain a NUL byte")
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise UsageError(f"bad {what} {text!r}: not a valid file name") from None
    return text


def state_dir_setting(
    explicit: str | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The state directory a setting names: ``--state-dir``, ASCHED_STATE_DIR, else
    $STATE_DIRECTORY (systemd); None when nothing names one. Always absolute."""
    e = _env(env)
    if explicit:
        chosen = Path(path_arg(explicit, "--state-dir"))
    elif e.get("ASCHED_STATE_DIR"):
        chosen = Path(e["ASCHED_STATE_DIR"])
    elif e.get("STATE_DIRECTORY"):
        # systemd joins several StateDirectory= entries with ':'; ours is the first.
        chosen = Path(e["STATE_DIRECTORY"].split(":")[0])
    else:
        return None
    if not chosen.is_absolute():
        # A relative path would depend on the cwd of whoever runs asched: resolve it once, here.
        chosen = Path.cwd() / chosen
    return chosen


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """The state directory when nothing names one: $XDG_STATE_HOME/asched, else
    ~/.local/state/asched."""
    e = _env(env)
    if e.get("XDG_STATE_HOME", "").startswith("/"):
        return Path(e["XDG_STATE_HOME"]) / "asched"
    home = _home(e)
    return (home if home.is_absolute() else Path.cwd() / home) / ".local" / "state" / "asched"


def state_dir(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The state directory: ``--state-dir``, ASCHED_STATE_DIR, $STATE_DIRECTORY (systemd),
    $XDG_STATE_HOME/asched, else ~/.local/state/asched. Always absolute.

    The daemon's rule. The command line's (:mod:`asched.cli.shared`) also follows a running
    daemon's published state directory when no setting names one (:mod:`asched.daemon.published`).
    """
    setting = state_dir_setting(explicit, env)
    return setting if setting is not None else default_state_dir(env)


def user_runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user's runtime directory: $XDG_RUNTIME_DIR, else where systemd-logind puts it
    (/run/user/UID; a shell from su or setpriv may lack the variable)."""
    e = _env(env)
    if e.get("XDG_RUNTIME_DIR", "").startswith("/"):
        return Path(e["XDG_RUNTIME_DIR"])
    return Path("/run/user") / str(os.geteuid())


def runtime_socket(state: Path, env: Mapping[str, str] | None = None) -> Path:
    """The control socket: $RUNTIME_DIRECTORY, else $XDG_RUNTIME_DIR/asched, else the state dir.

    Only the default state directory may use the shared runtime locations: a daemon on any other
    state directory keeps its socket beside its database so that two daemons never share one.
    """
    e = _env(env)
    if e.get("ASCHED_STATE_DIR") is None and state == state_dir(None, e):
        if e.get("RUNTIME_DIRECTORY"):
            return Path(e["RUNTIME_DIRECTORY"].split(":")[0]) / SOCKET_NAME
        if e.get("XDG_RUNTIME_DIR", "").startswith("/"):
            return Path(e["XDG_RUNTIME_DIR"]) / "asched" / SOCKET_NAME
    return state / SOCKET_NAME


def tmux_socket_setting(
    explicit: str | None = None, env: Mapping[str, str] | None = None
) -> str | None:
    """The tmux socket a setting names: ``--tmux-socket``, else ASCHED_TMUX_SOCKET; None: tmux's
    own default."""
    text = explicit or _env(env).get("ASCHED_TMUX_SOCKET") or None
    return None if text is None else path_arg(text, "tmux socket")


def config_file(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The config file: ``--config``, ASCHED_CONFIG, else $XDG_CONFIG_HOME/asched/config.toml."""
    e = _env(env)
    if explicit:
        return Path(path_arg(explicit, "config file")).absolute()
    if e.get("ASCHED_CONFIG"):
        return Path(e["ASCHED_CONFIG"]).absolute()
    base = e.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base.startswith("/") else _home(e) / ".config"
    return root / "asched" / "config.toml"


def ensure_state_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700 if missing, then refuse it if it is unsafe.

    Unsafe: not a directory, owned by another user, or writable by group or others (anyone who can
    write there could swap the database or the lock file under the daemon).
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise StateDirError(f"state directory {path} exists and is not a directory") from exc
    except OSError as exc:
        raise StateDirError(f"cannot create state directory {path}: {exc.strerror}") from exc
    check_state_dir(path)
    return path


def check_state_dir(path: Path) -> None:
    """Raise StateDirError unless ``path`` is a directory that only its owner (us) can write."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise StateDirError(f"state directory {path} does not exist") from exc
    except OSError as exc:
        raise StateDirError(f"cannot use state directory {path}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError(f"state directory {path} is not a directory")
    if st.st_uid != os.geteuid():
        raise StateDirError(f"state directory {path} belongs to uid {st.st_uid}, not to us")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StateDirError(
            f"state directory {path} is writable by others (mode {stat.S_IMODE(st.st_mode):04o});"
            f" run: chmod 700 {path}"
        )


def validate_name(text: str, what: str) -> str:
    """Reject empty strings, control characters and lone surrogates (invalid UTF-8 on the
    command line) in names that end up in paths, logs or the database."""
    if not text or any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise UsageError(f"invalid {what} {text!r}")
    return text
