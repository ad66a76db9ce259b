"""Agent profiles: what asched knows about the programs it types into.

A check-in is typed into a program's input area: Claude Code's ``❯`` box, Gemini CLI's ``>``
box, a REPL's prompt. Whether it was *submitted* is a fact about that input area, not about the
message text: both agent UIs collapse a large paste into a placeholder (``[Pasted text #3 +5
lines]``, ``[Pasted Text: 2008 chars]``), so the text itself is never on screen. A profile says,
for one program:

- how to recognise it from the pane's foreground process (``programs``: process names;
  ``command``: a pattern searched in its command line, for programs run by ``node``);
- how to read its input area off the screen: the last row matching ``prompt`` (its ``text``
  group is the first line of the input), the rows after it matching ``continuation``, the
  ``placeholder`` texts an empty area shows, and what a collapsed paste looks like;
- ``busy``: what is on screen while it works (a spinner line, "esc to interrupt");
- ``settle_s``: its own settle delay before Enter (None: ``[delivery] settle_s``), and
  ``min_settle_s``, the smallest one measured to be safe;
- ``enters``: how many Enter presses a delivery may make in all: a swallowed Enter (the UI took
  it as part of the paste, or it accepted a file suggestion) is pressed again, never re-typed.

The programs that have no profile get :data:`GENERIC`: no input area is known, so the old rule
applies (the end of the text must have left the cursor line) and nothing is guarded.
Users add or override profiles in the config file (``[agents.NAME]``, see asched.config).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

__all__ = [
    "BUILTIN",
    "GENERIC",
    "InputArea",
    "Profile",
    "pick",
    "read_input",
]


@dataclass(frozen=True, slots=True)
class Profile:
    """What asched knows about one program's input area (see the module docstring)."""

    name: str
    programs: tuple[str, ...] = ()
    command: str | None = None
    prompt: str | None = None  # None: no input area is known (the generic profile)
    continuation: str | None = None
    placeholder: tuple[str, ...] = ()
    collapsed: str | None = None
    busy: str | None = None
    settle_s: float | None = None
    min_settle_s: float = 0.0
    enters: int = 1
    # Compiled patterns, derived from the fields above (never passed in).
    _re: dict[str, re.Pattern[str]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for key in ("command", "prompt", "continuation", "collapsed", "busy"):
            value = getattr(self, key)
            if value is not None:
                self._re[key] = re.compile(value)
        empty = "|".join(f"(?:{p})" for p in self.placeholder) or "(?!)"  # (?!) matches nothing
        self._re["placeholder"] = re.compile(empty)

    @property
    def knows_input(self) -> bool:
        """True when the profile can read the input area (and guard it)."""
        return self.prompt is not None

    def matches(self, names: Iterable[str], cmdlines: Iterable[str]) -> bool:
        """True when a foreground process with one of ``names`` (and, when the profile has a
        ``command`` pattern, a command line matching it) is this program."""
        if self.programs and not set(names) & set(self.programs):
            return False
        if "command" in self._re:
            return any(self._re["command"].search(c) for c in cmdlines)
        return bool(self.programs)

    def pattern(self, key: str) -> re.Pattern[str] | None:
        """One compiled pattern (``prompt``, ``busy``, ...), or None when the profile has none."""
        return self._re.get(key)


@dataclass(frozen=True, slots=True)
class InputArea:
    """The input area as read off the screen."""

    text: str  # the lines of input, prompt marks removed, joined with LF
    row: int  # the screen row of the prompt line
    empty: bool  # nothing typed (blank, or only a placeholder)
    collapsed: bool  # holds a collapsed paste
    busy: bool  # the program shows that it is working


def read_input(profile: Profile, rows: Sequence[str]) -> InputArea | None:
    """The input area of ``profile`` on a screen (``rows``: the visible rows, top first).

    None when the profile knows no input area or none is on screen (a dialog, a program still
    starting): then nothing can be said about it, and nothing must be typed on a guess.
    """
    prompt = profile.pattern("prompt")
    if prompt is None:
        return None
    for row in range(len(rows) - 1, -1, -1):
        first = prompt.match(rows[row])
        if first is not None:
            break
    else:
        return None
    lines = [first.group("text") or ""]
    cont = profile.pattern("continuation")
    for line in rows[row + 1 :]:
        more = cont.match(line) if cont is not None else None
        if more is None:
            break
        lines.append(more.group("text") or "")
    text = "\n".join(line.rstrip() for line in lines).strip("\n")
    collapsed_re = profile.pattern("collapsed")
    busy_re = profile.pattern("busy")
    placeholder = profile.pattern("placeholder")
    assert placeholder is not None
    # The busy marks sit just above the input area (Claude, Gemini) or on it; the transcript
    # further up may quote anything.
    near = rows[max(0, row - 8) : row + len(lines) + 3]
    return InputArea(
        text=text,
        row=row,
        empty=not text.strip() or placeholder.fullmatch(text.strip()) is not None,
        collapsed=collapsed_re is not None and collapsed_re.search(text) is not None,
        busy=busy_re is not None and any(busy_re.search(r) for r in near),
    )


def holds(area: InputArea, message: str) -> bool:
    """True when the input area holds ``message`` (as text or as a collapsed paste).

    Compared without whitespace: UIs wrap long lines and indent continuation rows. The end of the
    message is enough (its start may have scrolled out of a tall input box); a file-suggestion
    menu may have appended a space or completed a path, which whitespace removal and a short
    tail absorb.
    """
    if area.empty:
        return False
    if area.collapsed:
        return True
    have = "".join(area.text.split())
    want = "".join(message.split())
    if not want:
        return False
    return want[-24:] in have or (len(have) >= 8 and have in want)


# -- the built-in profiles ---------------------------------------------------------------------
# Measured with Claude Code 2.1.197, Gemini CLI 0.61.0, tmux 3.3a (docs/AGENTS.md in the README's
# "asched with Claude Code, Gemini CLI, Codex" section has the figures).

CLAUDE = Profile(
    name="claude",
    programs=("claude", "claude.exe"),
    # ❯ text, between two rules (a no-break space after the ❯ in the input box, a plain one in
    # the transcript's echo); continuation rows are indented by two spaces.
    prompt=r"^❯(?:[ \xa0](?P<text>.*))?$",
    continuation=r"^  (?P<text>.*)$",
    placeholder=(r'Try ".*"', r"Press up to edit queued messages"),
    collapsed=r"\[Pasted text #\d+(?: \+\d+ lines)?\]",
    # The footer says "esc to interrupt" while it works, or the spinner line above the box
    # does ("✽ Orbiting…"; a finished turn reads "✻ Baked for 0s", without the ellipsis).
    busy=r"esc to interrupt|^[·✢✳✶✻✽*] \S+…",
    min_settle_s=0.0,
    # An Enter that only accepts the @file suggestion menu, then the one that submits.
    enters=3,
)

GEMINI = Profile(
    name="gemini",
    programs=("node", "gemini"),
    command=r"(?:^|[\s/])gemini(?:\.js)?(?:\s|$)",
    prompt=r"^ [>!*](?: {1,3}(?P<text>.*))?$",
    continuation=r"^   (?P<text>.*)$",
    placeholder=(r"Type your message or @path/to/file", r"Type your message.*"),
    collapsed=r"\[Pasted Text: \d+ (?:chars|lines)\]",
    busy=r"esc to cancel",
    # An Enter within ~40 ms of a paste becomes a newline (its unsafe-paste window).
    min_settle_s=0.05,
    enters=3,
)

CODEX = Profile(
    name="codex",
    programs=("codex", "codex-linux-x64", "node"),
    command=r"(?:^|[\s/])codex(?:\.js)?(?:\s|$)",
    prompt=r"^›(?: (?P<text>.*))?$",
    continuation=r"^  (?P<text>.*)$",
    placeholder=(r"Ask Codex to do anything", r"Implement \{feature\}.*", r"Find and fix a bug.*"),
    collapsed=r"\[Pasted Content \d+ chars\]",
    busy=r"esc to interrupt",
    min_settle_s=0.12,
    enters=2,
)

IPYTHON = Profile(
    name="ipython",
    programs=("ipython", "ipython3", "ptpython"),
    prompt=r"^(?:In \[\d+\]:|>>>)(?: (?P<text>.*))?$",
    continuation=r"^(?:\s+\.\.\.:|\.\.\.)(?: (?P<text>.*))?$",
    min_settle_s=0.0,
    enters=1,
)

PYTHON = Profile(
    name="python",
    programs=("python", "python3", *(f"python3.{n}" for n in range(8, 16))),
    # The REPL only: an interpreter given nothing but options (a script is another program).
    command=r"^\S*python[\d.]*(?:\s+-[A-Za-z]+)*$",
    prompt=r"^>>>(?: (?P<text>.*))?$",
    continuation=r"^\.\.\.(?: (?P<text>.*))?$",
    enters=1,
)

GENERIC = Profile(name="generic")

BUILTIN: tuple[Profile, ...] = (CLAUDE, GEMINI, CODEX, IPYTHON, PYTHON)


def pick(
    names: Iterable[str],
    cmdlines: Iterable[str],
    profiles: Sequence[Profile] = BUILTIN,
) -> Profile:
    """The first profile whose program is in the foreground, else :data:`GENERIC`.

    ``profiles`` are tried in order: user profiles (from the config file) come first, so that
    they can override a built-in one of the same program.
    """
    names = tuple(names)
    cmdlines = tuple(cmdlines)
    for profile in profiles:
        if profile.matches(names, cmdlines):
            return profile
    return GENERIC


def merged(overrides: Mapping[str, Mapping[str, object]]) -> tuple[Profile, ...]:
    """The built-in profiles with the config file's ``[agents.NAME]`` tables applied.

    A table named like a built-in profile changes only the keys it gives; any other name adds a
    profile (it needs ``programs``). Added and changed profiles are tried before the rest.
    """
    by_name = {p.name: p for p in BUILTIN}
    first: list[Profile] = []
    for name, keys in overrides.items():
        base = by_name.pop(name, Profile(name=name))
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in keys.items()}
        first.append(replace(base, _re={}, **values))  # type: ignore[arg-type]
    return (*first, *by_name.values())


def program_name(path: str) -> str:
    """A process name as profiles list it: the basename, without a login shell's ``-``."""
    return os.path.basename(path).lstrip("-")
