"""The systemd units asched ships, and how ``install-service`` renders them.

The unit files are package data, ``asched/install/units/`` (``deploy/systemd/`` links to them):
``asched.service``, the user unit, and ``asched@.service``, the system template. Their
``ExecStart=@PYTHON@ ...`` line names no interpreter; :func:`render` puts in the one chosen by
:func:`asched.install.interpreter.interpreter` and heads the text with :data:`MARKER`, by which
install and uninstall recognise a unit they wrote.
"""

from __future__ import annotations

from importlib import resources

from asched.core.errors import AschedError

PLACEHOLDER = "@PYTHON@"
MARKER = "# Rendered by `asched install-service`"
UNIT_NAMES = ("asched.service", "asched@.service")


def _unit_text(name: str) -> str:
    """The shipped unit file ``name``, read from the package (a wheel carries it too)."""
    return resources.files(__package__).joinpath("units", name).read_text(encoding="utf-8")


UNIT_TEXTS = {name: _unit_text(name) for name in UNIT_NAMES}


def exec_quote(path: str) -> str:
    """``path`` as the executable (first word) of a unit's ExecStart= line.

    systemd expands ``%`` specifiers there and splits on whitespace (``$`` variables are expanded
    in the arguments only), so ``%`` is doubled and a path with whitespace quoted. It refuses an
    executable name with quotes, backslashes or control characters outright ("contains special
    characters"): such a path is an error here rather than a unit that cannot start.
    """
    if not path or any(ord(c) < 32 or ord(c) == 127 or c in "\"'\\" for c in path):
        raise AschedError(
            f"systemd cannot start an interpreter at {path!r} (quotes, backslashes and control"
            " characters are refused in an executable path): install asched elsewhere"
        )
    word = path.replace("%", "%%")
    return f'"{word}"' if any(c.isspace() for c in path) else word


def render(unit_name: str, python: str) -> str:
    """The unit ``unit_name`` with ``@PYTHON@`` replaced, headed by the install marker."""
    text = UNIT_TEXTS[unit_name]
    line = f"ExecStart={PLACEHOLDER} "
    if text.count(line) != 1:
        raise AssertionError(f"{unit_name}: expected one {line!r}")
    body = text.replace(line, f"ExecStart={exec_quote(python)} ")
    header = (
        f"{MARKER} from deploy/systemd/{unit_name} for {python}.\n"
        "# Changes here are replaced by the next install: put them in a drop-in\n"
        f"# (systemctl{' --user' if unit_name == 'asched.service' else ''} edit ...).\n"
    )
    return header + body
