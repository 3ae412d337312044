"""One poller per channel account across hub processes, with failover; crashed loops restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx

from hub.channels import add_channel
from tests.conftest import RunningHub, wait_for
from tests.hubproc import hub_process
from tests.loopback import LoopbackConnector


async def holder_pid(pool: asyncpg.Pool, channel_id: int) -> int | None:
    value = await pool.fetchval("SELECT value FROM channel_cursors WHERE channel_id = $1 AND key = 'holder'", channel_id)
    return int(value.split(":")[0]) if value else None


async def test_two_processes_poll_each_channel_once_and_fail_over(pool: asyncpg.Pool, database_url: str, tmp_path: Path) -> None:
    channels = [await add_channel(pool, kind="loopback", name=f"loop{i}", settings={}, secrets={}) for i in range(3)]
    async with (
        hub_process(database_url, tmp_path, name="a", module="tests.run_hub") as a,
        hub_process(database_url, tmp_path, name="b", module="tests.run_hub") as b,
    ):
        pids = {a.pid, b.pid}
        for ch in channels:
            await a.until(lambda ch=ch: holder_pid(pool, ch), timeout=120)
        # watch for a while: each channel stays with one process, and it is one of ours
        owners: dict[int, set[int]] = {ch: set() for ch in channels}
        for _ in range(10):
            for ch in channels:
                pid = await holder_pid(pool, ch)
                assert pid is not None
                owners[ch].add(pid)
            await asyncio.sleep(0.1)
        assert all(len(o) == 1 and o <= pids for o in owners.values()), owners
        locks = await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        assert locks == len(channels)

        # kill the process that polls the first channel: the other takes over
        victim, survivor = (a, b) if a.pid in owners[channels[0]] else (b, a)
        await victim.kill()
        for ch in channels:
            await survivor.until(lambda ch=ch: _held_by(pool, ch, survivor.pid), timeout=60)


async def _held_by(pool: asyncpg.Pool, ch: int, pid: int) -> bool:
    return await holder_pid(pool, ch) == pid


async def test_a_crashing_loop_restarts_and_its_error_is_shown(hub: RunningHub, api: httpx.AsyncClient) -> None:
    LoopbackConnector.run_failures[1] = [RuntimeError("login refused by the channel")]
    ch = await add_channel(hub.pool, kind="loopback", name="flaky", settings={}, secrets={})
    assert ch == 1
    await wait_for(lambda: holder_pid(hub.pool, ch), timeout=30)  # restarted after the crash
    channels = (await api.get("/api/v1/channels")).json()["items"]
    assert channels[0]["last_error"] == "RuntimeError: login refused by the channel"
    assert channels[0]["last_error_at"] is not None
