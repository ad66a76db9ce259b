"""A real systemd (PID 1, journald) in a throw-away systemd-nspawn container, for the tests and
the benchmarks.

The host's PID 1 need not be systemd. The box's root is an overlay: the host's ``/`` as the
read-only lower layer and a tmpfs as the upper one, mounted in a private mount namespace that also
has a tmpfs on ``/run``; so the box has the host's Python, venvs and tools, and every write
vanishes when the box goes down. The project, its venv and the base interpreter are bound in
read-only. The whole box lives in cgroups of its own (``/sys/fs/cgroup[/systemd|/unified]/NAME``).

The spawn chain (each step replaces the previous process, so nspawn keeps the pid we started)::

    python nspawn.py _stage1 ...   # moves itself into the box's cgroups
    unshare --mount --propagation private -- python nspawn.py _stage2 ...
                                   # tmpfs /run, overlay root, then exec:
    systemd-nspawn -D ROOT --register=no --keep-unit --private-network --link-journal=no
                   --console=read-only ... -b

Commands run inside with ``nsenter -t <box PID 1> -m -u -i -n -p -C``. :meth:`Box.down` always
finishes: SIGTERM to nspawn (a clean halt), then SIGKILL by pid, then every leftover pid in the
box's cgroups by pid, then the cgroups are removed. A box whose creator died (a SIGKILLed test
run) is torn down by the next run, or by ``python -m tests.support.nspawn cleanup``.

This file uses the standard library only: it is also the stage script.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

PREFIX = "asched-box"
CGROUP_ROOT = Path("/sys/fs/cgroup")
INSTALL_HINT = "apt-get install -y --no-install-recommends systemd-container"
BOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Enabled in some host images and of no use in a box: never started there.
MASKED = (
    "postgresql.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "man-db.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "dpkg-db-backup.timer",
)


def prerequisites() -> str | None:
    """Why a box cannot be booted here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn, mounts, cgroups)"
    for tool, package in (
        ("systemd-nspawn", f"systemd-container ({INSTALL_HINT})"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("setpriv", "util-linux"),
        ("tmux", "tmux"),
    ):
        if shutil.which(tool) is None:
            return f"{tool} is missing: install {package}"
    if not Path("/usr/lib/systemd/systemd").exists() and not Path("/lib/systemd/systemd").exists():
        return "no systemd binary in this OS tree to boot (apt-get install systemd)"
    if not cgroup_dirs("probe"):
        return "no usable cgroup hierarchy under /sys/fs/cgroup"
    if not os.access(CGROUP_ROOT, os.W_OK) and not os.access(CGROUP_ROOT / "systemd", os.W_OK):
        return "/sys/fs/cgroup is not writable"
    return None


def _fstype(path: Path) -> str:
    try:
        out = subprocess.run(
            ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def cgroup_dirs(name: str) -> list[Path]:
    """The cgroup directories the box lives in: the unified hierarchy, or on a hybrid host the
    name=systemd v1 tree plus the cgroup2 mounted at /sys/fs/cgroup/unified."""
    if _fstype(CGROUP_ROOT) == "cgroup2fs":
        return [CGROUP_ROOT / name]
    dirs = []
    if (CGROUP_ROOT / "systemd").is_dir():
        dirs.append(CGROUP_ROOT / "systemd" / name)
    if _fstype(CGROUP_ROOT / "unified") == "cgroup2fs":
        dirs.append(CGROUP_ROOT / "unified" / name)
    return dirs


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2 :][:1] != b"Z"


def _cgroup_pids(dirs: Iterable[Path]) -> set[int]:
    pids: set[int] = set()
    for top in dirs:
        if not top.is_dir():
            continue
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(x) for x in procs.read_text().split())
    return pids


def _remove_cgroups(dirs: Iterable[Path]) -> list[str]:
    """Kill leftover pids (by pid) and remove the cgroup trees; returns what could not go."""
    problems: list[str] = []
    dirs = list(dirs)
    for _ in range(20):
        pids = _cgroup_pids(dirs)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for top in dirs:
        if not top.is_dir():
            continue
        subdirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*subdirs, top]:
            for _ in range(20):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                problems.append(str(d))
    return problems


class BoxError(RuntimeError):
    """The box could not be booted or used."""


class Box:
    """One container; use as a context manager or call :meth:`up` and :meth:`down`."""

    def __init__(
        self,
        binds_ro: Sequence[str] = (),
        log_dir: Path | None = None,
        boot_timeout_s: float = 60.0,
    ) -> None:
        # The creator's pid in the name: a later run can tell an orphaned box from a live one.
        self.name = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(3)}"
        self.binds_ro = list(binds_ro)
        self.boot_timeout_s = boot_timeout_s
        self.cgroups = cgroup_dirs(self.name)
        self.log_path = (log_dir or Path("/tmp")) / f"{self.name}.console.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None
        self.boot_s: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Box:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        """Boot and wait until ``systemctl is-system-running`` says running (or degraded)."""
        t0 = time.monotonic()
        for d in self.cgroups:
            d.mkdir(parents=True, exist_ok=True)
        nspawn_args = [
            "--quiet",
            "-M",
            self.name,
            "--register=no",
            "--keep-unit",
            "--private-network",
            "--link-journal=no",
            "--console=read-only",
            "--setenv=SYSTEMD_COLORS=0",
            *(f"--bind-ro={p}" for p in self.binds_ro),
            "-b",
            *(f"systemd.mask={u}" for u in MASKED),
        ]
        argv = [
            sys.executable,
            "-I",
            "-S",
            __file__,
            "_stage1",
            self.name,
            *map(str, self.cgroups),
            "--",
            *nspawn_args,
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_booted(t0 + self.boot_timeout_s)
        except BaseException:
            self.down()
            raise
        self.boot_s = time.monotonic() - t0

    def _wait_booted(self, deadline: float) -> None:
        assert self.proc is not None
        while self.leader is None:
            if self.proc.poll() is not None:
                raise BoxError(f"systemd-nspawn exited ({self.proc.returncode}): {self.console()}")
            self.leader = self._find_leader(self.proc.pid)
            if self.leader is None:
                if time.monotonic() > deadline:
                    raise BoxError(f"the container did not start: {self.console()}")
                time.sleep(0.02)
        state = ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise BoxError(f"boot did not finish (state {state!r}): {self.console()}")
            try:
                r = self.run(
                    ["systemctl", "is-system-running", "--wait"],
                    check=False,
                    timeout=min(left, 30.0),
                )
                state = r.stdout.strip()
            except subprocess.TimeoutExpired:
                state = "timeout"
            if state in ("running", "degraded"):
                return
            time.sleep(0.05)

    @staticmethod
    def _find_leader(nspawn_pid: int) -> int | None:
        """The container's PID 1: the child of nspawn that lives in another pid namespace."""
        try:
            mine = os.readlink(f"/proc/{nspawn_pid}/ns/pid")
        except OSError:
            return None
        for task in Path(f"/proc/{nspawn_pid}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                for child in (task / "children").read_text().split():
                    if os.readlink(f"/proc/{child}/ns/pid") != mine:
                        return int(child)
        return None

    def console(self, lines: int = 30) -> str:
        """The tail of the container's console output (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])

    def down(self, timeout_s: float = 15.0) -> list[str]:
        """Halt the box, whatever state it is in; returns what could not be cleaned up."""
        problems: list[str] = []
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            # nspawn turns SIGTERM into SIGRTMIN+3 for the box's systemd: a clean halt.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                if self.leader is not None:  # SIGKILL of PID 1 ends the whole pid namespace
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.leader, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    problems.append(f"systemd-nspawn pid {proc.pid} survived SIGKILL")
        self.leader = None
        problems += _remove_cgroups(self.cgroups)
        with contextlib.suppress(OSError):
            self.log_path.unlink()
        return problems

    # -- running things inside ---------------------------------------------------------------

    def argv(
        self, argv: Sequence[str], user: str | None = None, env: Mapping[str, str] | None = None
    ) -> list[str]:
        """The host argv that runs ``argv`` inside the box, in ``/`` with a clean environment, as
        root or as ``user`` (whose primary group must have the user's name: useradd -U)."""
        if self.leader is None:
            raise BoxError("the box is not running")
        home = "/root" if user is None else f"/home/{user}"
        base = {
            "PATH": BOX_PATH,
            "HOME": home,
            "LANG": "C.UTF-8",
            "SYSTEMD_PAGER": "cat",
            "SYSTEMD_COLORS": "0",
            "TERM": "dumb",
            **(env or {}),
        }
        if user is not None:
            base.setdefault("USER", user)
            base.setdefault("LOGNAME", user)
        enter = ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-C", "--wd=/"]
        envv = ["env", "-i", *(f"{k}={v}" for k, v in base.items())]
        who = (
            []
            if user is None
            else ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        )
        return [*enter, "--", *envv, *who, *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside and wait (bounded); ``check`` raises on a non-zero exit."""
        r = subprocess.run(
            self.argv(argv, user, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            check=False,
        )
        if check and r.returncode != 0:
            raise BoxError(
                f"{' '.join(argv)} exited {r.returncode}: {r.stderr.strip() or r.stdout.strip()}"
            )
        return r

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        """Create or replace ``path`` inside the box."""
        self.run(["mkdir", "-p", os.path.dirname(path)])
        self.run(["tee", path], input=text)
        self.run(["chmod", mode, path])


# ---------------------------------------------------------------------------------------------
# Orphans: boxes whose creator is gone


def orphaned_boxes() -> list[str]:
    """Names of boxes whose creating process no longer exists."""
    names: set[str] = set()
    for top in (CGROUP_ROOT, CGROUP_ROOT / "systemd", CGROUP_ROOT / "unified"):
        for d in top.glob(f"{PREFIX}-*"):
            names.add(d.name)
    orphans = []
    for name in sorted(names):
        parts = name[len(PREFIX) + 1 :].split("-")
        if not parts[0].isdigit() or int(parts[0]) == os.getpid():
            continue
        if not Path(f"/proc/{parts[0]}").exists():
            orphans.append(name)
    return orphans


def teardown_orphan(name: str, timeout_s: float = 10.0) -> list[str]:
    """Halt and remove a box found only by its cgroups (by pid, never by name matching)."""
    dirs = cgroup_dirs(name)
    nspawn = None
    for d in dirs:
        with contextlib.suppress(OSError, ValueError, IndexError):
            nspawn = int((d / "supervisor" / "cgroup.procs").read_text().split()[0])
            break
    if nspawn is not None and _alive(nspawn):
        with contextlib.suppress(ProcessLookupError):
            os.kill(nspawn, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(nspawn) and time.monotonic() < deadline:
            time.sleep(0.05)
    with contextlib.suppress(OSError):
        (Path("/tmp") / f"{name}.console.log").unlink()
    return _remove_cgroups(dirs)


def cleanup_orphans() -> list[str]:
    """Tear down every orphaned box; returns what could not be cleaned up."""
    problems: list[str] = []
    for name in orphaned_boxes():
        problems += teardown_orphan(name)
    return problems


# ---------------------------------------------------------------------------------------------
# The spawn stages (run as a script)


def _stage1(args: list[str]) -> None:
    """Join the box's cgroups, then a private mount namespace (stage 2)."""
    name = args[0]
    sep = args.index("--")
    for d in args[1:sep]:
        with open(Path(d) / "cgroup.procs", "w") as fh:
            fh.write(str(os.getpid()))
    stage2 = [sys.executable, "-I", "-S", __file__, "_stage2", name, *args[sep:]]
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "--", *stage2])


def _stage2(args: list[str]) -> None:
    """In the private mount namespace: tmpfs /run, the overlay root, then exec nspawn."""
    name = args[0]
    nspawn_args = args[2:]  # after "--"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", f"{name}-run", "/run"], check=True)
    base = Path("/run/box")
    for sub in ("upper", "work", "root"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir=/,upperdir={base}/upper,workdir={base}/work"
    subprocess.run(
        ["mount", "-t", "overlay", "-o", opts, f"{name}-root", str(base / "root")], check=True
    )
    os.execvp("systemd-nspawn", ["systemd-nspawn", "-D", str(base / "root"), *nspawn_args])


def main(argv: list[str]) -> int:
    """``_stage1``/``_stage2`` (internal), or ``cleanup`` (tear down orphaned boxes)."""
    if argv[:1] == ["_stage1"]:
        _stage1(argv[1:])
    elif argv[:1] == ["_stage2"]:
        _stage2(argv[1:])
    elif argv[:1] == ["cleanup"]:
        names = orphaned_boxes()
        problems = cleanup_orphans()
        print(
            f"removed {len(names)} orphaned box(es)" + (f"; left: {problems}" if problems else "")
        )
        return 1 if problems else 0
    else:
        print("usage: python -m tests.support.nspawn cleanup", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
