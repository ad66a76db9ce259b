"""The command line: parse, dispatch, turn each user-caused error into one line and an exit code.

Exit codes: 0 success, 1 runtime error, 2 usage error, 3 ``status``: no daemon running,
4 the database was removed or replaced under the running daemon, 75 the state directory is held
by another daemon past the lock timeout.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from asched import __version__
from asched.cli.commands import register as register_data_commands
from asched.core.errors import EXIT_NOT_RUNNING, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, AschedError

Handler = Callable[[argparse.Namespace], int]

# asched.logs has the same tuple; importing it here would load structlog (and asyncio) into
# every CLI call, about 45 ms.
LEVELS = ("debug", "info", "warning", "error", "critical")

DESCRIPTION = """\
asched types scheduled check-in messages into tmux panes: "in 30 minutes, ask the orchestrator
for a status report". A daemon keeps the schedule (one per state directory); these commands
talk to it, and work whether it runs or not.
"""

EPILOG = """\
examples:
  asched daemon                      run the scheduler in the foreground (JSON logs on stderr)
  asched status                      is a daemon running on this state directory?
  asched add work:0.1 "status report please" --in 30m
                                     type that into pane 1 of window 0 of session work, once
  asched add work:0 "check the build" --every 1h --key build
                                     hourly; a second add with --key build replaces it
  asched add work:0 "stand-up" --cron "0 9 * * MON-FRI" --tz Europe/Berlin
  asched ls                          what is scheduled (--json for scripts)
  asched pause 12 / resume 12 / rm 12
  asched history                     what was delivered, skipped or failed
  asched send work:0 "hello"         deliver now, no daemon needed
  asched demo                        see it work in about ten seconds
  asched config check                validate the config file (declarative check-ins)
  asched COMMAND --help              each command's options and examples

state directory: --state-dir, else $ASCHED_STATE_DIR, else $STATE_DIRECTORY (systemd),
else $XDG_STATE_HOME/asched (~/.local/state/asched).
exit codes: 0 ok, 1 runtime error, 2 bad usage, 3 not running (status),
4 database replaced under the running daemon, 75 lock held.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


MAX_ERROR_CHARS = 1000  # an error that echoes a 1 MiB argument shows its start and its end


def _one_line(text: str) -> str:
    """``text`` with control characters and lone surrogates escaped, so it stays one line, and
    cut in the middle when it is longer than MAX_ERROR_CHARS."""
    if len(text) > MAX_ERROR_CHARS:
        half = MAX_ERROR_CHARS // 2
        text = f"{text[:half]} [{len(text) - 2 * half} characters cut] {text[-half:]}"
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors, like every other error of asched (exit 2).

    argparse prints the whole usage block and then the error; and "unrecognized arguments"
    repeats the user's words raw, newlines and all. Subparsers inherit this class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n"
        )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be from 0 to 3600 seconds: {text!r}")
    return value


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        metavar="DIR",
        help="state directory (database and lock); default: see `asched --help`",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The full parser; every subcommand takes --state-dir."""
    parser: argparse.ArgumentParser = _Parser(  # subparsers are _Parser too (type(self))
        prog="asched", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"asched {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common()

    daemon = sub.add_parser(
        "daemon",
        parents=[common],
        help="run the scheduler daemon in the foreground",
        description="Run the scheduler daemon in the foreground (also: python -m asched --daemon)."
        " One daemon per state directory: a second one waits up to --lock-timeout for the first"
        " to stop, then exits 75. Logs are JSON lines on stderr (a console view on a terminal).",
        formatter_class=_Formatter,
    )
    daemon.add_argument(
        "--lock-timeout",
        type=_positive_seconds,
        default=10.0,
        metavar="S",
        help="seconds to wait for another daemon to release the state directory (default 10)",
    )
    daemon.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop implementation (default uvloop)",
    )
    daemon.add_argument("--log-level", choices=LEVELS, help="log threshold (default info)")
    daemon.add_argument(
        "--config", metavar="FILE", help="config file (default $XDG_CONFIG_HOME/asched/config.toml)"
    )
    daemon.add_argument(
        "--tmux-socket",
        metavar="PATH",
        help="tmux server socket (tmux -S); default $ASCHED_TMUX_SOCKET or tmux's own default",
    )
    daemon.set_defaults(handler=_cmd_daemon)

    status = sub.add_parser(
        "status",
        parents=[common],
        help="is a daemon running on this state directory? (exit 0 yes, 3 no)",
        description="Report whether a daemon holds this state directory, with its pid, uptime"
        " and memory. Never disturbs the running daemon. Exit 0 when running, 3 when not.",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_cmd_status)
    register_data_commands(sub, common)

    send = sub.add_parser(
        "send",
        parents=[common],
        help="deliver a message now, without a daemon",
        description="Type MESSAGE into the tmux pane TARGET now, through the same engine and"
        " config file as the daemon (exact target, shell guard, agent profile, input guard, paste,"
        " settle, Enter, check), and print the outcome."
        " The delivery is journaled: `asched history` shows it. Exit 0 when delivered, 1 when"
        " it was skipped or failed.",
        epilog="example:\n  asched send work:0.1 'SCHEDULED CHECK-IN: status report please'",
        formatter_class=_Formatter,
    )
    send.add_argument("target", metavar="TARGET", help="session:window[.pane] or %%N")
    send.add_argument("message", metavar="MESSAGE", help="the text to type (TAB and LF allowed)")
    send.add_argument("--tmux-socket", metavar="PATH", help="tmux server socket (tmux -S)")
    send.add_argument(
        "--config",
        metavar="FILE",
        help="the daemon's config file, for [delivery] and [agents] (default $ASCHED_CONFIG,"
        " else $XDG_CONFIG_HOME/asched/config.toml)",
    )
    send.add_argument(
        "--grace",
        type=_positive_seconds,
        default=10.0,
        metavar="S",
        help="seconds to keep retrying a missing target (default 10)",
    )
    send.add_argument("--json", action="store_true", help="print the journal row as JSON")
    send.set_defaults(handler=_cmd_send)

    cfg = sub.add_parser(
        "config",
        help="check a config file",
        description="Validate a config file (default: the one the daemon reads) and print what"
        " it declares. Errors name the file and line; exit 2 when the file is bad.",
        epilog="example:\n  asched config check ~/.config/asched/config.toml",
        formatter_class=_Formatter,
    )
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = cfg_sub.add_parser("check", help="validate a config file")
    check.add_argument("file", metavar="FILE", nargs="?", help="default: $ASCHED_CONFIG or"
                       " $XDG_CONFIG_HOME/asched/config.toml")  # fmt: skip
    check.set_defaults(handler=_cmd_config_check)

    reload = sub.add_parser(
        "reload",
        parents=[common],
        help="make the running daemon re-read its config file (like SIGHUP)",
        description="Ask the daemon on this state directory to re-read its config file. A bad"
        " file is logged by the daemon and its running configuration kept; run"
        " `asched config check` first. Exit 3 when no daemon answers.",
    )
    reload.set_defaults(handler=_cmd_reload)

    demo = sub.add_parser(
        "demo",
        help="see it work: a private tmux server, a few check-ins, about 10 s",
        description="Start a private tmux server with a small interactive program and a shell,"
        " schedule a few check-ins a second or two apart, run the daemon in-process, then print"
        " the program's screen and the delivery journal. Everything it starts, it stops.",
    )
    demo.add_argument(
        "--seconds", type=_positive_seconds, default=10.0, metavar="S", help="run time"
    )
    demo.set_defaults(handler=_cmd_demo)
    _service_parsers(sub)
    return parser


def _service_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """install-service / uninstall-service; the work is in asched.install (imported lazily)."""
    for name, verb in (("install-service", "install"), ("uninstall-service", "uninstall")):
        p = sub.add_parser(
            name,
            help=f"{verb} the systemd unit (user unit, or --system USER)",
            description=f"{verb.capitalize()} asched as a systemd service: a user unit"
            " (~/.config/systemd/user/asched.service, the default), or with --system USER the"
            " template /etc/systemd/system/asched@.service and its instance asched@USER.service"
            " (root). Idempotent: a second run changes nothing and says so."
            + (" The state directory is kept." if verb == "uninstall" else ""),
        )
        scope = p.add_mutually_exclusive_group()
        scope.add_argument("--user", action="store_true", help="the user unit (default)")
        scope.add_argument("--system", metavar="USER", help="the system template, run as USER")
        p.add_argument(
            "--dry-run", action="store_true", help="print what would be done; do nothing"
        )
        p.set_defaults(handler=_cmd_service, service_verb=verb)


def _cmd_service(args: argparse.Namespace) -> int:
    from asched.install import installer as install

    run = install.install if args.service_verb == "install" else install.uninstall
    return run(args.system, args.dry_run)


def _state_dir(args: argparse.Namespace) -> Path:
    from asched.core.paths import state_dir

    return state_dir(args.state_dir)


def _tmux_socket(args: argparse.Namespace) -> str | None:
    from asched.core.paths import path_arg

    text = args.tmux_socket or os.environ.get("ASCHED_TMUX_SOCKET") or None
    return None if text is None else path_arg(text, "tmux socket")


def _cmd_daemon(args: argparse.Namespace) -> int:
    from asched.core.paths import config_file
    from asched.daemon import process as daemon
    from asched.daemon.wiring import scheduling

    options = daemon.DaemonOptions(
        state_dir=_state_dir(args),
        config_path=config_file(args.config),
        lock_timeout_s=args.lock_timeout,
        loop=args.loop,
        log_level=args.log_level,
        tmux_socket=_tmux_socket(args),
        argv=tuple(sys.argv),
    )
    return daemon.run(options, {"scheduling": scheduling})


def _cmd_send(args: argparse.Namespace) -> int:
    from asched.cli.send import run_send
    from asched.cli.views import delivery_json
    from asched.core.logs import configure as configure_logs
    from asched.core.paths import config_file
    from asched.core.states import DeliveryState
    from asched.daemon import config
    from asched.daemon.wiring import delivery_settings

    # The engine's events are the daemon's log; here only trouble goes to stderr, and stdout
    # carries the outcome alone.
    configure_logs("warning", stream=sys.stderr)
    tmux_socket = _tmux_socket(args)
    cfg = config.load(config_file(args.config))
    row = run_send(
        _state_dir(args), args.target, args.message, tmux_socket, args.grace, delivery_settings(cfg)
    )
    if args.json:
        print(json.dumps(delivery_json(row), indent=2))
    else:
        why = f" ({row.reason})" if row.reason else ""
        print(f"{row.state}{why}: {args.target}" + (f" ({row.pane})" if row.pane else ""))
    ok = row.state in (DeliveryState.VERIFIED, DeliveryState.UNVERIFIED)
    return EXIT_OK if ok else EXIT_RUNTIME


def _cmd_config_check(args: argparse.Namespace) -> int:
    from asched.core.errors import UsageError
    from asched.core.paths import config_file
    from asched.daemon import config

    path = config_file(args.file)
    try:
        missing = args.file is not None and not path.exists()
    except OSError:  # e.g. a name too long: config.load below says what is wrong
        missing = False
    if missing:
        raise UsageError(f"{path}: no such file")
    cfg = config.load(path)
    where = str(path) if path.exists() else f"{path} (absent: defaults)"
    print(f"{where}: ok")
    for e in cfg.checkins:
        when = f"every {e.every_s}s" if e.every_s is not None else f"cron {e.cron!r} {e.tz}"
        match = f"role={e.role}" if e.role else f"session={e.session} window={e.window}"
        match += " (any case)" if e.ignore_case else ""
        print(f"  [[checkin]] {e.name}: {when}, {match}")
    for name in cfg.agent_tables:
        profile = next(p for p in cfg.agents if p.name == name)
        settle = "[delivery] settle_s" if profile.settle_s is None else f"{profile.settle_s:g}s"
        programs = ", ".join(profile.programs) or "-"
        print(f"  [agents.{name}] programs: {programs}; settle {settle}; enters {profile.enters}")
    return EXIT_OK


def _cmd_reload(args: argparse.Namespace) -> int:
    from asched.daemon.control import send

    state = _state_dir(args)
    if send(state, "reload"):
        print("asched: reload requested")
        return EXIT_OK
    print(f"asched: {_one_line(f'no daemon answered on {state}')}", file=sys.stderr)
    return EXIT_NOT_RUNNING


def _cmd_demo(args: argparse.Namespace) -> int:
    from asched.cli.demo import run_demo

    return run_demo(args.seconds)


def _format_bytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def _cmd_status(args: argparse.Namespace) -> int:
    from asched.core.triggers import format_duration
    from asched.daemon.status import probe

    st = probe(_state_dir(args))
    if args.json:
        print(json.dumps(st.as_json(), indent=2))
    elif st.running:
        facts = [f"pid {st.pid if st.pid is not None else 'unknown'}"]
        if st.uptime_s is not None:
            facts.append(f"up {format_duration(st.uptime_s)}")
        if st.rss_bytes is not None:
            facts.append(f"RSS {_format_bytes(st.rss_bytes)}")
        print(f"asched is running ({', '.join(facts)})")
        print(f"  state dir: {st.state_dir}\n  database:  {st.db_path}")
    else:
        print(f"asched is not running on {st.state_dir}")
    return EXIT_OK if st.running else EXIT_NOT_RUNNING


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
        print(f"asched: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `asched ls | head`: the reader left; that is not an error of ours.
        return EXIT_OK


def run_module(argv: Sequence[str] | None = None) -> int:
    """``python -m asched``: accepts ``--daemon`` as a spelling of the ``daemon`` command."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if "--daemon" in args_list:
        args_list.remove("--daemon")
        args_list.insert(0, "daemon")
    if not args_list:
        build_parser().print_help()
        return EXIT_USAGE
    return main(args_list)


def console() -> None:
    """The ``asched`` console script."""
    sys.exit(main())
