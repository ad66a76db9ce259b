"""`asched send` types with the daemon's config file: --config, $ASCHED_CONFIG, the default path."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.tmux import Server

pytestmark = pytest.mark.usefixtures("wakes")


def _wait_text(path: Path, want: str) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (not path.exists() or path.read_text() != want):
        time.sleep(0.02)
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("how", ["--config", "ASCHED_CONFIG", "XDG_CONFIG_HOME"])
def test_send_uses_the_config_files_prefix(
    run: Any, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    out = server.root / "out"
    server.new_session("w", f"cat > {out}")
    cfg = tmp_path / "asched" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text('[delivery]\nprefix = "SCHEDULED CHECK-IN: "\nsettle_s = 0.1\n')
    argv = ["send", "--tmux-socket", server.sock, "w:0", "status?"]
    monkeypatch.delenv("ASCHED_CONFIG", raising=False)
    if how == "--config":
        argv[1:1] = ["--config", str(cfg)]
    elif how == "ASCHED_CONFIG":
        monkeypatch.setenv("ASCHED_CONFIG", str(cfg))
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    ran = run(*argv)
    assert ran.code == 0, ran
    assert _wait_text(out, "SCHEDULED CHECK-IN: status?\n") == "SCHEDULED CHECK-IN: status?\n"


def test_send_refuses_a_bad_config_before_typing(run: Any, server: Server, tmp_path: Path) -> None:
    out = server.root / "out"
    server.new_session("w", f"cat > {out}")
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[delivery]\nsettle_s = -1\n")
    ran = run("send", "--config", str(cfg), "--tmux-socket", server.sock, "w:0", "status?")
    assert ran.code == 2 and "settle_s must be a number" in ran.err, ran
    assert str(cfg) in ran.err
    time.sleep(0.3)
    assert out.read_text() == ""
