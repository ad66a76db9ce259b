"""The parser of one command line (``parser_for``) against the whole parser (``build_parser``).

A command line is parsed by a parser holding its command alone (asched.cli.parser), so that it
imports only that command's module; what a user sees must not change: every command's --help,
every usage error and ``--version`` read byte for byte as from the whole parser, which --help,
the man page and the completion scripts still use.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from asched.cli import parser as cli_parser
from asched.cli import shared
from asched.cli.main import main


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[
    tuple[tuple[str, ...], argparse.ArgumentParser]
]:  # fmt: skip
    """Every command and subcommand (``config check``) with its parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*prefix, name), child
                yield from command_paths(child, (*prefix, name))


def subparser(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    """The parser of the command ``path`` within ``parser``."""
    return dict(command_paths(parser))[path]


WHOLE = {path: p.format_help() for path, p in command_paths(cli_parser.build_parser())}


@pytest.fixture(autouse=True)
def _columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps help to the terminal's width


def test_the_families_name_every_command_in_help_order() -> None:
    top = [path[0] for path in WHOLE if len(path) == 1]
    assert top == list(cli_parser.FAMILY_OF)
    assert len(top) >= 21


@pytest.mark.parametrize("path", list(WHOLE), ids=" ".join)
def test_a_command_helps_as_in_the_whole_parser(path: tuple[str, ...]) -> None:
    whole = subparser(cli_parser.build_parser(), path).format_help()
    own = cli_parser.parser_for(list(path))
    assert subparser(own, path).format_help() == whole
    # ... and holds no command of another family.
    top = [p[0] for p, _ in command_paths(own) if len(p) == 1]
    assert path[0] in top
    assert set(top) <= set(cli_parser.FAMILIES[cli_parser.FAMILY_OF[path[0]]])


def test_options_first_or_an_unknown_command_get_the_whole_parser() -> None:
    for args in ([], ["--help"], ["--version", "ls"], ["lss"], ["LS"], [""], ["--", "ls"]):
        assert len(list(command_paths(cli_parser.parser_for(args)))) == len(WHOLE), args


BAD = [
    [],
    ["lss"],
    ["nxt", "5m", "x"],
    ["--bogus"],
    ["--bogus", "ls"],
    ["ls", "--version"],
    ["add"],
    ["add", "w:0"],
    ["add", "w:0", "m", "--in", "5m", "extra"],
    ["add", "w:0", "--in", "1m", "--in=--"],
    ["ls", "--bogus"],
    ["next"],
    ["rm", "1", "--key", "k", "--nope"],
    ["pause", "--bogus"],
    ["history", "--limit"],
    ["config"],
    ["config", "chk"],
    ["hooks"],
    ["hooks", "install", "gemini"],
    ["completion", "tcsh"],
    ["mcp", "frob"],
    ["daemon", "--loop", "x"],
    ["daemon", "--lock-timeout", "-1"],
    ["install-service", "--user", "--system", "u"],
    ["status", "x"],
    ["l\ns"],
]


@pytest.mark.parametrize("args", BAD, ids=repr)
def test_usage_errors_read_as_from_the_whole_parser(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def outcome() -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            main(args)
        out = capsys.readouterr()
        return int(exc.value.code or 0), out.out, out.err

    own = outcome()
    monkeypatch.setattr(cli_parser, "parser_for", lambda _args: cli_parser.build_parser())
    assert own == outcome()
    assert own[0] == 2


def test_version_reads_as_argparse_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    fast = capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli_parser.build_parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr() == fast
    assert fast.out.startswith("asched ") and fast.err == ""


@pytest.mark.parametrize("columns", [None, "100", "0", "-5", "abc", " 70 "])
def test_the_help_width_is_the_one_argparse_would_take(
    columns: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argparse sizes help with shutil.get_terminal_size(); the parser works it out without
    importing shutil, and must get the same (pytest's stdout is no terminal: the fallback)."""
    import shutil

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert shared.help_width() == shutil.get_terminal_size().columns - 2
