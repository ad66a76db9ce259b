"""The unit files and install-service's rendering, on the host (no container, no root needed)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from asched.core.errors import AschedError
from asched.install.interpreter import interpreter
from asched.install.units import UNIT_TEXTS, exec_quote, render
from tests.systemd.conftest import require_analyze

PROJECT = Path(__file__).resolve().parents[2]
DEPLOY = PROJECT / "deploy" / "systemd"


def verify(tmp: Path, unit_file: Path, user: bool = False) -> str:
    """``systemd-analyze [--user] verify``: everything it prints (it exits 0 on warnings)."""
    runtime = tmp / "xdg-runtime"  # a user-scope verify needs a runtime directory
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    argv = [require_analyze(), *(["--user"] if user else []), "verify", str(unit_file)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    return (r.stdout + r.stderr).strip()


@pytest.mark.parametrize("name", sorted(UNIT_TEXTS))
def test_shipped_unit_files_are_what_install_service_renders(name: str) -> None:
    assert (DEPLOY / name).read_text() == UNIT_TEXTS[name]


def test_systemd_analyze_verify_prints_nothing_for_the_rendered_units(tmp_path: Path) -> None:
    python, _ = interpreter()
    me = pwd.getpwuid(os.geteuid()).pw_name
    template = render("asched@.service", python)
    files = {
        "asched@.service": (template, False),
        f"asched@{me}.service": (template, False),  # an instance: User= and %i filled in
        "asched.service": (render("asched.service", python), True),
    }
    for name, (text, user) in files.items():
        path = tmp_path / name
        path.write_text(text)
        assert verify(tmp_path, path, user) == "", name


def test_systemd_analyze_verify_does_complain_about_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: a typo and a missing interpreter are reported."""
    text = render("asched@.service", "/nonexistent/python").replace("Type=notify", "Type=notifyy")
    me = pwd.getpwuid(os.geteuid()).pw_name
    path = tmp_path / f"asched@{me}.service"
    path.write_text(text)
    out = verify(tmp_path, path)
    assert "notifyy" in out
    assert "/nonexistent/python" in out


def test_odd_interpreter_paths_are_quoted_for_exec_start(tmp_path: Path) -> None:
    odd = tmp_path / "a dir with 100% $HOME" / "py"
    odd.parent.mkdir()
    odd.symlink_to(os.path.realpath(sys.executable))
    assert exec_quote(str(odd)).startswith('"')
    path = tmp_path / "asched.service"
    path.write_text(render("asched.service", str(odd)))
    assert verify(tmp_path, path, user=True) == ""
    for bad in ("/usr/bin/py\nthon", '/opt/"q"/python', "/opt/back\\slash/python"):
        with pytest.raises(AschedError, match="systemd cannot start"):
            exec_quote(bad)


def _elf_python() -> str:
    return os.path.realpath(sys.executable)


def test_interpreter_keeps_a_venvs_own_path(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    link = venv / "bin" / "python"
    link.symlink_to(_elf_python())
    chosen, note = interpreter(str(link), str(venv), "/usr")
    assert (chosen, note) == (str(link), None)  # resolving the link would lose the venv


def test_interpreter_resolves_links_outside_a_venv(tmp_path: Path) -> None:
    link = tmp_path / "python3"
    link.symlink_to(_elf_python())
    chosen, note = interpreter(str(link), "/usr", "/usr")
    assert chosen == _elf_python()
    assert note is not None and "resolves to" in note


def test_interpreter_never_puts_a_shim_into_the_unit(tmp_path: Path) -> None:
    shim = tmp_path / "shims" / "python"
    shim.parent.mkdir()
    shim.write_text('#!/usr/bin/env bash\nexec pyenv exec python "$@"\n')
    shim.chmod(0o755)
    # Outside a venv: the binary that really runs this command is used instead.
    chosen, note = interpreter(str(shim), "/usr", "/usr", running=_elf_python())
    assert chosen == _elf_python() and note is not None and "shim" in note
    # In a venv the venv's path cannot be recovered from the binary: refused.
    with pytest.raises(AschedError, match="shim"):
        interpreter(str(shim), str(tmp_path), "/usr")
    with pytest.raises(AschedError):
        interpreter("python3", "/usr", "/usr")  # not absolute


# This venv is editable (./dev's), which install-service refuses before it looks at the machine;
# these tests are about what comes after.
EDITABLE = {"install-service": ("--allow-editable",)}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asched", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
        env={**os.environ, **(env or {})},
    )


def test_dry_run_prints_the_unit_and_the_commands_and_changes_nothing(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    r = run_cli("install-service", "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    assert f"ExecStart={exec_quote(interpreter()[0])} -P -m asched" in r.stdout
    assert "systemctl --user enable asched.service" in r.stdout
    assert f"{tmp_path}/config/systemd/user/asched.service" in r.stdout
    assert list(tmp_path.iterdir()) == []
    me = pwd.getpwuid(os.geteuid()).pw_name
    r = run_cli("install-service", "--system", me, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert f"systemctl start asched@{me}.service" in r.stdout and "User=%i" in r.stdout
    r = run_cli("uninstall-service", "--system", me, "--dry-run")
    assert r.returncode == 0 and f"systemctl disable --now asched@{me}.service" in r.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["install-service", "--user", "--system", "root"], 2, "not allowed with"),
        (["install-service", "--system", "no-such-user-x"], 2, "asched: no such user"),
        (["install-service", "--system", "bad/name"], 2, "cannot be a systemd instance name"),
        (["uninstall-service", "--system", "no-such-user-x"], 2, "asched: no such user"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(args: list[str], code: int, message: str) -> None:
    r = run_cli(*args)
    assert r.returncode == code
    assert message in r.stderr and "Traceback" not in r.stderr


def test_a_missing_systemctl_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    for verb in ("install-service", "uninstall-service"):
        r = run_cli(verb, "--user", *EDITABLE.get(verb, ()), env=env)
        assert r.returncode == 1
        assert r.stderr.strip() == (
            "asched: systemctl not found: install-service needs systemd (is this a systemd host?)"
        )
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_user_manager_is_one_line_exit_1_and_nothing_written(
    tmp_path: Path,
) -> None:
    """`systemctl --user` answering "offline" (no user manager: not logged in, or PID 1 is not
    systemd): refused before anything is written."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "print('offline')\n"
        "print('Failed to connect to bus: No medium found', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    fake.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    for verb in ("install-service", "uninstall-service"):
        r = run_cli(verb, "--user", *EDITABLE.get(verb, ()), env=env)
        assert r.returncode == 1, r.stdout
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot talk to your systemd user manager" in lines[0]
    assert list(home.iterdir()) == []
