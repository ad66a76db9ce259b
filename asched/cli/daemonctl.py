"""The commands that run the daemon or work beside it: ``daemon``, ``status``, ``send``,
``config check``, ``reload`` and ``demo``.

Their handlers import what they use when they run, not at the top: the parser loads this module
for any of its commands, and the daemon, the delivery engine and the status probe bring in
asyncio, structlog and psutil (each of these commands would pay for the others').
"""

from __future__ import annotations

import argparse
import json
import sys

from asched.cli.shared import error_line, state_dir, tmux_socket
from asched.core.errors import EXIT_NOT_RUNNING, EXIT_OK, EXIT_RUNTIME, UsageError
from asched.core.paths import config_file

Subparsers = argparse._SubParsersAction  # the type add_subparsers() returns

_FORMATTER = argparse.RawDescriptionHelpFormatter

# asched.core.logs has the same tuple; importing it here would load structlog (and asyncio) into
# every CLI call, about 45 ms.
LEVELS = ("debug", "info", "warning", "error", "critical")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be from 0 to 3600 seconds: {text!r}")
    return value


def add_daemon(sub: Subparsers[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``daemon``: the scheduler in the foreground."""
    daemon = sub.add_parser(
        "daemon",
        parents=[common],
        help="run the scheduler daemon in the foreground",
        description="Run the scheduler daemon in the foreground (also: python -m asched --daemon)."
        " One daemon per state directory: a second one waits up to --lock-timeout for the first"
        " to stop, then exits 75. Logs are JSON lines on stderr (a console view on a terminal).",
        formatter_class=_FORMATTER,
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


def add_status(sub: Subparsers[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``status``: is a daemon running on this state directory?"""
    status = sub.add_parser(
        "status",
        parents=[common],
        help="is a daemon running on this state directory? (exit 0 yes, 3 no)",
        description="Report whether a daemon holds this state directory, with its pid, uptime"
        " and memory. Never disturbs the running daemon. Exit 0 when running, 3 when not.",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_cmd_status)


def add_send(sub: Subparsers[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``send``: deliver a message now, without a daemon."""
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
        formatter_class=_FORMATTER,
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


def add_config(sub: Subparsers[argparse.ArgumentParser]) -> None:
    """Add ``config check``: validate a config file."""
    cfg = sub.add_parser(
        "config",
        help="check a config file",
        description="Validate a config file (default: the one the daemon reads) and print what"
        " it declares. Errors name the file and line; exit 2 when the file is bad.",
        epilog="example:\n  asched config check ~/.config/asched/config.toml",
        formatter_class=_FORMATTER,
    )
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = cfg_sub.add_parser("check", help="validate a config file")
    check.add_argument("file", metavar="FILE", nargs="?", help="default: $ASCHED_CONFIG or"
                       " $XDG_CONFIG_HOME/asched/config.toml")  # fmt: skip
    check.set_defaults(handler=_cmd_config_check)


def add_reload(sub: Subparsers[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add ``reload``: make the running daemon re-read its config file."""
    reload = sub.add_parser(
        "reload",
        parents=[common],
        help="make the running daemon re-read its config file (like SIGHUP)",
        description="Ask the daemon on this state directory to re-read its config file. A bad"
        " file is logged by the daemon and its running configuration kept; run"
        " `asched config check` first. Exit 3 when no daemon answers.",
    )
    reload.set_defaults(handler=_cmd_reload)


def add_demo(sub: Subparsers[argparse.ArgumentParser]) -> None:
    """Add ``demo``: a private tmux server, a few check-ins, about 10 s."""
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


def _cmd_daemon(args: argparse.Namespace) -> int:
    # Lazy: see the module's docstring; serve imports the daemon (asched/daemon/start.py).
    from asched.daemon.options import options_for
    from asched.daemon.start import serve

    return serve(
        options_for(
            tuple(sys.argv),
            state_dir=args.state_dir,
            config=args.config,
            tmux_socket=args.tmux_socket,
            lock_timeout_s=args.lock_timeout,
            loop=args.loop,
            log_level=args.log_level,
        )
    )


def _cmd_send(args: argparse.Namespace) -> int:
    # Lazy: see the module's docstring.
    from asched.cli.send import run_send
    from asched.cli.views import delivery_json
    from asched.core.logs import configure as configure_logs
    from asched.core.states import DeliveryState
    from asched.daemon import config
    from asched.daemon.wiring import delivery_settings

    # The engine's events are the daemon's log; here only trouble goes to stderr, and stdout
    # carries the outcome alone.
    configure_logs("warning", stream=sys.stderr)
    socket = tmux_socket(args)
    cfg = config.load(config_file(args.config))
    row = run_send(
        state_dir(args), args.target, args.message, socket, args.grace, delivery_settings(cfg)
    )
    if args.json:
        print(json.dumps(delivery_json(row), indent=2))
    else:
        why = f" ({row.reason})" if row.reason else ""
        print(f"{row.state}{why}: {args.target}" + (f" ({row.pane})" if row.pane else ""))
    ok = row.state in (DeliveryState.VERIFIED, DeliveryState.UNVERIFIED)
    return EXIT_OK if ok else EXIT_RUNTIME


def _cmd_config_check(args: argparse.Namespace) -> int:
    from asched.core.ruletext import format_duration  # lazy: see the module's docstring
    from asched.core.zones import local_zone_name
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
        if e.every_s is not None:
            when = f"every {format_duration(e.every_s)}"  # as people write it: 20m, not 1200s
        else:
            zone = e.tz or f"{local_zone_name()} (this system's zone)"
            when = f"cron {e.cron!r} {zone}"
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
    from asched.daemon.control import send  # lazy: see the module's docstring

    state = state_dir(args)
    if send(state, "reload"):
        print("asched: reload requested")
        return EXIT_OK
    print(f"asched: {error_line(f'no daemon answered on {state}')}", file=sys.stderr)
    return EXIT_NOT_RUNNING


def _cmd_demo(args: argparse.Namespace) -> int:
    from asched.cli.demo import run_demo  # lazy: see the module's docstring

    return run_demo(args.seconds)


def _format_bytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def _cmd_status(args: argparse.Namespace) -> int:
    from asched.daemon.status import probe  # lazy: see the module's docstring

    st = probe(state_dir(args))
    if args.json:
        print(json.dumps(st.as_json(), indent=2))
    elif st.running:
        from asched.core.ruletext import format_duration

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
