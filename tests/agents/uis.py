"""Real agent UIs (Claude Code, Gemini CLI, Codex CLI) in real tmux panes, offline, private HOMEs.

The UIs come from the npm registry at the versions pinned in ``tests/agents/package.json`` and
its lock file (``./dev`` installs them with ``npm ci`` into ``$ASCHED_AGENTS_DIR``, by default
``.venv/agents``). Each one reaches its input prompt without a network: dummy keys, onboarding and
folder trust pre-accepted, retries off, and the model API pointed at a loopback server that
hangs up (tests/agents/fakeapi.py), so every submitted prompt ends in one API error.

Ground truth of what an agent received is its own record, never asched's journal or the
screen: Claude Code's session transcript (``~/.claude/projects/<cwd>/<session>.jsonl``, one
``user`` entry a prompt), Gemini CLI's prompt log (``~/.gemini/tmp/<project>/logs.json``) and
Codex CLI's rollout (``$CODEX_HOME/sessions/Y/M/D/rollout-*.jsonl``, one completed
``UserMessage`` item a prompt; its history.jsonl also holds drafts cleared with C-c).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil

from tests.support.tmux import Server

HERE = Path(__file__).resolve().parent
PINNED: dict[str, str] = json.loads((HERE / "package.json").read_text())["dependencies"]
KINDS = ("claude", "gemini", "codex")
PACKAGE = {
    "claude": "@anthropic-ai/claude-code",
    "gemini": "@google/gemini-cli",
    "codex": "@openai/codex",
}
_CLAUDE_KEY = "sk-ant-api03-asched-test-dummy-key-0000000000000000"


def bin_dir() -> Path:
    """Where the pinned agent UIs are installed: ``$ASCHED_AGENTS_DIR/node_modules/.bin``
    (``./dev`` sets it; default ``.venv/agents``)."""
    root = os.environ.get("ASCHED_AGENTS_DIR")
    return (
        (Path(root) if root else HERE.parent.parent / ".venv" / "agents") / "node_modules" / ".bin"
    )


def missing() -> list[str]:
    """What keeps the agent tests from running here (empty when nothing)."""
    why = []
    if not _which("node"):
        why.append("node is not installed")
    for kind in KINDS:
        if not (bin_dir() / kind).exists():
            why.append(f"{PACKAGE[kind]}@{PINNED[PACKAGE[kind]]} is not installed in {bin_dir()}")
    return why


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for tmux to reap it counts as ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _which(name: str) -> bool:
    return any((Path(d) / name).exists() for d in os.environ.get("PATH", "").split(os.pathsep))


@dataclass
class Agent:
    """One agent UI running in its own tmux window."""

    kind: str
    server: Server
    pane: str
    home: Path
    cwd: Path
    pid: int  # the pane's process: the agent (``env`` execs it), leader of its process group

    def stop(self, timeout: float = 5.0) -> None:
        """End the agent's process group by pid and wait for it: an agent still running after
        its test (Claude Code writes its transcript on the way out) would write into a temp
        HOME that is being removed."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(self.pid):
                time.sleep(0.05)
            if not _alive(self.pid):
                return

    def screen(self) -> list[str]:
        """The visible rows of its pane."""
        return self.server.tmux("capture-pane", "-p", "-t", self.pane).split("\n")

    def prompts(self) -> list[str]:
        """Every prompt the agent itself recorded as submitted, in order (the ground truth)."""
        return [text for _, text in self.records()]

    def records(self) -> list[tuple[float, str]]:
        """(when, prompt) of every submitted prompt, as the agent recorded them, in order."""
        read = {"claude": _claude_prompts, "gemini": _gemini_prompts, "codex": _codex_prompts}
        return sorted((_epoch(stamp), text) for stamp, text in read[self.kind](self.home))

    def wait_prompts(self, n: int, timeout: float = 20.0) -> list[str]:
        """Wait until at least ``n`` prompts are recorded (or the timeout); returns them."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.prompts()
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def settled(self, quiet_s: float = 1.0, timeout: float = 20.0) -> list[str]:
        """The prompts once none has been added for ``quiet_s`` (a late second copy would show)."""
        deadline = time.monotonic() + timeout
        last, since = self.prompts(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.prompts()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                break
        return last

    def idle_input(self) -> bool:
        """The UI shows its empty input prompt (read with the test's own markers)."""
        rows = self.screen()
        if self.kind == "claude":
            return any(r.startswith("❯") and not r[1:].strip() for r in rows)
        if self.kind == "codex":
            return any(r.startswith("› Ask Codex to do anything") for r in rows)
        return any("Type your message" in r for r in rows)


def start(
    server: Server,
    root: Path,
    kind: str,
    api_url: str,
    name: str,
    prepare: Callable[[dict[str, str]], None] | None = None,
) -> Agent:
    """Start ``kind`` in a new session ``name`` of ``server``; returns once its prompt shows.
    ``prepare(env)``: called with the agent's environment (its HOME set up) before it starts."""
    home, cwd = root / f"{name}-home", root / name
    home.mkdir(mode=0o700)
    cwd.mkdir()
    (cwd / "STATUS.md").write_text("# Status\nall green\n")
    env = {
        "HOME": str(home),
        "PATH": f"{bin_dir()}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "NO_UPDATE_NOTIFIER": "1",
    }
    if kind == "claude":
        env.update(_claude_home(home, cwd, api_url))
        argv = [str(bin_dir() / "claude")]
    elif kind == "codex":
        env.update(_codex_home(home, cwd, api_url))
        # No background app-server: it would copy 400 MB into CODEX_HOME and outlive the pane.
        argv = [str(bin_dir() / "codex"), "--no-daemon"]
    else:
        env.update(_gemini_home(home, api_url))
        argv = [str(bin_dir() / "gemini")]
    args = ["new-session", "-d", "-s", name, "-x", "160", "-y", "50", "-c", str(cwd)]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    # Under CI=true (set by CI) the UIs take themselves for a non-interactive run and exit at
    # once: the pane must not inherit it, nor CONTINUOUS_INTEGRATION or CI_* from the server.
    ci = [k for k in os.environ if k in ("CI", "CONTINUOUS_INTEGRATION") or k.startswith("CI_")]
    argv = ["env", *(f"--unset={k}" for k in sorted(ci)), *argv]
    if prepare is not None:
        prepare(env)
    pane = server.tmux(*args, "-P", "-F", "#{pane_id}", *argv).strip()
    if server.pid is None:
        server.pid = int(server.tmux("display-message", "-p", "#{pid}").strip())
    pid = int(server.tmux("display-message", "-p", "-t", pane, "#{pane_pid}").strip())
    agent = Agent(kind, server, pane, home, cwd, pid)
    deadline = time.monotonic() + 60
    while not agent.idle_input():
        if time.monotonic() > deadline:
            raise AssertionError(f"{kind} never showed its prompt:\n" + "\n".join(agent.screen()))
        time.sleep(0.2)
    time.sleep(0.5)  # past the first paint: the input handlers are attached
    return agent


def _claude_home(home: Path, cwd: Path, api_url: str) -> dict[str, str]:
    version = subprocess.run(
        [str(bin_dir() / "claude"), "--version"],
        capture_output=True, text=True, timeout=30, env={**os.environ, "HOME": str(home)},
    ).stdout.split()[0]  # fmt: skip
    state = {
        "hasCompletedOnboarding": True,
        "lastOnboardingVersion": version,
        "customApiKeyResponses": {"approved": [_CLAUDE_KEY[-20:]], "rejected": []},
        "projects": {
            str(cwd): {
                "hasTrustDialogAccepted": True,
                "hasCompletedProjectOnboarding": True,
                "allowedTools": [],
            }
        },
    }
    (home / ".claude.json").write_text(json.dumps(state))
    return {
        "ANTHROPIC_API_KEY": _CLAUDE_KEY,
        "ANTHROPIC_BASE_URL": api_url,
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }


def _gemini_home(home: Path, api_url: str) -> dict[str, str]:
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
        "general": {
            "enableAutoUpdate": False,
            "enableAutoUpdateNotification": False,
            "maxAttempts": 1,
            "retryFetchErrors": False,
        },
        "privacy": {"usageStatisticsEnabled": False},
        "ide": {"enabled": False},
    }
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    return {
        "GEMINI_API_KEY": "asched-test-dummy-key",
        "GOOGLE_GEMINI_BASE_URL": api_url,
        "GEMINI_CLI_NO_RELAUNCH": "1",
    }


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _codex_home(home: Path, cwd: Path, api_url: str) -> dict[str, str]:
    codex_home = home / ".codex"
    codex_home.mkdir()
    # A provider of our own on loopback (OPENAI_BASE_URL is ignored): no sign-in screen, no
    # retries, no plugin sync or update check; a trusted folder (no dialog).
    (codex_home / "config.toml").write_text(
        'model_provider = "local"\n'
        "check_for_update_on_startup = false\n"
        "[model_providers.local]\n"
        'name = "local"\n'
        f'base_url = "{api_url}/v1"\n'
        'env_key = "OPENAI_API_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
        "supports_websockets = false\n"
        "[features]\n"
        "plugins = false\n"
        "unbounded_connection_retries = false\n"
        f'[projects."{cwd}"]\n'
        'trust_level = "trusted"\n'
    )
    return {"CODEX_HOME": str(codex_home), "OPENAI_API_KEY": "sk-asched-test-dummy-key"}


def _codex_prompts(home: Path) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for log in (home / ".codex" / "sessions").glob("*/*/*/rollout-*.jsonl"):
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            payload = entry.get("payload") or {}
            item = payload.get("item") or {}
            if payload.get("type") == "item_completed" and item.get("type") == "UserMessage":
                text = "".join(c.get("text", "") for c in item.get("content", []))
                found.append((entry["timestamp"], text))
    return found


def _claude_prompts(home: Path) -> list[tuple[str, str]]:
    prompts: list[tuple[str, str]] = []
    for log in (home / ".claude" / "projects").glob("*/*.jsonl"):
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if entry.get("type") != "user" or entry.get("isMeta"):
                continue
            content = entry.get("message", {}).get("content")
            if isinstance(content, list):  # tool results are "user" entries too
                texts = [c.get("text", "") for c in content if c.get("type") == "text"]
                if len(texts) != len(content):
                    continue
                content = "".join(texts)
            if isinstance(content, str) and entry.get("timestamp"):
                prompts.append((entry["timestamp"], content))
    return prompts


def _gemini_prompts(home: Path) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for log in (home / ".gemini" / "tmp").glob("*/logs.json"):
        try:
            entries = json.loads(log.read_text())
        except (json.JSONDecodeError, OSError):
            continue  # being written
        found += [(e["timestamp"], e["message"]) for e in entries if e.get("type") == "user"]
    return found
