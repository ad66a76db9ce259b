"""`asched install-service` / `uninstall-service` against a real systemd, system and user units."""

from __future__ import annotations

import os
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from asched.install.units import render
from tests.support.nspawn import Box
from tests.support.systemd import HOME, STATE, TMUX_UNIT, UNIT, USER, Svc, wait_for

pytestmark = [pytest.mark.systemd, pytest.mark.timeout(90)]

TEMPLATE = "/etc/systemd/system/asched@.service"
USER_UNIT = f"{HOME}/.config/systemd/user/asched.service"
# The tests install from this venv, which is editable (./dev's): install-service refuses that
# unless asked (tests/install/test_editable.py).
EDITABLE = ("--allow-editable",)


def asched(
    box: Box, python: str, *args: str, user: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return box.run(
        [python, "-P", "-m", "asched", *args], user=user, env=env, check=False, timeout=90
    )


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    """The error of a failed command: exactly one line, ``asched: ...``, no traceback."""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asched: "), r.stderr
    return lines[0]


@pytest.fixture
def clean(box: Box) -> Iterator[Box]:
    """No asched unit installed, before and after."""

    def wipe() -> None:
        box.run(["systemctl", "disable", "--now", UNIT, TMUX_UNIT], check=False, timeout=60)
        box.run(["rm", "-rf", TEMPLATE, STATE, f"{HOME}/.local/state/asched", f"{HOME}/recv"])
        box.run(["systemctl", "daemon-reload"])
        box.run(["systemctl", "reset-failed"], check=False)

    wipe()
    yield box
    wipe()


def test_install_service_system_is_idempotent(clean: Box, python: str) -> None:
    box = clean
    r = asched(box, python, "install-service", "--system", USER, *EDITABLE)
    assert r.returncode == 0, r.stderr
    print(f"\n$ asched install-service --system {USER}\n{r.stdout}")
    for expected in (
        f"wrote {TEMPLATE}",
        "ran: systemctl daemon-reload",
        f"ran: systemctl enable {UNIT}",
        f"ran: systemctl start {UNIT}",
        f"ASCHED_STATE_DIR={STATE}",
    ):
        assert expected in r.stdout
    assert box.run(["cat", TEMPLATE]).stdout == render("asched@.service", python)
    assert box.run(["systemctl", "is-enabled", UNIT]).stdout.strip() == "enabled"
    assert box.run(["systemctl", "is-active", UNIT]).stdout.strip() == "active"
    pid = box.run(["systemctl", "show", "-P", "MainPID", UNIT]).stdout.strip()

    again = asched(box, python, "install-service", "--system", USER, *EDITABLE)
    assert again.returncode == 0, again.stderr
    print(f"$ asched install-service --system {USER}   # again\n{again.stdout}")
    assert "nothing to do" in again.stdout and "ran:" not in again.stdout
    assert box.run(["systemctl", "show", "-P", "MainPID", UNIT]).stdout.strip() == pid

    # An older rendering (a different interpreter, say): rewritten, and the daemon restarted.
    box.write(
        TEMPLATE, render("asched@.service", python).replace("Description=", "Description=old ")
    )
    update = asched(box, python, "install-service", "--system", USER, *EDITABLE)
    assert update.returncode == 0, update.stderr
    assert f"updated {TEMPLATE}" in update.stdout
    assert f"ran: systemctl restart {UNIT}" in update.stdout
    assert box.run(["systemctl", "show", "-P", "MainPID", UNIT]).stdout.strip() != pid

    gone = asched(box, python, "uninstall-service", "--system", USER)
    assert gone.returncode == 0, gone.stderr
    print(f"$ asched uninstall-service --system {USER}\n{gone.stdout}")
    assert f"removed {TEMPLATE}" in gone.stdout
    assert box.run(["test", "-e", TEMPLATE], check=False).returncode == 1
    assert box.run(["systemctl", "is-active", UNIT], check=False).stdout.strip() == "inactive"
    assert box.run(["test", "-d", STATE], check=False).returncode == 0  # the data stays
    twice = asched(box, python, "uninstall-service", "--system", USER)
    assert twice.returncode == 0 and "nothing to do" in twice.stdout


def test_install_service_refuses_a_unit_it_did_not_write(clean: Box, python: str) -> None:
    box = clean
    box.write(TEMPLATE, "[Service]\nExecStart=/bin/true\n")
    r = asched(box, python, "install-service", "--system", USER, *EDITABLE)
    assert r.returncode == 1
    assert "not written by asched install-service" in one_line_error(r)
    assert box.run(["cat", TEMPLATE]).stdout == "[Service]\nExecStart=/bin/true\n"


def test_install_service_checks_the_interpreter_as_the_unit_will_run_it(
    clean: Box, python: str
) -> None:
    """asched importable only through PYTHONPATH: the unit would not find it. One line, exit 1,
    nothing written."""
    base = os.path.realpath(python)  # the venv's interpreter is a link to the base one
    site = sysconfig.get_paths()["purelib"]  # this venv's site-packages
    project = str(Path(__file__).resolve().parents[2])
    r = clean.run(
        [base, "-m", "asched", "install-service", "--system", USER, *EDITABLE],
        env={"PYTHONPATH": f"{project}:{site}"},
        check=False,
        timeout=60,
    )
    assert r.returncode == 1, r.stdout
    assert "cannot import asched" in one_line_error(r)
    assert clean.run(["test", "-e", TEMPLATE], check=False).returncode == 1


def test_install_service_user_unit_under_a_user_manager(clean: Box, python: str) -> None:
    """The user unit, in the user's own systemd (user@UID.service), sharing its state directory
    with the CLI's default: a check-in added without --state-dir is delivered."""
    box = clean
    svc = Svc(box, python)
    uid = box.run(["id", "-u", USER]).stdout.strip()
    env = {"XDG_RUNTIME_DIR": f"/run/user/{uid}"}
    box.run(["systemctl", "start", f"user@{uid}.service"], timeout=60)
    try:
        r = asched(box, python, "install-service", "--user", *EDITABLE, user=USER, env=env)
        assert r.returncode == 0, r.stderr
        print(f"\n$ asched install-service --user\n{r.stdout}")
        assert "ran: systemctl --user start asched.service" in r.stdout
        assert f"loginctl enable-linger {USER}" in r.stdout
        assert box.run(["cat", USER_UNIT]).stdout == render("asched.service", python)
        user_ctl = ["systemctl", "--user"]
        active = box.run([*user_ctl, "is-active", "asched.service"], user=USER, env=env)
        assert active.stdout.strip() == "active"
        again = asched(box, python, "install-service", "--user", *EDITABLE, user=USER, env=env)
        assert again.returncode == 0 and "nothing to do" in again.stdout, again

        svc.start_tmux(1, socket=None)
        add = box.run(
            [python, "-P", "-m", "asched", "add", "p0:0", "from-user-unit", "--in", "1s"], user=USER
        )
        assert add.returncode == 0
        wait_for(
            "the delivery", lambda: svc.received(0) == ["from-user-unit"], timeout=10, interval=0.2
        )
        box.run([*user_ctl, "restart", "asched.service"], user=USER, env=env)

        gone = asched(box, python, "uninstall-service", "--user", user=USER, env=env)
        assert gone.returncode == 0, gone.stderr
        assert f"removed {USER_UNIT}" in gone.stdout
        inactive = box.run(
            [*user_ctl, "is-active", "asched.service"], user=USER, env=env, check=False
        )
        assert inactive.stdout.strip() == "inactive"
    finally:
        box.run(["systemctl", "stop", f"user@{uid}.service", TMUX_UNIT], check=False, timeout=60)
