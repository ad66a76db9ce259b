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
Users add or override profiles in the config file (``[agents.NAME]``, see asched.daemon.config).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "BUILTIN",
    "GENERIC",
    "InputArea",
    "Profile",
    "pick",
    "read_input",
]


# The fields that hold a regular expression (asched.daemon.config validates the same ones).
PATTERNS = ("command", "prompt", "continuation", "collapsed", "busy", "above")


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
    # Where the real input area is, so that a prompt echoed in the transcript is never taken
    # for it when the input box is not drawn (a dialog in its place): one of the ``above_rows``
    # rows right above the prompt row matches ``above`` (a box's top rule), and at most
    # ``tail_rows`` non-blank rows follow the input area (a footer).
    above: str | None = None
    above_rows: int = 1
    tail_rows: int | None = None
    settle_s: float | None = None
    min_settle_s: float = 0.0
    enters: int = 1

    # Patterns are compiled when first used (re keeps them cached), not at import: the daemon's
    # start to READY pays nothing for profiles it has not met yet.

    @property
    def knows_input(self) -> bool:
        """True when the profile can read the input area (and guard it)."""
        return self.prompt is not None

    def matches(self, names: Iterable[str], cmdlines: Iterable[str]) -> bool:
        """True when a foreground process with one of ``names`` (and, when the profile has a
        ``command`` pattern, a command line matching it) is this program."""
        if self.programs and not set(names) & set(self.programs):
            return False
        command = self.pattern("command")
        if command is not None:
            return any(command.search(c) for c in cmdlines)
        return bool(self.programs)

    def pattern(self, key: str) -> re.Pattern[str] | None:
        """One compiled pattern (``prompt``, ``busy``, ...), or None when the profile has none."""
        value: str | None = getattr(self, key) if key in PATTERNS else None
        return None if value is None else re.compile(value)

    def is_placeholder(self, text: str) -> bool:
        """True when ``text`` is what the empty input area shows."""
        return any(re.fullmatch(p, text) for p in self.placeholder)


@dataclass(frozen=True, slots=True)
class InputArea:
    """The input area as read off the screen."""

    text: str  # the lines of input, prompt marks removed, joined with LF
    row: int  # the screen row of the prompt line
    empty: bool  # nothing typed (blank, or only a placeholder)
    collapsed: bool  # holds a collapsed paste (and nothing else)
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
    gap = 0  # blank rows seen: an empty line of the text if more of the input follows
    for line in rows[row + 1 :]:
        if not line.strip():
            gap += 1
            continue
        more = cont.match(line) if cont is not None else None
        if more is None:
            break
        lines += [""] * gap + [more.group("text") or ""]
        gap = 0
    if not _anchored(profile, rows, row, row + len(lines)):
        return None
    text = "\n".join(line.rstrip() for line in lines).strip("\n")
    collapsed_re = profile.pattern("collapsed")
    busy_re = profile.pattern("busy")
    # The busy marks sit just above the input area (Claude, Gemini, Codex) or just below it
    # (Claude's footer); the transcript further up may quote anything.
    near = rows[max(0, row - 8) : row + len(lines) + 3]
    return InputArea(
        text=text,
        row=row,
        empty=not text.strip() or profile.is_placeholder(text.strip()),
        collapsed=collapsed_re is not None and collapsed_re.fullmatch(text.strip()) is not None,
        busy=busy_re is not None and any(busy_re.search(r) for r in near),
    )


def _anchored(profile: Profile, rows: Sequence[str], row: int, end: int) -> bool:
    """The prompt row at ``row`` (its area ending before ``end``) sits where the profile's input
    area does (see Profile.above and Profile.tail_rows)."""
    above = profile.pattern("above")
    lid = rows[max(0, row - profile.above_rows) : row]
    if above is not None and not any(above.match(r) for r in lid):
        return False
    tail = sum(1 for r in rows[end:] if r.strip())
    return profile.tail_rows is None or tail <= profile.tail_rows


def holds(area: InputArea, message: str) -> bool:
    """True when the input area holds ``message`` and nothing else (as text, or as the UI's
    collapsed-paste placeholder alone).

    Compared without whitespace (UIs wrap long lines and indent continuation rows, a file
    suggestion adds a space, a swallowed Enter a newline) and without "@" (Codex drops it when
    its Enter picks a file). A box too short for the whole text shows its end: a long enough
    end of the message counts. Anything more, a person's words before or after ours, does not:
    an Enter then would send them too.
    """
    if area.empty:
        return False
    if area.collapsed:
        return True
    have = "".join(area.text.split()).replace("@", "")
    want = "".join(message.split()).replace("@", "")
    return bool(want) and (have == want or (len(have) >= 40 and want.endswith(have)))


# -- the built-in profiles ---------------------------------------------------------------------
# Measured with Claude Code 2.1.197, Gemini CLI 0.61.0, Codex CLI 0.169.0, tmux 3.3a (the figures
# are in the README's "asched with Claude Code, Gemini CLI, Codex" and docs/BENCHMARKS.md).

CLAUDE = Profile(
    name="claude",
    programs=("claude", "claude.exe"),
    # ❯ text right under a rule, a no-break space after the ❯ (the transcript's echo has a plain
    # one, a permission dialog's choices no rule above); continuation rows indented by two.
    prompt=r"^❯(?:\xa0(?P<text>.*))?$",
    continuation=r"^  (?P<text>.*)$",
    above=r"^─{10,}$",
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
    # " > text" a few rows under the rule that tops the input box (the transcript's echoes of
    # submitted prompts look the same, above it); continuation rows indented by three.
    prompt=r"^ [>!*](?: {1,3}(?P<text>.*))?$",
    continuation=r"^   (?P<text>.*)$",
    above=r"^─{10,}$",
    above_rows=6,
    placeholder=(r"Type your message or @path/to/file", r"Type your message.*"),
    collapsed=r"\[Pasted Text: \d+ (?:chars|lines)\]",
    busy=r"esc to cancel",
    # An Enter within ~40 ms of a paste becomes a newline (its unsafe-paste window).
    min_settle_s=0.05,
    enters=3,
)

CODEX = Profile(
    name="codex",
    # npm's `codex` is a node wrapper that runs the native binary as a child, in one group.
    programs=("codex", "node"),
    command=r"(?:^|[\s/])codex(?:\.js)?(?:\s|$)",
    # The last `› ` row, at the bottom with only the status and hint rows under it (submitted
    # prompts in the transcript look the same, higher up); not a dialog's numbered choice
    # (`› 1. Trust and continue`). Rows below it up to a blank row.
    prompt=r"^›(?:[ \xa0](?P<text>(?!\d+\. ).*))?$",
    # Not the status row ("model · /cwd") nor a hint row, which follow the input area.
    continuation=r"^  (?P<text>(?!.* · /|← for agents|tab to queue message)\S.*)$",
    placeholder=(r"Ask Codex to do anything", r"Ask a follow-up question"),
    tail_rows=3,  # a blank row, the status row, the hints row
    collapsed=r"\[Pasted Content \d+ chars\](?: #\d+)?",
    busy=r"esc to interrupt",
    min_settle_s=0.0,  # a bracketed paste: 0 s worked; typed keys need 0.05 s
    enters=2,  # the first Enter after `@file` only picks the file (and drops the `@`)
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
        first.append(replace(base, **keys))  # type: ignore[arg-type]
    return (*first, *by_name.values())
