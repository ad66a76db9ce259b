"""Agent profiles read the input area off real screens (captured from Claude Code 2.1.197,
Gemini CLI 0.61.0 and Codex CLI 0.169.0 in tmux 3.3a: tests/agents/screens/), pick the program,
and take config."""

from __future__ import annotations

from pathlib import Path

import pytest

from asched.core.errors import UsageError
from asched.daemon import config
from asched.delivery.profiles import (
    BUILTIN,
    CLAUDE,
    CODEX,
    GEMINI,
    GENERIC,
    IPYTHON,
    PYTHON,
    holds,
    pick,
    read_input,
)

SCREENS = Path(__file__).resolve().parents[1] / "agents" / "screens"
THREE = "asched check-in\n1. what changed\n2. what is blocked"

# screen -> (empty, collapsed, busy, text or None)
EXPECT = {
    "claude-idle": (True, False, False, ""),
    "claude-typed": (False, False, False, "half typed by a person"),
    "claude-three-lines": (False, False, False, THREE),
    "claude-collapsed": (False, True, False, "[Pasted text #4]"),
    "claude-busy-queued": (True, False, True, None),
    "claude-busy-typed": (False, False, True, "typed while busy"),
    "claude-mention-accepted": (False, False, False, None),
    "gemini-idle": (True, False, False, None),
    "gemini-typed": (False, False, False, "half typed by a person"),
    "gemini-three-lines": (False, False, False, THREE),
    "gemini-collapsed": (False, True, False, "[Pasted Text: 2000 chars]"),
    "gemini-busy-queued": (True, False, True, None),
    "gemini-busy-typed": (False, False, True, "typed while busy"),
    "gemini-enter-swallowed": (False, True, False, "[Pasted Text: 6 lines]"),
    "codex-idle": (True, False, False, None),
    "codex-typed": (False, False, False, "hello from asched one line"),
    "codex-paste3": (False, False, False, "a\nb\nc"),
    "codex-paste6": (False, False, False, None),
    "codex-paste2000": (False, True, False, "[Pasted Content 2000 chars]"),
    "codex-busy": (True, False, True, None),
    "codex-busy-typed": (False, False, True, "typed while busy"),
    "codex-busy-tab-queued": (True, False, True, None),
    "codex-done": (True, False, False, None),
    "codex-at-file-after-enter": (False, False, False, "please read somefile.txt"),
}
PROFILES = {"claude": CLAUDE, "gemini": GEMINI, "codex": CODEX}


def _rows(name: str) -> list[str]:
    return (SCREENS / f"{name}.txt").read_text().split("\n")


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_the_input_area_is_read_off_a_real_screen(name: str) -> None:
    area = read_input(PROFILES[name.split("-")[0]], _rows(name))
    assert area is not None
    empty, collapsed, busy, text = EXPECT[name]
    assert (area.empty, area.collapsed, area.busy) == (empty, collapsed, busy), area
    if text is not None:
        assert area.text.strip() == text


def test_a_queued_prompt_in_the_transcript_is_not_the_input_area() -> None:
    # Claude shows "  ❯ queued one" under its spinner; the input box is the one below.
    area = read_input(CLAUDE, _rows("claude-busy-queued"))
    assert area is not None and "queued one" not in area.text


def test_our_text_is_recognised_in_the_input_area_and_a_persons_is_not() -> None:
    mention = read_input(CLAUDE, _rows("claude-mention-accepted"))
    assert mention is not None and holds(mention, "please update @STATUS.md")
    three = read_input(GEMINI, _rows("gemini-three-lines"))
    assert three is not None and holds(three, THREE)
    typed = read_input(CLAUDE, _rows("claude-typed"))
    assert typed is not None and not holds(typed, "asched check-in: status report please")
    collapsed = read_input(GEMINI, _rows("gemini-collapsed"))
    assert collapsed is not None and holds(collapsed, "x" * 2000)
    picked = read_input(CODEX, _rows("codex-at-file-after-enter"))  # the "@" dropped
    assert picked is not None and holds(picked, "please read @somefile.txt")
    idle = read_input(CLAUDE, _rows("claude-idle"))
    assert idle is not None and not holds(idle, "anything")


@pytest.mark.parametrize("name", ["claude-three-lines", "gemini-three-lines", "codex-paste3"])
def test_an_empty_line_inside_the_text_stays_in_the_input_area(name: str) -> None:
    rows = _rows(name)
    profile = PROFILES[name.split("-")[0]]
    area = read_input(profile, rows)
    assert area is not None
    second = area.row + 1
    gapped = [*rows[:second], "", *rows[second:]]
    again = read_input(profile, gapped)
    assert again is not None
    first, rest = area.text.split("\n", 1)
    assert again.text == f"{first}\n\n{rest}"
    assert holds(again, f"{first}\n\n{rest}")


def test_a_screen_without_an_input_area_reads_as_unknown() -> None:
    assert read_input(CLAUDE, ["Do you want to proceed?", " 1. Yes", " 2. No"]) is None
    # Codex's sign-in screen and trust dialog (its "› 1. Trust and continue" is a choice).
    assert read_input(CODEX, _rows("codex-signin-screen")) is None
    assert read_input(CODEX, _rows("codex-trust-dialog")) is None
    assert read_input(GENERIC, _rows("claude-idle")) is None


def test_a_prompt_echoed_in_the_transcript_is_not_taken_for_the_input_area() -> None:
    # The input box not drawn (a dialog in its place): the last echo of a submitted prompt must
    # not be read as our text waiting in the input, nor a dialog's choice as the input.
    for name, profile in (("claude-idle", CLAUDE), ("gemini-typed", GEMINI)):
        rows = _rows(name)
        box = max(n for n, r in enumerate(rows) if r.startswith(("❯", " >")))
        cut = [*rows[: box - 4], "Do you want to proceed?", "❯ 1. Yes", "  2. No", ""]
        assert read_input(profile, cut) is None, name
    codex = _rows("codex-done")
    box = max(n for n, r in enumerate(codex) if r.startswith("›"))
    assert read_input(CODEX, [*codex[:box], "Approve this command?", "  y / n", "", "x"]) is None


def test_repl_prompts() -> None:
    py = read_input(PYTHON, ["Python 3.11", ">>> 1 + 1", "2", ">>>"])
    assert py is not None and py.empty and py.row == 3
    ipy = read_input(IPYTHON, ["In [1]: x = 1", "", "In [2]: print(", "   ...: 1)"])
    assert ipy is not None and ipy.text == "print(\n1)" and not ipy.empty


@pytest.mark.parametrize(
    ("names", "cmdlines", "expect"),
    [
        (("claude",), ("/usr/lib/node_modules/.bin/claude",), "claude"),
        (("node",), ("node /usr/local/bin/gemini",), "gemini"),
        (("node",), ("node /opt/gemini-cli/bundle/gemini.js --yolo",), "gemini"),
        (("node",), ("node server.js",), "generic"),
        (("codex",), ("/usr/bin/codex",), "codex"),
        (("codex", "node"), ("node /x/.bin/codex --no-daemon", "/x/vendor/bin/codex"), "codex"),
        (("python3",), ("python3 -q",), "python"),
        (("python3",), ("python3",), "python"),
        (("python3",), ("python3 agent.py",), "generic"),  # a script is not the REPL
        (("ipython",), ("/usr/bin/python3 /usr/bin/ipython",), "ipython"),
        (("cat",), ("cat",), "generic"),
    ],
)
def test_the_profile_is_picked_from_the_foreground_process(
    names: tuple[str, ...], cmdlines: tuple[str, ...], expect: str
) -> None:
    assert pick(names, cmdlines).name == expect


def test_config_overrides_a_builtin_profile_and_adds_one(tmp_path: Path) -> None:
    cfg = config.parse(
        "[agents.gemini]\nsettle_s = 0.2\nenters = 2\n"
        '[agents.aider]\nprograms = ["aider"]\nprompt = "^> (?P<text>.*)$"\nbusy = "Waiting"\n'
    )
    by_name = {p.name: p for p in cfg.agents}
    assert by_name["gemini"].settle_s == 0.2 and by_name["gemini"].enters == 2
    assert by_name["gemini"].prompt == GEMINI.prompt  # the rest stays built in
    assert pick(("aider",), ("aider",), cfg.agents).name == "aider"
    area = read_input(by_name["aider"], ["> fix it", "Waiting for model"])
    assert area is not None and area.text == "fix it" and area.busy
    assert config.parse("").agents == BUILTIN


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[agents.new]\nprompt = "^> (?P<text>.*)$"\n', "needs programs"),
        ('[agents.claude]\nprompt = "^> (.*)$"\n', "(?P<text>...)"),
        ('[agents.claude]\nbusy = "("\n', "not a regular expression"),
        ("[agents.claude]\nenters = 9\n", "enters must be a whole number from 1 to 5"),
        ("[agents.claude]\nenters = 1.5\n", "enters must be a whole number from 1 to 5"),
        ('[agents.claude]\nprograms = "claude"\n', "programs must be a list"),
        ("[agents.claude]\nprograms = []\n", "programs must name at least one program"),
        ('[agents.claude]\nplaceholder = ["(?i)try", "("]\n', "not a regular expression"),
        ('[agents.claude]\nbusy = ""\n', "busy must not be empty"),
        ('[agents.claude]\nprompt = "^> [(?P<text>]"\n', "(?P<text>...)"),
        ('[agents.claude]\ncontinuation = "^  (.*)$"\n', "(?P<text>...)"),
        ("[agents.claude]\ncolour = 1\n", "unknown key(s): colour"),
        ("agents = 3\n", "agents must be tables"),
    ],
)
def test_bad_agent_tables_are_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.parse(text, Path("/etc/asched.toml"))
