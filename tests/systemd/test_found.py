"""An agent's command line finds asched@USER with no setting (asched/daemon/published.py).

asched@USER keeps its state in /var/lib/asched/USER; a shell of USER's, in a pane of USER's own
tmux server, has no asched variable and no XDG_RUNTIME_DIR. ``asched next 2s hello`` there must
reach that daemon, which delivers it into the very pane.
"""

from __future__ import annotations

import json
import os
import shlex

import pytest

from tests.support.systemd import HOME, RECV, STATE, TMUX_UNIT, UNIT, USER, Svc, wait_for

pytestmark = [pytest.mark.systemd, pytest.mark.timeout(90)]


def test_an_agent_in_a_pane_reaches_the_template_daemon_with_no_setting(
    svc: Svc, python: str
) -> None:
    box = svc.box
    svc.systemctl("start", UNIT)
    pointer = f"/run/asched/{USER}/state"
    assert box.run(["readlink", pointer]).stdout.strip() == STATE

    # The pane: as an agent would, `asched next` (from PATH), then the pane runs cat, which
    # reads what the daemon types (`cat` is no shell: it is typed into) into RECV/p0.
    out = f"{HOME}/next.out"
    bindir = os.path.dirname(python)  # the venv's bin, with its `asched` script
    line = (
        f"PATH={shlex.quote(bindir)}:$PATH; export PATH; env > {HOME}/pane.env;"
        f" asched next 2s hello >{out} 2>&1; echo rc=$? >>{out}; exec cat >{RECV}/p0"
    )
    box.run(["mkdir", "-p", RECV], user=USER)
    box.run(
        [
            "systemd-run", f"--unit={TMUX_UNIT}", f"--uid={USER}", f"--gid={USER}",
            "--property=Type=forking", f"--setenv=HOME={HOME}", "--setenv=SHELL=/bin/sh",
            "--setenv=LANG=C.UTF-8",
            "tmux", "-f", "/dev/null", "new-session", "-d", "-s", "agent", "-x", "120", "-y",
            "30", line,
        ]
    )  # fmt: skip

    def said() -> str | None:
        text = box.run(["cat", out], check=False).stdout
        return text if "rc=" in text else None

    text = wait_for("asched next in the pane", said, timeout=20, interval=0.1)
    print(f"\n$ asched next 2s hello   # in a pane of {USER}'s tmux, no asched setting\n{text}")
    pane_env = box.run(["cat", f"{HOME}/pane.env"]).stdout
    assert not [v for v in pane_env.splitlines() if v.startswith(("ASCHED_", "XDG_", "STATE_"))]
    assert text.startswith("set the next check-in of %0 (id 1): in 2s, at "), text
    assert text.endswith(": hello\nrc=0\n"), text  # and no line saying no daemon runs

    wait_for("the delivery", lambda: svc.received(0) == ["hello"], timeout=15, interval=0.2)
    event = svc.wait_event("checkin.delivered", 10)
    assert (event["state"], event["target"]) == ("verified", "%0")
    history = box.run([python, "-P", "-m", "asched", "history", "--json"], user=USER)
    rows = json.loads(history.stdout)
    assert [(r["state"], r["target"]) for r in rows] == [("verified", "%0")]
    assert box.run(["test", "-e", f"{HOME}/.local/state/asched"], check=False).returncode == 1

    # Stopped: the pointer goes with the runtime directory; the command line says so, and that
    # starting asched@USER alone would not deliver what it just stored in the default place.
    svc.systemctl("stop", UNIT)
    assert box.run(["test", "-e", pointer], check=False).returncode == 1
    add = box.run(
        [python, "-P", "-m", "asched", "add", "%0", "later", "--in", "1h"], user=USER, check=False
    )
    assert add.returncode == 0, add
    assert add.stderr == (
        f"asched: no daemon is running on {HOME}/.local/state/asched, so nothing will deliver"
        f" this yet; start one: asched daemon; or sudo systemctl start asched@{USER}, then add"
        f" it again (that daemon reads {STATE})\n"
    )
    box.run(["rm", "-rf", f"{HOME}/.local/state/asched", out, f"{HOME}/pane.env"])
