"""``asched hooks install|uninstall claude``: asched's entries in Claude Code's hook settings.

Claude Code reads hooks from ``settings.json`` in its config directory (``$CLAUDE_CONFIG_DIR``,
else ``~/.claude``): ``hooks`` maps an event name to a list of groups, each with a list of
``{"type": "command", "command": ...}``. Install adds, for each event of :data:`EVENTS`, one group
whose command runs ``asched hook`` with this interpreter; it leaves every other key, event and
hook alone, changes nothing when ours are there already, and replaces the file atomically (a file
beside it, then a rename). Uninstall removes our groups only. Claude Code runs a hook's command
through a shell, so the command's words are quoted (:func:`shlex.join`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from asched.core.errors import EXIT_OK, UsageError

EVENTS = ("UserPromptSubmit", "Stop", "StopFailure", "SessionStart")
HOOK_TIMEOUT_S = 5  # Claude Code's limit for our command; it returns within a second anyway


def add_hooks_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``hooks install|uninstall claude``."""
    hooks = sub.add_parser(
        "hooks",
        help="install or remove asched's hooks in an agent's settings (Claude Code)",
        description="Install or remove the hooks through which Claude Code tells asched what it"
        " received (each prompt) and when its turns end: deliveries are then confirmed by the"
        " agent itself, and --when-idle waits for the end of the agent's turn.",
    )
    verbs = hooks.add_subparsers(dest="hooks_verb", metavar="VERB", required=True)
    for verb in ("install", "uninstall"):
        p = verbs.add_parser(
            verb,
            parents=[common],
            help=f"{verb} the hooks",
            description=f"{verb.capitalize()} asched's hooks ({', '.join(EVENTS)}) in Claude"
            " Code's user settings. Idempotent; other settings and hooks are left alone."
            + (
                " With --state-dir (or $ASCHED_STATE_DIR) the hooks speak to that daemon."
                if verb == "install"
                else ""
            ),
        )
        p.add_argument("agent", choices=["claude"], help="the agent (claude: Claude Code)")
        p.add_argument(
            "--settings",
            metavar="FILE",
            help="the settings file (default: $CLAUDE_CONFIG_DIR or ~/.claude, settings.json)",
        )
        p.set_defaults(handler=_cmd_hooks, hooks_verb=verb)


def settings_path(explicit: str | None) -> Path:
    """Claude Code's user settings file."""
    if explicit:
        return Path(explicit)
    base = os.environ.get("CLAUDE_CONFIG_DIR") or str(Path.home() / ".claude")
    return Path(base) / "settings.json"


def hook_command(state: Path | None) -> str:
    """The command our hook entries run: this interpreter, ``-m asched hook``."""
    argv = [sys.executable, "-m", "asched", "hook"]
    if state is not None:
        argv += ["--state-dir", str(state)]
    return shlex.join(argv)


def is_ours(command: object) -> bool:
    """True for a hook command that runs ``asched hook`` (with any interpreter)."""
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return words[1:4] == ["-m", "asched", "hook"]


def merged(settings: dict[str, Any], command: str) -> dict[str, Any]:
    """``settings`` with our group for each event (others untouched); a new dict."""
    out = dict(settings)
    hooks = dict(_hooks_of(out))
    for event in EVENTS:
        groups = [g for g in _groups(hooks, event) if not _is_our_group(g)]
        groups.append(
            {"hooks": [{"type": "command", "command": command, "timeout": HOOK_TIMEOUT_S}]}
        )
        hooks[event] = groups
    out["hooks"] = hooks
    return out


def removed(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` without our groups; an event left with no group is dropped."""
    out = dict(settings)
    hooks = dict(_hooks_of(out))
    for event in EVENTS:
        groups = [g for g in _groups(hooks, event) if not _is_our_group(g)]
        if groups:
            hooks[event] = groups
        else:
            hooks.pop(event, None)
    if hooks:
        out["hooks"] = hooks
    else:
        out.pop("hooks", None)
    return out


def _hooks_of(settings: dict[str, Any]) -> dict[str, Any]:
    hooks = settings.get("hooks", {})
    if not isinstance(hooks, dict):
        raise UsageError('the settings\' "hooks" is not an object; fix it by hand first')
    return hooks


def _groups(hooks: dict[str, Any], event: str) -> list[Any]:
    groups = hooks.get(event, [])
    if not isinstance(groups, list):
        raise UsageError(f'the settings\' hooks."{event}" is not a list; fix it by hand first')
    return list(groups)


def _is_our_group(group: Any) -> bool:
    entries = group.get("hooks") if isinstance(group, dict) else None
    return (
        isinstance(entries, list)
        and len(entries) > 0
        and all(isinstance(e, dict) and is_ours(e.get("command")) for e in entries)
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path}: not valid JSON (line {exc.lineno}): fix it first; nothing was changed"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a JSON object; nothing was changed")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically, keeping its mode (0600 for a new file)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cmd_hooks(args: argparse.Namespace) -> int:
    path = settings_path(args.settings)
    before = _read(path)
    if args.hooks_verb == "install":
        chosen = args.state_dir or os.environ.get("ASCHED_STATE_DIR")
        state = Path(chosen).absolute() if chosen else None
        after = merged(before, hook_command(state))
    else:
        after = removed(before)
    events = ", ".join(EVENTS)
    if after == before:
        there = "already there" if args.hooks_verb == "install" else "not there"
        print(f"asched: {path}: no change (the hooks are {there})")
        return EXIT_OK
    _write(path, after)
    if args.hooks_verb == "install":
        print(f"asched: hooks installed in {path} ({events}); they take effect in new sessions")
    else:
        print(f"asched: hooks removed from {path}")
    return EXIT_OK
