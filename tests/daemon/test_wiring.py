"""The scheduling service's parts that READY does not wait for (daemon/wiring.py)."""

from __future__ import annotations

import pytest

from asched.daemon import config
from asched.daemon.wiring import Switchboard, delivery_settings, tmux_client, tmux_socket


@pytest.mark.parametrize(
    ("given", "env"),
    [
        (None, {}),
        (None, {"TMUX_TMPDIR": "/run/user/1000"}),
        (None, {"ASCHED_TMUX_SOCKET": "/tmp/x/sock"}),
        ("/tmp/given/sock", {"ASCHED_TMUX_SOCKET": "/tmp/x/sock"}),
    ],
)
def test_the_announced_tmux_socket_is_the_clients(
    given: str | None, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lock file names the server before READY, the client is built after: one rule.
    for key in ("TMUX_TMPDIR", "ASCHED_TMUX_SOCKET"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = tmux_client(given, delivery_settings(config.Config()))
    try:
        assert tmux_socket(given) == client.socket
    finally:
        client.close()


def test_commands_before_the_engine_is_built_are_kept_in_order() -> None:
    board = Switchboard()
    board.wake()  # nothing to wake yet: the first pass reads the store anyway
    assert board.hook("first") is None and board.hook("second") is None
    woken: list[str] = []
    hooks: list[str] = []

    def hook(payload: str) -> str | None:
        hooks.append(payload)
        return "bad hook event" if payload == "bad" else None

    board.connect(lambda: woken.append("wake"), hook)
    assert hooks == ["first", "second"]
    board.wake()
    assert woken == ["wake"]
    assert board.hook("bad") == "bad hook event" and hooks[-1] == "bad"
