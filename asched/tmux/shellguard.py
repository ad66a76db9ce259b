"""The shell guard: is the program reading a pane's keyboard an interactive shell?

Text typed into a shell runs as a command (docs/OLD-SCHEDULER.md, failure 4: ``-bash: SCHEDULED:
command not found``), so the delivery engine never types into one. The answer comes from the pane's
process tree in /proc: the terminal's foreground process group, and the innermost members of it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import psutil

from asched.tmux.panes import PaneInfo

__all__ = [
    "DEFAULT_SHELLS",
    "WRAPPERS",
    "Foreground",
    "foreground_commands",
    "foreground_guard",
    "pane_runs_shell",
    "pane_starting",
]

# Interactive shells: text typed into one of these runs as a command (docs/OLD-SCHEDULER.md, failure
# 4). Broader than the five in the design: a false "shell" costs a visible, configurable refusal, a
# missed one costs a command executed in someone's shell.
DEFAULT_SHELLS: frozenset[str] = frozenset(
    {
        "bash", "sh", "dash", "zsh", "fish", "ksh", "mksh", "pdksh", "oksh", "yash", "posh",
        "ash", "rbash", "tcsh", "csh", "nu", "xonsh", "elvish", "pwsh",
    }
)  # fmt: skip

# Programs that run a command on a pty of their own (sudo with use_pty, the Debian default, and
# script) or as another user: the pane's tty then shows the wrapper in the foreground while the
# program that reads what we type is a shell behind it.
WRAPPERS: frozenset[str] = frozenset({"sudo", "su", "doas", "runuser", "script"})


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, tty_nr,
    tpgid, ...] (proc(5) fields 3 onwards)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read().decode("ascii", "replace")
    return data[data.rindex(")") + 2 :].split()


def _names(proc: psutil.Process) -> set[str]:
    """The names a process goes by: comm, and the basename of argv[0] without a login ``-``."""
    names = {proc.name()}
    with contextlib.suppress(psutil.Error, IndexError):
        argv0 = proc.cmdline()[0]
        names.add(os.path.basename(argv0.split(" ", 1)[0]).lstrip("-"))
    return {n.lstrip("-") for n in names if n}


# Kernels without CONFIG_PROC_CHILDREN lack /proc/PID/task/TID/children.
_HAS_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _subtree(root: psutil.Process) -> list[psutil.Process]:
    """Every descendant of ``root``, read from /proc/PID/task/TID/children.

    psutil's ``children(recursive=True)`` reads the stat file of every process on the machine to
    build a parent map: ~10 ms with a few hundred processes, paid per pane per delivery. The
    children files name just the subtree. psutil is the fallback where the kernel lacks them.
    """
    if not _HAS_CHILDREN_FILES:
        return list(root.children(recursive=True))
    out: list[psutil.Process] = []
    todo = [root.pid]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):  # the process or a thread ended meanwhile
            for task in os.listdir(f"/proc/{pid}/task"):
                with (
                    contextlib.suppress(OSError),
                    open(f"/proc/{pid}/task/{task}/children", "rb") as f,
                ):
                    for child in f.read().split():
                        todo.append(int(child))
                        with contextlib.suppress(psutil.Error):
                            out.append(psutil.Process(int(child)))
    return out


def _foreground(pid: int, depth: int = 0) -> list[psutil.Process]:
    """The innermost processes of the foreground job on ``pid``'s controlling terminal.

    The tty's foreground process group comes from ``tpgid`` in /proc/PID/stat: no tty has to be
    opened (as ``tcgetpgrp`` would need), and it is readable for any process the daemon can see.
    Of the pane's process tree, the members of that group are the foreground job; its leaves are
    what reads the keyboard (a non-interactive ``sh -c 'a; b'`` waits in the same group as ``b``).
    A wrapper (sudo, script) in the foreground is looked through to the pty it created.
    """
    tpgid = int(_stat(pid)[5])
    if tpgid <= 0:
        return []
    root = psutil.Process(pid)
    tree = [root, *_subtree(root)]
    members: list[psutil.Process] = []
    for p in tree:
        with contextlib.suppress(OSError):
            if os.getpgid(p.pid) == tpgid:
                members.append(p)
    parents = set()
    for p in members:
        with contextlib.suppress(psutil.Error):
            parents.add(p.ppid())
    leaves = [p for p in members if p.pid not in parents]
    # An interactive shell in the foreground group with a child beside it is still starting (its
    # rc files run `$(readlink ...)` and the like in its own group) and reads the keyboard next.
    # A child started from a shell prompt gets a group of its own, and a shell running a script
    # or `-c` (not interactive) hands the keyboard to its last command: neither is caught here.
    starting_shells = [p for p in members if p.pid in parents and _interactive_shell(p)]
    out: list[psutil.Process] = list(starting_shells)
    for p in leaves:
        inner: list[psutil.Process] = []
        if depth < 3 and _names(p) & WRAPPERS:
            inner = _behind_wrapper(p, depth)
        out.extend(inner or [p])
    return out


def _interactive_shell(proc: psutil.Process) -> bool:
    """A known shell that will prompt: ``-i``, or neither a ``-c`` command string nor a script.

    ``bash ./run-agent.sh`` (a script, no job control: the agent shares its group) and
    ``sh -c '...; agent'`` both hand the keyboard to the program they run, never to a prompt.
    """
    try:
        if not _names(proc) & DEFAULT_SHELLS:
            return False
        args = proc.cmdline()[1:]
    except psutil.Error:
        return False
    flags = [a for a in args if a.startswith("-") and not a.startswith("--") and a != "-"]
    if any("i" in a[1:] for a in flags):
        return True
    script = any(not a.startswith("-") for a in args)
    return not script and not any("c" in a[1:] for a in flags)


def _behind_wrapper(proc: psutil.Process, depth: int) -> list[psutil.Process]:
    """The foreground job of the first session leader below ``proc`` on another tty, if any."""
    tty = _stat(proc.pid)[4]
    for child in _subtree(proc):
        with contextlib.suppress(psutil.Error, OSError, ValueError, IndexError):
            fields = _stat(child.pid)
            if os.getsid(child.pid) == child.pid and fields[4] not in ("0", tty):
                return _foreground(child.pid, depth + 1)
    return []


def foreground_commands(info: PaneInfo) -> tuple[str, ...] | None:
    """Names of the programs in the pane's foreground job, or None when the process tree cannot
    be read (pane exited, /proc hidden). Blocking /proc reads: call it via ``asyncio.to_thread``
    when many panes are checked at once."""
    seen = _foreground_seen(info)
    return None if seen is None or not seen[0] else seen[0]


def _foreground_seen(
    info: PaneInfo, shells: frozenset[str] = DEFAULT_SHELLS
) -> tuple[tuple[str, ...], tuple[str, ...], bool, bool] | None:
    """(names, command lines, an interactive shell reads it, a launcher is still starting it)
    for the pane's foreground job, or None when unreadable."""
    if info.pane_pid <= 0:
        return None
    try:
        procs = _foreground(info.pane_pid)
        if not procs and psutil.pid_exists(info.pane_pid):
            # No foreground job on its terminal yet: the pane's first process has not taken
            # the tty (the first milliseconds of `sh -c CMD`). Not a shell yet; look again.
            return ((), (), False, True)
        names: set[str] = set()
        cmdlines: list[str] = []
        shell = launching = False
        for p in procs:
            mine = _names(p)
            names |= mine
            with contextlib.suppress(psutil.Error):
                cmdlines.append(" ".join(p.cmdline()))
            if mine & (shells | DEFAULT_SHELLS):
                if _command_pending(p):
                    launching = True
                elif mine & shells:
                    shell = True
    except (psutil.NoSuchProcess, ProcessLookupError, FileNotFoundError):
        # A process of the tree went away while it was read (a launcher exec'ing its program):
        # look again, unless the pane's own process is gone.
        return ((), (), False, True) if psutil.pid_exists(info.pane_pid) else None
    except (psutil.Error, OSError, ValueError, IndexError):
        return None
    if not names:
        return None
    return (tuple(sorted(names)), tuple(cmdlines), shell, launching and not shell)


def _command_pending(proc: psutil.Process) -> bool:
    """A shell that runs a ``-c`` command string or a script and has not started a program yet.

    tmux runs a pane's command as ``sh -c CMD``, and launchers are often scripts (a pyenv shim,
    ``run-agent.sh``): for a moment that shell is all the pane runs. It reads commands from its
    string or file, never from the keyboard, and what it starts next reads the keyboard: not a
    shell to refuse, but not the program either. Look again in a moment.
    """
    if not _names(proc) & DEFAULT_SHELLS:
        return False
    if not proc.cmdline():
        return True  # caught in the middle of its exec: what it becomes is not known yet
    return not _interactive_shell(proc)


def pane_runs_shell(info: PaneInfo, shells: frozenset[str] = DEFAULT_SHELLS) -> bool:
    """True when text typed into the pane would reach an interactive shell.

    Decided by the pane's process tree (see :func:`_foreground`): a shell waiting at its prompt
    is alone in the foreground group; a program started from it (python, claude, sleep) is in a
    group of its own and is what reads the keyboard. When the tree cannot be read, the decision
    falls back to ``#{pane_current_command}`` (the foreground group leader's argv[0]).

    Where the two disagree the tree wins: ``sh -c 'cd x && agent'`` (dash does not exec the last
    command) shows ``dash`` as the current command while ``agent`` reads the keyboard; and
    ``sudo -s`` shows ``sudo`` while a root shell reads it.

    Not detectable: a foreground program that does not read its tty (``sleep 100``) leaves what
    is typed for the shell to read after it exits.
    """
    return foreground_guard(info, shells).shell


@dataclass(frozen=True, slots=True)
class Foreground:
    """One look at what reads a pane's keyboard."""

    shell: bool  # an interactive shell: nothing may be typed
    names: tuple[str, ...]  # process names (comm and argv[0]), sorted
    cmdlines: tuple[str, ...] = ()  # their command lines (to tell node programs apart)
    pending: bool = False  # only a `sh -c CMD` that has not started CMD yet

    @property
    def starting(self) -> bool:
        """tmux's own fork that has not exec'd the pane's command yet (see pane_starting), or
        the ``sh -c`` it became, before that runs its command: look again in a moment."""
        return self.pending or pane_starting(self.names)


def foreground_guard(info: PaneInfo, shells: frozenset[str] = DEFAULT_SHELLS) -> Foreground:
    """:func:`pane_runs_shell` and the programs it saw, from one look at /proc (the delivery
    engine picks the agent profile and settle delay by program)."""
    seen = _foreground_seen(info, shells)
    if seen is None:
        name = os.path.basename(info.current_command).lstrip("-")
        return Foreground(name in shells, (name,))
    names, cmdlines, shell, pending = seen
    return Foreground(shell, names, cmdlines, pending)


def pane_starting(names: tuple[str, ...]) -> bool:
    """True when the pane's program is still tmux's own fork that has not exec'd the command.

    For a few milliseconds after ``new-session``/``split-window`` (longer on a loaded machine),
    the pane's process is a copy of the tmux server ("tmux: server"). Whatever it becomes, maybe
    a shell, reads what is typed then: nothing may be typed until it has become it.
    """
    # The server's title (a nested tmux *client* in a pane is "tmux: client", and stays one).
    return "tmux: server" in names
