"""A hub as a child process of the test, for what cannot be done in-process: SIGKILL, two processes, the CLI.

`HubProcess` runs `python -m hub serve` (or `tests.run_hub`, which adds the
loopback channel kind) with its own port and data directory, its output in a
log file that survives restarts; waiting on it fails at once, with that log,
when the process has died. `omnihub` runs one CLI command.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from tests.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


class HubProcess:
    def __init__(self, database_url: str, tmp: Path, *, name: str = "hub", module: str = "hub") -> None:
        self.database_url = database_url
        self.module = module
        self.data_dir = tmp / name
        self.log = tmp / f"{name}.log"  # appended to: a restart under the same name adds to it
        self.port = free_port()
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> HubProcess:
        env = {
            **os.environ,
            "OMNIHUB_DATABASE_URL": self.database_url,
            "OMNIHUB_DATA_DIR": str(self.data_dir),
            "OMNIHUB_PORT": str(self.port),
            "OMNIHUB_SECRET": "test-secret",
        }
        with self.log.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, "serve", env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def until(self, predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.02) -> Any:
        """`wait_for(predicate)`, failing with the hub's log as soon as the hub is not running."""

        async def check() -> Any:
            if not self.alive():
                code = self._proc.returncode if self._proc else None
                raise AssertionError(f"the hub process is not running (exit code {code}); its log:\n{self.log_text()}")
            value = predicate()
            return await value if asyncio.iscoroutine(value) else value

        return await wait_for(check, timeout, interval)

    async def kill(self) -> None:
        """SIGKILL: no cleanup at all, open transactions die with the process."""
        await self._end(signal.SIGKILL, 10)

    async def stop(self, timeout: float = 15) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it takes longer than `timeout`."""
        if self.alive():
            with contextlib.suppress(TimeoutError):
                await self._end(signal.SIGTERM, timeout)
        if self.alive():
            await self.kill()

    async def _end(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(sig)
        await asyncio.wait_for(proc.wait(), timeout)


@contextlib.asynccontextmanager
async def hub_process(database_url: str, tmp: Path, *, name: str = "hub", module: str = "hub") -> AsyncIterator[HubProcess]:
    """A started `HubProcess`, stopped (SIGTERM, then SIGKILL) on the way out whatever happened."""
    hub = await HubProcess(database_url, tmp, name=name, module=module).start()
    try:
        yield hub
    finally:
        await hub.stop()


async def omnihub(database_url: str, *args: str, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """`python -m hub ARGS…` against the database: its exit code and its output (stdout and stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", *args,
        env={**os.environ, "OMNIHUB_DATABASE_URL": database_url, **(env or {})}, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()
