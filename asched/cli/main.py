"""The command line: parse, dispatch, turn each user-caused error into one line and an exit code.

Exit codes: 0 success, 1 runtime error, 2 usage error, 3 ``status``: no daemon running,
4 the database was removed or replaced under the running daemon, 75 the state directory is held
by another daemon past the lock timeout.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Sequence

from asched.cli.shared import error_line
from asched.core.errors import EXIT_OK, EXIT_USAGE, AschedError

Handler = Callable[[argparse.Namespace], int]


def _print_paths_as_bytes() -> None:
    """Under a UTF-8 locale other than C.UTF-8 stdout is strict, and a path typed as invalid
    UTF-8 (decoded with surrogateescape) would crash a print: write it back as its bytes, as
    Python does under the C locale."""
    if isinstance(sys.stdout, io.TextIOWrapper) and sys.stdout.errors == "strict":
        sys.stdout.reconfigure(errors="surrogateescape")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asched`` console script; returns the exit code."""
    _print_paths_as_bytes()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["hook"]:
        # An agent waits for this command before it takes each prompt: it skips building the
        # whole command line (about 75 ms of imports) and parses its one option itself.
        from asched.cli import hook

        return hook.main(args_list[1:])
    from asched.cli.parser import build_parser  # here: see the hook above

    parser = build_parser()
    args = parser.parse_args(args_list)
    if any(value == [] for value in vars(args).values()):
        # Python 3.11's argparse turns a value of exactly "--" (--in=--, or MESSAGE "--" after
        # "--") into an empty list; refuse it rather than pass a list on as text.
        parser.error("'--' cannot be a value here (argparse reads it as the end of the options)")
    handler: Handler = args.handler
    try:
        return handler(args)
    except AschedError as exc:
        print(f"asched: {error_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `asched ls | head`: the reader left; that is not an error of ours.
        return EXIT_OK


def run_module(argv: Sequence[str] | None = None) -> int:
    """``python -m asched``: accepts ``--daemon`` before any command as a spelling of the
    ``daemon`` command (the units run ``python -m asched --daemon``); anywhere else it is an
    argument like any other, as for the ``asched`` script: ``add ... -- --daemon`` adds a check-in
    whose message is ``--daemon``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    flag = _daemon_flag(args_list)
    if flag is not None:
        del args_list[flag]
        args_list.insert(0, "daemon")
    if not args_list:
        from asched.cli.parser import build_parser

        build_parser().print_help()
        return EXIT_USAGE
    return main(args_list)


def _daemon_flag(args: Sequence[str]) -> int | None:
    """Where ``--daemon`` stands among the options before the command, if it does.

    The top level has no option that takes a value, so the first word that is not an option is
    the command, and what follows it (or ``--``) belongs to the command: a message, a value.
    """
    for index, arg in enumerate(args):
        if arg == "--daemon":
            return index
        if arg == "--" or not arg.startswith("-"):
            return None
    return None


def console() -> None:
    """The ``asched`` console script."""
    sys.exit(main())
