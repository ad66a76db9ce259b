"""``asched completion bash|zsh|fish``: a shell completion script, generated from the parser.

shtab writes the script from the same argparse parser that parses the command line, so the
completions cannot drift from the commands. It is imported only when this command runs (it is
not needed to parse, and ``asched --version`` should not load it). The man page comes from the
same parser too, at build time (setup.py, argparse-manpage).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterator

from asched.core.errors import EXIT_OK

SHELLS = ("bash", "zsh", "fish")

# Where each shell loads a completion script from by itself (per user); the README says the same.
_INSTALL_HINTS = """\
install (per user; open a new shell afterwards):
  bash  asched completion bash > ~/.local/share/bash-completion/completions/asched
  zsh   asched completion zsh > ~/.zfunc/_asched
        (with fpath+=(~/.zfunc) before compinit in ~/.zshrc)
  fish  asched completion fish > ~/.config/fish/completions/asched.fish
or for this shell only:
  bash  source <(asched completion bash)
  zsh   source <(asched completion zsh)
  fish  asched completion fish | source
"""

# Options whose value is a path: complete it as one (the metavars of the command families).
_PATH_METAVARS = {"FILE": "FILE", "PATH": "FILE", "DIR": "DIRECTORY"}


def add_completion_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    whole: Callable[[], argparse.ArgumentParser],
) -> None:
    """Add ``completion SHELL``; ``whole`` builds the whole parser, the one the script describes
    (the one that parsed the command line may have only this command: asched.cli.parser)."""
    p = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Print the completion script for SHELL on stdout: commands, options and\n"
        "their choices, and file names where an option takes a path. It is generated from\n"
        "asched's own parser, so it always matches this version.",
        epilog=_INSTALL_HINTS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("shell", metavar="SHELL", choices=SHELLS, help="one of: " + ", ".join(SHELLS))
    p.set_defaults(handler=functools.partial(_cmd_completion, whole))


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Every action of ``parser`` and of its subcommands, recursively."""
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases repeat a parser
                yield from _actions(child)


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`) describing ``parser``."""
    import shtab  # lazy: see the module docstring

    kinds = {"FILE": shtab.FILE, "DIRECTORY": shtab.DIRECTORY}
    for action in _actions(parser):
        kind = _PATH_METAVARS.get(action.metavar) if isinstance(action.metavar, str) else None
        if kind is not None:
            action.complete = kinds[kind]  # type: ignore[attr-defined]  # shtab's hook
    return shtab.complete(parser, shell=shell)


def _cmd_completion(whole: Callable[[], argparse.ArgumentParser], args: argparse.Namespace) -> int:
    sys.stdout.write(script(whole(), args.shell))
    return EXIT_OK
