"""install-service and an editable install (issue 17): detected from pip's direct_url.json
(PEP 610), refused unless --allow-editable, shown as a note by --dry-run.

The distributions here are real ones on disk (a dist-info directory), read by importlib.metadata;
for the command, one is put ahead of the installed asched on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from asched import __version__
from asched.install.editable import editable_source, refusal


def fake_dist(where: Path, direct_url: object | None) -> Path:
    """An ``asched`` dist-info in ``where``, with ``direct_url`` as its direct_url.json (a str is
    written as is); returns its directory."""
    info = where / f"asched-{__version__}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: asched\nVersion: {__version__}\n")
    if direct_url is not None:
        text = direct_url if isinstance(direct_url, str) else json.dumps(direct_url)
        (info / "direct_url.json").write_text(text)
    return info


def source_of(tmp_path: Path, direct_url: object | None) -> str | None:
    return editable_source(metadata.PathDistribution(fake_dist(tmp_path, direct_url)))


def test_an_editable_install_names_its_checkout(tmp_path: Path) -> None:
    url = {"url": "file:///home/me/my%20src/asched", "dir_info": {"editable": True}}
    assert source_of(tmp_path, url) == "/home/me/my src/asched"


@pytest.mark.parametrize(
    "direct_url",
    [
        None,  # installed from an index: pip writes no direct_url.json
        {"url": "file:///home/me/asched", "dir_info": {}},  # pip install . (not -e)
        {"url": "file:///tmp/asched-0.1.0-py3-none-any.whl", "archive_info": {}},
        {"url": "https://example.invalid/asched.git", "vcs_info": {"vcs": "git"}},
        {"url": "file:///x", "dir_info": {"editable": "yes"}},  # not PEP 610's true
        "{not json",
        "[]",
    ],
)
def test_anything_else_is_not_editable(tmp_path: Path, direct_url: object | None) -> None:
    assert source_of(tmp_path, direct_url) is None


def test_an_editable_install_elsewhere_is_named_by_its_url(tmp_path: Path) -> None:
    remote = {"url": "file://host/x", "dir_info": {"editable": True}}
    assert source_of(tmp_path / "a", remote) == "file://host/x"
    no_url = {"dir_info": {"editable": True}}
    assert source_of(tmp_path / "b", no_url) == "an unknown directory"


def test_the_refusal_is_one_line_that_says_why_and_how() -> None:
    text = refusal("/src/asched")
    assert "\n" not in text
    assert "/src/asched" in text and "pip install -e" in text
    assert "pipx install ." in text and "--allow-editable" in text


def install_service(site: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m asched install-service --user ARGS`` with ``site`` ahead on sys.path (so that
    importlib.metadata finds its asched first) and no systemctl on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASCHED_", "XDG_"))}
    env.update(PYTHONPATH=str(site), PATH=str(home), HOME=str(home), XDG_CONFIG_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "asched", "install-service", "--user", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=home,
        check=False,
    )


def test_install_service_refuses_an_editable_install_unless_asked(tmp_path: Path) -> None:
    site, home = tmp_path / "site", tmp_path / "home"
    home.mkdir()
    fake_dist(site, {"url": "file:///src/checkout", "dir_info": {"editable": True}})
    r = install_service(site, home)
    assert r.returncode == 1, r.stdout
    assert r.stderr.splitlines() == [f"asched: {refusal('/src/checkout')}"]
    assert list(home.iterdir()) == []
    # --allow-editable goes on to the next check (there is no systemctl here).
    r = install_service(site, home, "--allow-editable")
    assert r.returncode == 1 and "systemctl not found" in r.stderr, r.stderr
    # A dry run shows the unit, and the refusal as a note.
    r = install_service(site, home, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "# note: without --allow-editable this is refused: asched is an editable" in r.stdout
    assert "ExecStart=" in r.stdout and list(home.iterdir()) == []


def test_install_service_from_a_product_install_is_not_refused(tmp_path: Path) -> None:
    site, home = tmp_path / "site", tmp_path / "home"
    home.mkdir()
    fake_dist(site, {"url": "file:///tmp/asched.whl", "archive_info": {}})
    r = install_service(site, home)
    assert r.returncode == 1 and "systemctl not found" in r.stderr, r.stderr
    r = install_service(site, home, "--dry-run")
    assert r.returncode == 0 and "editable" not in r.stdout
