"""`python -m bench.latency`: inbound message → agent websocket, p50/p99 at 100, 500 and 1,000 msg/s.

A hub runs in its own process (bench/hubproc.py: event fan-out + uvicorn). This
process plays the connector side: at a fixed rate (open loop, one task per
message, like a connector with many chats) it calls `inbox.ingest.ingest` on
its own pool, and an agent connected to `/ws/agent` of the hub receives
`message.created`. Latency = from the moment ingest is called to the moment
the event is read off the websocket (one clock: both ends are in this process).
It is split into ingest (call → commit) and delivery (commit → websocket).
Each rate is measured through `ingest` (group commit) and, for comparison,
`ingest_alone` (one transaction per message, the path before group commit).
"completed" is the rate that went through (messages committed per second).

Baseline in the same run, at the same rates: a bare `SELECT pg_notify(…)`
(autocommit) from the same pool to a plain asyncpg LISTEN connection — the floor
any PostgreSQL-notified design pays.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
from websockets.asyncio.client import connect

from bench.common import (
    HubProcess,
    JSONDict,
    agent_token,
    loadavg,
    machine,
    scratch_database,
    server_version,
    summary_ms,
    write_result,
)
from bench.seed import seed
from bench.workload import Who, messages, senders
from hub import db
from hub.types import InboundMessage, IngestResult
from inbox.ingest import ingest, ingest_alone

MAX_IN_FLIGHT = 400

# What the connector side calls: ingest as connectors get it (group commit), or one transaction per message.
PATHS: dict[str, Callable[[asyncpg.Pool, InboundMessage], Coroutine[Any, Any, IngestResult]]] = {
    "ingest": ingest,
    "ingest-alone": ingest_alone,
}


async def open_loop(rate: float, seconds: float, send: Callable[[int], Coroutine[Any, Any, None]]) -> JSONDict:
    """Call `send(i)` at `rate` per second for `seconds`, without waiting for earlier calls."""
    tasks: set[asyncio.Task[None]] = set()
    skipped = 0
    total = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(total):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= MAX_IN_FLIGHT:
            skipped += 1  # the system under test is that far behind: don't pile on without bound
            continue
        t = asyncio.create_task(send(i))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    sent_for = time.perf_counter() - t0
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    return {"offered": total, "skipped_backlog": skipped, "achieved_per_s": round((total - skipped) / sent_for)}


async def measure_hub(
    pool: asyncpg.Pool, ws_url: str, token: str, who: list[Who], rate: float, seconds: float, tag: str, rng: random.Random,
    path: str = "ingest",
) -> JSONDict:
    batch = messages(who, int(rate * seconds), tag=tag, rng=rng)
    started: dict[str, float] = {}
    committed: dict[str, float] = {}
    received: dict[str, float] = {}
    async with connect(f"{ws_url}/ws/agent?token={token}", max_size=None, ping_interval=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello", hello

        async def reader() -> None:
            async for raw in ws:
                now = time.perf_counter()
                event = json.loads(raw)
                if event.get("type") == "message.created":
                    received[event["data"]["message"]["text"]] = now

        read = asyncio.create_task(reader())

        async def send(i: int) -> None:
            m = batch[i][0]
            started[m.text] = time.perf_counter()
            await PATHS[path](pool, m)
            committed[m.text] = time.perf_counter()

        # Texts are the key: make each one unique.
        batch = [(dataclasses.replace(m, text=f"{m.text} [{tag}:{i}]"), w) for i, (m, w) in enumerate(batch)]
        info = await open_loop(rate, seconds, send)
        deadline = time.perf_counter() + 10
        while len(received) < len(committed) and time.perf_counter() < deadline:  # noqa: ASYNC110 - bounded wait for stragglers
            await asyncio.sleep(0.05)
        read.cancel()
    total = [received[k] - started[k] for k in committed if k in received]
    ingest_part = [committed[k] - started[k] for k in committed]
    delivery = [received[k] - committed[k] for k in committed if k in received]
    span = max(committed.values(), default=0.0) - min(started.values(), default=0.0)
    return {
        **info,
        # What went through: messages committed per second, first call to last commit.
        "completed_per_s": round(len(committed) / span) if span > 0 else 0,
        "lost": len(committed) - len(total),
        "end_to_end": summary_ms(total),
        "ingest_call_to_commit": summary_ms(ingest_part),
        "commit_to_websocket": summary_ms(delivery),
    }


async def measure_notify(pool: asyncpg.Pool, url: str, rate: float, seconds: float) -> JSONDict:
    listener = await db.connect(url)
    started: dict[str, float] = {}
    received: dict[str, float] = {}
    channel = "bench_latency"

    def on(_c: object, _pid: int, _ch: str, payload: str) -> None:
        received[payload] = time.perf_counter()

    await listener.add_listener(channel, on)

    async def send(i: int) -> None:
        key = str(i)
        started[key] = time.perf_counter()
        await pool.execute("SELECT pg_notify($1, $2)", channel, key)

    try:
        info = await open_loop(rate, seconds, send)
        deadline = time.perf_counter() + 5
        while len(received) < len(started) and time.perf_counter() < deadline:  # noqa: ASYNC110 - bounded wait for stragglers
            await asyncio.sleep(0.05)
    finally:
        await listener.close()
    lat = [received[k] - started[k] for k in started if k in received]
    return {**info, "lost": len(started) - len(lat), "end_to_end": summary_ms(lat)}


async def run(args: argparse.Namespace) -> JSONDict:
    rng = random.Random(11)
    result: JSONDict = {"benchmark": "latency", "machine": machine(), "params": vars(args).copy(), "rates": []}
    async with scratch_database("latency") as url:
        result["machine"]["postgres"] = await server_version(url)
        result["seed"] = await seed(url, args.seed_scale, quiet=True)
        async with db.open_pool(url, min_size=args.pool, max_size=args.pool) as pool, HubProcess(url) as hub:
            token = await agent_token(pool)
            who = await senders(pool, known=5000, new=5000, rng=rng)
            await measure_hub(pool, hub.ws_url, token, who, 100, 2, "warm", rng)
            for step, rate in enumerate(args.rates):
                base = await measure_notify(pool, url, rate, args.seconds)
                row = {"rate": rate, "baseline_notify": base}
                for path in args.paths:
                    hub_fig = await measure_hub(pool, hub.ws_url, token, who, rate, args.seconds, f"s{step}r{rate}{path}", rng, path)
                    row["hub" if path == "ingest" else f"hub_{path}"] = hub_fig
                    e, b = hub_fig["end_to_end"], base["end_to_end"]
                    print(
                        f"{rate:>5} msg/s {path:>12} (completed {hub_fig['completed_per_s']}/s): ingest→ws p50 {e['p50_ms']:.1f} ms"
                        f" p99 {e['p99_ms']:.1f} ms [commit {hub_fig['ingest_call_to_commit']['p99_ms']:.1f} +"
                        f" delivery {hub_fig['commit_to_websocket']['p99_ms']:.1f} p99];"
                        f" NOTIFY→LISTEN p50 {b['p50_ms']:.2f} p99 {b['p99_ms']:.2f} ms; lost {hub_fig['lost']}"
                        f" (load {loadavg()[0]})",
                        flush=True,
                    )
                row["loadavg"] = loadavg()[0]
                result["rates"].append(row)
    at500 = next((r for r in result["rates"] if r["rate"] == 500 and "hub" in r), None)
    if at500:
        p99 = at500["hub"]["end_to_end"]["p99_ms"]
        result["figures"] = {"p99_ms_at_500": p99, "target_p99_ms": 50, "meets_target": p99 < 50}
        print(f"\np99 at 500 msg/s: {p99:.1f} ms; target < 50 ms: {'met' if p99 < 50 else 'MISSED'}")
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=int, nargs="+", default=[100, 500, 1000])
    p.add_argument("--seconds", type=float, default=15.0, help="per rate")
    p.add_argument("--pool", type=int, default=20)
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS,
                   help="ingest (group commit, as connectors call it) and/or ingest-alone (one transaction per message)")
    p.add_argument("--seed-scale", type=float, default=0.01)
    write_result("latency", asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
