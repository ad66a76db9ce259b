"""The one thing pyproject.toml cannot say: generate the man page while the wheel is built.

argparse-manpage's setuptools integration is a pair of command classes (its [tool.build_manpages]
table only names the page); build_py writes build/man/asched.1 from asched.cli.parser's
build_parser, and install (which bdist_wheel runs) puts it in the wheel's data as
share/man/man1/asched.1. Everything else is in pyproject.toml.
"""

import sys
from pathlib import Path

from build_manpages import build_manpages, get_build_py_cmd, get_install_cmd
from setuptools import setup

# build_manpages imports asched.cli.parser from this source tree; the PEP 517 backend does not put
# the project directory on sys.path (the parser imports only the standard library and asched).
sys.path.insert(0, str(Path(__file__).resolve().parent))

setup(
    cmdclass={
        "build_manpages": build_manpages,
        "build_py": get_build_py_cmd(),
        "install": get_install_cmd(),
    }
)
