"""asched as a product (issue 17): LICENSE, metadata, CHANGELOG, one version, the completion
scripts, and a wheel built from a copy of the source with its man page.

The wheel is built and installed as tests/support/wheel.py does it: offline, in about a second,
into a fresh venv that borrows this environment's site-packages for the dependencies.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from asched import __version__
from asched.cli.completion import SHELLS
from asched.cli.parser import build_parser
from tests.support.daemons import PYTHON
from tests.support.wheel import PROJECT, build_wheel, clean_env, install_wheel


def run_asched(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "asched", *args], capture_output=True, text=True, timeout=60, check=False
    )


def subcommands() -> list[str]:
    """Every command of the parser, and the commands of the families (``mcp install``)."""
    names: list[str] = []

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    names.append(f"{prefix}{name}")
                    walk(child, f"{prefix}{name} ")

    walk(build_parser(), "")
    return names


# -- the files and the metadata -------------------------------------------------------------------


def test_license_is_mit() -> None:
    text = (PROJECT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert re.search(r"Copyright \(c\) 20\d\d asched maintainers", text)
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_installed_metadata() -> None:
    meta = metadata.metadata("asched")
    assert meta["License-Expression"] == "MIT"
    assert meta["Author"] == "asched maintainers"
    assert meta["Version"] == __version__
    classifiers = meta.get_all("Classifier") or []
    for expected in (
        "Programming Language :: Python :: 3.11",
        "Operating System :: POSIX :: Linux",
    ):
        assert expected in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: the expression
    assert "LICENSE" in (meta.get_all("License-File") or [])


def test_the_version_is_written_once() -> None:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "asched.__version__"}
    r = run_asched("--version")
    assert (r.returncode, r.stdout) == (0, f"asched {__version__}\n")


def test_changelog_has_the_current_version() -> None:
    text = (PROJECT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"\n## [{__version__}]" in text
    assert "Keep a Changelog" in text


def test_version_loads_neither_shtab_nor_importlib_metadata() -> None:
    r = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "asched", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()}
    assert "shtab" not in imported and "importlib.metadata" not in imported


# -- completion scripts ---------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_scripts_name_every_command(shell: str) -> None:
    r = run_asched("completion", shell)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for name in subcommands():
        assert name.split()[-1] in r.stdout, name
    marker = {"bash": "complete -o bashdefault -F _shtab_asched asched", "zsh": "#compdef asched"}
    assert marker.get(shell, "complete -c asched") in r.stdout


def test_an_unknown_shell_is_a_usage_error() -> None:
    r = run_asched("completion", "tcsh")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "asched completion: error: argument SHELL: invalid choice: 'tcsh' (choose from 'bash',"
        " 'zsh', 'fish') (see asched completion --help)"
    ]


def test_bash_completes_commands_shells_and_paths(tmp_path: Path) -> None:
    """The bash script in a real bash: what Tab offers after some words."""
    script = tmp_path / "asched.bash"
    script.write_text(run_asched("completion", "bash").stdout)
    (tmp_path / "somedir").mkdir()
    probe = (
        f'source "{script}"\n'
        'offer() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _shtab_asched;'
        ' echo "${COMPREPLY[*]}"; }\n'
        "offer asched comp\n"
        'offer asched completion ""\n'
        "offer asched ls --state-dir some\n"
    )
    r = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", probe],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["completion", "bash zsh fish", "somedir"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_the_zsh_script_parses() -> None:
    script = run_asched("completion", "zsh").stdout
    r = subprocess.run(["zsh", "-n"], input=script, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


# -- the wheel ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources."""
    return build_wheel(PYTHON, tmp_path_factory.mktemp("build"))


def test_the_wheel_holds_the_man_page_license_and_metadata(wheel: Path) -> None:
    assert wheel.name == f"asched-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        man = zf.read(f"asched-{__version__}.data/data/share/man/man1/asched.1").decode()
        license_text = zf.read(f"asched-{__version__}.dist-info/licenses/LICENSE").decode()
        meta = zf.read(f"asched-{__version__}.dist-info/METADATA").decode()
        units = [n for n in zf.namelist() if n.startswith("asched/install/units/")]
    assert man.startswith('.TH ASCHED "1"') and f"asched {__version__}" in man.splitlines()[0]
    for name in subcommands():
        assert f"asched {name}".replace("-", r"\-") in man, name
    assert license_text == (PROJECT / "LICENSE").read_text(encoding="utf-8")
    assert "License-Expression: MIT\n" in meta and f"Version: {__version__}\n" in meta
    assert sorted(units) == [
        "asched/install/units/asched.service",
        "asched/install/units/asched@.service",
    ]


def test_the_wheel_installed_in_a_new_venv(wheel: Path, tmp_path: Path) -> None:
    """asched --version, completion bash and the man page where man looks (PATH's ../share/man)."""
    venv = tmp_path / "venv"
    python = install_wheel(PYTHON, wheel, venv)
    env = clean_env(venv)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        # cwd: not this checkout, whose asched `python -c` would import.
        return subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False
        )

    r = run("asched", "--version")
    assert (r.returncode, r.stdout) == (0, f"asched {__version__}\n"), r.stderr
    r = run("asched", "completion", "bash")
    assert r.returncode == 0 and "_shtab_asched" in r.stdout, r.stderr
    r = run(python, "-c", "import asched; print(asched.__file__)")
    assert r.stdout.startswith(str(venv)), "runs this checkout's asched, not the wheel's"
    page = venv / "share" / "man" / "man1" / "asched.1"
    assert page.is_file()
    if shutil.which("man"):
        r = run("man", "-w", "asched")
        assert r.stdout.strip() == str(page), r.stderr
