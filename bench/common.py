"""What every benchmark shares: a scratch database, machine facts, percentiles, the JSON result."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hub import db
from hub.migrate import migrate

ADMIN_URL = os.environ.get("OMNIHUB_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"

JSONDict = dict[str, Any]


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextlib.asynccontextmanager
async def scratch_database(label: str, *, keep: bool = False) -> AsyncIterator[str]:
    """A migrated database of this run's own on the bench server, dropped afterwards."""
    name = f"omnihub_bench_{label}_{os.getpid()}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    url = with_database(ADMIN_URL, name)
    conn = await db.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    try:
        yield url
    finally:
        if keep:
            print(f"kept scratch database {url}")
        else:
            admin = await asyncpg.connect(ADMIN_URL)
            try:
                await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            finally:
                await admin.close()


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def commit() -> str:
    """The code under test: a snapshot's COMMIT file (`git archive` copies), else git's HEAD."""
    marker = REPO / "COMMIT"
    if marker.exists():
        return marker.read_text().strip() + " (snapshot)"
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return ""
    return out.stdout.strip()


def machine() -> JSONDict:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "commit": commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "command": " ".join([".venv/bin/python -m", f"bench.{Path(sys.argv[0]).stem}", *sys.argv[1:]]),
        "loadavg_start": loadavg(),
    }


async def server_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        version: str = await conn.fetchval("SHOW server_version")
        return version
    finally:
        await conn.close()


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(seconds: Sequence[float]) -> JSONDict:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(pct(ms, 50), 2),
        "p95_ms": round(pct(ms, 95), 2),
        "p99_ms": round(pct(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else float("nan"),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def write_result(name: str, result: JSONDict) -> Path:
    result.setdefault("machine", {})["loadavg_end"] = loadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
    return path


def raise_fd_limit(wanted: int) -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class HubProcess:
    """A hub in a child process (bench/hubproc.py): `async with HubProcess(url) as hub: hub.base_url, hub.pid`."""

    module = "bench.hubproc"

    def __init__(self, database_url: str) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        self.database_url = database_url
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.pid = 0
        self._proc: Any = None

    async def __aenter__(self) -> HubProcess:
        import asyncio

        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, *self.args(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            cwd=str(REPO),
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 60)
        if not line.startswith(b"READY"):
            raise RuntimeError(f"hub process did not start: {line!r}")
        self.pid = int(line.split()[1])
        return self

    def args(self) -> list[str]:
        return [self.database_url, str(self.port)]

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        proc = self._proc
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.terminate()
            await proc.wait()


async def agent_token(pool: asyncpg.Pool, name: str = "Bench Agent") -> str:
    """A logged-in agent's session token (for /ws/agent and the API)."""
    from inbox.agents import add_agent, create_session

    agent = await add_agent(
        pool, email=f"bench{os.getpid()}-{time.monotonic_ns()}@example.com", name=name, role="admin",
        password="bench-password",
    )
    return await create_session(pool, agent["id"])


class FloorProcess(HubProcess):
    """The bare websockets server (bench/wsfloor.py) in a child process."""

    module = "bench.wsfloor"

    def args(self) -> list[str]:
        return [str(self.port)]
