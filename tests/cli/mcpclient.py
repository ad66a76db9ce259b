"""``asched mcp`` as a real process, driven by the SDK's own client over stdio, from sync tests.

:class:`McpClient` runs ``stdio_client`` + ``ClientSession`` on an event loop of its own (an
anyio blocking portal in a thread), so a test calls a tool, looks at the SQLite store, and calls
the next one. Every wait is bounded; :meth:`McpClient.close` ends the session (the SDK closes
the server's stdin and kills its process group if it lingers) and then kills, by pid, any child
process still there.
"""

from __future__ import annotations

import contextlib
import json
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anyio
import psutil
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, InitializeResult, Tool

TIMEOUT_S = 30.0  # any one step: start, a call, the end


class McpClient:
    """A session with one ``python -m asched mcp`` process."""

    def __init__(
        self,
        env: dict[str, str],
        stderr: Path,
        args: tuple[str, ...] = (),
        argv: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Start ``python -m asched mcp ARGS`` (or ``argv``) in ``cwd``, with ``env`` over the
        SDK's default environment, its stderr to the file ``stderr``; initialize the session."""
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._errlog = stderr.open("w")
        self._stack = contextlib.ExitStack()
        try:
            command = argv or [sys.executable, "-m", "asched", "mcp", *args]
            params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=cwd)
            streams = self._stack.enter_context(
                self._portal.wrap_async_context_manager(stdio_client(params, self._errlog))
            )
            self.session = self._stack.enter_context(
                self._portal.wrap_async_context_manager(ClientSession(*streams))
            )
            self.init = self._portal.call(self._initialize, self.session)
        except BaseException:
            self.close()
            raise

    @staticmethod
    async def _initialize(session: ClientSession) -> InitializeResult:
        with anyio.fail_after(TIMEOUT_S):
            return await session.initialize()

    def tools(self) -> list[Tool]:
        """The tools the server lists."""

        async def go() -> list[Tool]:
            with anyio.fail_after(TIMEOUT_S):
                return (await self.session.list_tools()).tools

        return self._portal.call(go)

    def call(self, name: str, **arguments: Any) -> CallToolResult:
        """One tool call, as the client gets it."""

        async def go() -> CallToolResult:
            with anyio.fail_after(TIMEOUT_S):
                return await self.session.call_tool(name, arguments)

        return self._portal.call(go)

    def ok(self, name: str, **arguments: Any) -> Any:
        """A call that must succeed: its result, from the JSON text (which must equal the
        structured content)."""
        result = self.call(name, **arguments)
        text = _text(result)
        assert not result.is_error, text
        data = json.loads(text)
        assert data == result.structured_content
        return data

    def error(self, name: str, **arguments: Any) -> str:
        """A call that must fail with a tool error: its text."""
        result = self.call(name, **arguments)
        assert result.is_error, _text(result)
        return _text(result)

    def close(self) -> None:
        """End the session and the server process (by pid if it lingers)."""
        me = psutil.Process()
        try:
            self._stack.close()  # the SDK: close stdin, wait a moment, kill the process group
        finally:
            self._portal_cm.__exit__(None, None, None)
            for child in me.children(recursive=True):
                if "asched" in " ".join(_cmdline(child)):
                    with contextlib.suppress(psutil.Error):
                        child.kill()
                        child.wait(timeout=5)
            self._errlog.close()


def _text(result: CallToolResult) -> str:
    (content,) = result.content
    assert content.type == "text"
    return content.text


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []
