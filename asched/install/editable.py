"""Is asched installed editable (``pip install -e``, as ``./dev`` sets up its venv)?

A unit installed from an editable install runs the checkout, not a release: it changes with
every ``git checkout`` or edit there, and breaks when the checkout moves or goes away. pip
records how a distribution was installed in ``direct_url.json`` (PEP 610); an editable install
says ``"dir_info": {"editable": true}`` and its ``url`` is the checkout.
"""

from __future__ import annotations

import json
import urllib.parse
from importlib import metadata

DIST_NAME = "asched"


def editable_source(dist: metadata.Distribution | None = None) -> str | None:
    """The checkout an editable install of asched runs from (a path, or the URL pip recorded),
    or None when it is not editable or not installed at all (then the interpreter check of
    install-service speaks). ``dist`` defaults to the installed asched; tests pass their own."""
    if dist is None:
        try:
            dist = metadata.distribution(DIST_NAME)
        except metadata.PackageNotFoundError:
            return None
    raw = dist.read_text("direct_url.json")
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None  # not pip's: nothing to say about it
    if not isinstance(info, dict):
        return None
    dir_info = info.get("dir_info")
    if not (isinstance(dir_info, dict) and dir_info.get("editable") is True):
        return None
    url = info.get("url")
    if not isinstance(url, str) or not url:
        return "an unknown directory"
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return urllib.parse.unquote(parsed.path)
    return url


def refusal(source: str) -> str:
    """The one-line error install-service gives for an editable install from ``source``."""
    return (
        f"asched is an editable install of {source} (pip install -e): the unit would run that"
        " checkout and change with it; install asched as a product (pipx install . or"
        " pip install . into a venv) and run install-service from there, or pass"
        " --allow-editable to install this one anyway"
    )
