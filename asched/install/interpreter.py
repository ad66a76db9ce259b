"""Which Python the installed unit runs: ``@PYTHON@`` in the shipped units.

``ExecStart=@PYTHON@ -P -m asched --daemon``: @PYTHON@ becomes the interpreter that runs this
very command, chosen so that the unit starts the same asched later, from any directory:

* In a virtual environment, ``sys.executable`` as given (``.venv/bin/python``). It is usually a
  symlink to the base interpreter, but the venv (its ``pyvenv.cfg`` and site-packages) is found
  only through the link's own path: resolving it would start a Python without asched.
* Otherwise the real binary: ``sys.executable`` with symlinks resolved.
* Never a wrapper script. A pyenv or asdf *shim* is a shell script that chooses an interpreter
  from the current directory and environment each time it runs; in a unit that choice would
  happen in systemd's environment (cwd ``/`` or ``$HOME``) and could pick a Python without
  asched. When the path is a script, the binary that actually runs this command
  (``/proc/self/exe``) is used instead if we are not in a venv, and the install is refused
  otherwise.
* ``-P`` keeps the working directory off ``sys.path``: the user unit starts in ``$HOME``, where a
  directory named ``asched`` must not shadow the package."""

from __future__ import annotations

import os
import sys

from asched.core.errors import AschedError


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def interpreter(
    executable: str | None = None,
    prefix: str | None = None,
    base_prefix: str | None = None,
    running: str = "/proc/self/exe",
) -> tuple[str, str | None]:
    """The interpreter for ExecStart, and a note when it is not ``sys.executable`` itself.

    The arguments default to this process's ``sys.executable``, ``sys.prefix`` and
    ``sys.base_prefix``; tests pass their own. See the module docstring for the rules.
    """
    exe = sys.executable if executable is None else executable
    prefix = sys.prefix if prefix is None else prefix
    base_prefix = sys.base_prefix if base_prefix is None else base_prefix
    if not exe or not os.path.isabs(exe):
        raise AschedError(
            f"cannot tell which Python runs asched (sys.executable is {exe!r});"
            " run install-service with an absolute interpreter path"
        )
    if not os.path.exists(exe):
        raise AschedError(f"the interpreter {exe} does not exist")
    in_venv = os.path.realpath(prefix) != os.path.realpath(base_prefix)
    if in_venv:
        # Keep the venv's own path: its site-packages are found only through it.
        if _is_elf(os.path.realpath(exe)):
            return exe, None
        raise AschedError(
            f"{exe} is a script (a pyenv or asdf shim?), not a Python binary; a unit must not"
            f" depend on one. Run install-service as {prefix}/bin/python -m asched"
            " install-service"
        )
    real = os.path.realpath(exe)
    if _is_elf(real):
        return real, (None if real == exe else f"{exe} resolves to {real}")
    binary = os.path.realpath(running) if os.path.exists(running) else ""
    if binary and _is_elf(binary):
        return binary, f"{exe} is a wrapper script (a pyenv or asdf shim?); using {binary}"
    raise AschedError(
        f"{exe} is a script, not a Python binary; run install-service with the"
        " real interpreter (pyenv which python)"
    )
