"""``asched install-service`` and ``uninstall-service``: the command lines; the work is in
:mod:`asched.install.installer`, imported when one of them runs (it is not needed to parse, and
``asched --version`` should not load it)."""

from __future__ import annotations

import argparse


def add_service_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        if verb == "install":
            p.add_argument(
                "--allow-editable",
                action="store_true",
                help="install even from an editable install (pip install -e, ./dev's venv),"
                " which is refused by default: the unit would run the checkout",
            )
        p.set_defaults(handler=_cmd_service, service_verb=verb)


def _cmd_service(args: argparse.Namespace) -> int:
    from asched.install import installer as install  # lazy: see the module's docstring

    if args.service_verb == "install":
        return install.install(args.system, args.dry_run, allow_editable=args.allow_editable)
    return install.uninstall(args.system, args.dry_run)
