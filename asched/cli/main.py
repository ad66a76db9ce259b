"""The command line: parse, dispatch, turn each user-caused error into one line and an exit code.

Exit codes: 0 success, 1 runtime error, 2 usage error, 3 ``status``: no daemon running,
4 the database was removed or replaced under the running daemon, 75 the state directory is held
by another daemon past the lock timeout.

This module imports nothing at the top but ``sys``: ``asched --version`` answers from here, and
``asched hook`` goes to its own small parser, before argparse or any command is loaded. Every
other command line gets the parser of its own command (:func:`asched.cli.parser.parser_for`).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import NoReturn

    Handler = Callable[[argparse.Namespace], int]


def _print_paths_as_bytes() -> None:
    """Under a UTF-8 locale other than C.UTF-8 stdout is strict, and a path typed as invalid
    UTF-8 (decoded with surrogateescape) would crash a print: write it back as its bytes, as
    Python does under the C locale."""
    import io  # loaded at every start anyway (sys.stdout is one)

    if isinstance(sys.stdout, io.TextIOWrapper) and sys.stdout.errors == "strict":
        sys.stdout.reconfigure(errors="surrogateescape")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asched`` console script; returns the exit code."""
    _print_paths_as_bytes()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:
        # What argparse's version action prints, without argparse (see the module's docstring).
        from asched import __version__

        print(f"asched {__version__}")
        return 0
    if args_list[:1] == ["hook"]:
        # An agent waits for this command before it takes each prompt: it skips the command
        # line's parser and parses its one option itself.
        from asched.cli import hook

        return hook.main(args_list[1:])
    from asched.cli.parser import parser_for

    parser = parser_for(args_list)
    args = parser.parse_args(args_list)
    if any(value == [] for value in vars(args).values()):
        # Python 3.11's argparse turns a value of exactly "--" (--in=--, or MESSAGE "--" after
        # "--") into an empty list; refuse it rather than pass a list on as text.
        parser.error("'--' cannot be a value here (argparse reads it as the end of the options)")
    handler: Handler = args.handler
    return _guarded(lambda: handler(args))


def _guarded(command: Callable[[], int]) -> int:
    """Run ``command``; an error of asched's becomes one line on stderr and its exit code."""
    from asched.core.errors import EXIT_OK, AschedError

    try:
        return command()
    except AschedError as exc:
        from asched.cli.shared import error_line

        print(f"asched: {error_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `asched ls | head`: the reader left; that is not an error of ours.
        return EXIT_OK


def _bare_daemon() -> int:
    """``python -m asched --daemon`` and nothing else, as the units run it: every option from the
    environment, as ``asched daemon`` with no option would have it, without the parser (which
    took 6-13 ms of each start: docs/BENCHMARKS.md)."""
    from asched.daemon.options import options_for
    from asched.daemon.start import serve

    _print_paths_as_bytes()
    return _guarded(lambda: serve(options_for(tuple(sys.argv))))


def run_module(argv: Sequence[str] | None = None) -> int:
    """``python -m asched``: accepts ``--daemon`` before any command as a spelling of the
    ``daemon`` command (the units run ``python -m asched --daemon``); anywhere else it is an
    argument like any other, as for the ``asched`` script: ``add ... -- --daemon`` adds a check-in
    whose message is ``--daemon``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--daemon"]:
        return _bare_daemon()
    flag = _daemon_flag(args_list)
    if flag is not None:
        del args_list[flag]
        args_list.insert(0, "daemon")
    if not args_list:
        from asched.cli.parser import build_parser
        from asched.core.errors import EXIT_USAGE

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


def exit_process(code: int) -> NoReturn:
    """End the process with ``code``, for the entry points (the console script, ``python -m``).

    While Python shuts down it collects garbage once more, walking every object the imports made:
    about 5 ms for a command that loaded the parser and the store, more than its own work.
    Frozen objects are left out of that walk (:func:`gc.freeze`); nothing here waits for it:
    files, sockets and the store are closed where they are used, and the interpreter still
    flushes stdout and stderr and runs atexit handlers.
    """
    import gc  # built in: costs nothing

    gc.freeze()
    sys.exit(code)


def console() -> None:
    """The ``asched`` console script."""
    exit_process(main())
