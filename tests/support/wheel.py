"""asched as a user installs it: a wheel built from a copy of the sources, in a venv of its own.

Built without build isolation (``python -m build --no-isolation``: setuptools and
argparse-manpage come from this environment, the test extras), offline and in about a second.
Installed without dependencies into a fresh venv that borrows this environment's site-packages
for them (a ``.pth`` file), so that nothing is downloaded; the checkout's editable finder is not
read from there (a directory a ``.pth`` adds is not searched for ``.pth`` files).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
# What a source distribution holds: enough to build the wheel.
SOURCES = ("asched", "pyproject.toml", "setup.py", "README.md", "LICENSE")


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    r = subprocess.run(
        argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=180, check=False
    )
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed: {(r.stdout + r.stderr)[-2000:]}")
    return r.stdout


def build_wheel(python: str, work: Path) -> Path:
    """The wheel of this checkout, built in ``work`` (the build writes build/ and *.egg-info
    next to the sources, so it builds a copy of them); returns its path."""
    src, out = work / "src", work / "dist"
    for name in SOURCES:
        if (PROJECT / name).is_dir():
            shutil.copytree(
                PROJECT / name, src / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / name, src / name)
    _run([python, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)], work)
    (built,) = out.glob("asched-*.whl")
    return built


def clean_env(venv: Path) -> dict[str, str]:
    """An environment whose PATH starts at ``venv``'s bin, with no PYTHONPATH or MANPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MANPATH")}
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    return env


def install_wheel(python: str, wheel: Path, venv: Path) -> str:
    """A new venv at ``venv`` with ``wheel`` installed and this environment's packages for its
    dependencies; returns the venv's interpreter."""
    env, cwd = clean_env(venv), venv.parent  # cwd: not this checkout, which `-c` would import
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd, env)
    vpython = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "--python", vpython, "--disable-pip-version-check"]
    _run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd, env)
    site = _run([vpython, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd)
    Path(site.strip(), "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return vpython
