"""`python -m bench.fanout`: websockets one hub process holds at 1k / 5k / 10k, its RSS, and broadcast latency.

The hub runs alone in a child process (bench/hubproc.py); this process opens
the connections — half agents on `/ws/agent` (each one authenticated), half
site visitors on `/ws/widget` (each a new visitor with its own session; they
connect from many 127.0.0.x source addresses because the widget allows 20
quick connects per address). RSS is the hub's VmRSS from /proc.

Broadcast: at each step this process ingests messages (one at a time) on a
Telegram channel and on the widget channel, and times how long until *every*
agent socket has the `message.created` event: median over messages of the
per-message p50 and of the last socket's arrival.

Baseline, same run, same connection counts: a bare `websockets` server
(bench/wsfloor.py: no app, no auth, no database) — its RSS and its broadcast
time to the same number of sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import random
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg
from websockets.asyncio.client import ClientConnection, connect

from bench.common import (
    FloorProcess,
    HubProcess,
    JSONDict,
    agent_token,
    loadavg,
    machine,
    raise_fd_limit,
    rss_kib,
    scratch_database,
    server_version,
    write_result,
)
from bench.seed import seed
from hub import db
from hub.types import InboundMessage, Sender
from inbox.ingest import ingest

WIDGET_CHANNEL = 2  # bench/seed.py: channels 1 telegram, 2 widget, 3 email, 4 vk
TELEGRAM_CHANNEL = 1
CONNECT_PARALLEL = 50


class Socket:
    """One client connection that timestamps every frame mentioning `marker`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.arrivals: dict[str, float] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                if isinstance(raw, str) and "bcast-" in raw:
                    i = raw.index("bcast-")
                    self.arrivals[raw[i : i + 14]] = time.perf_counter()
        except Exception:
            return

    async def close(self) -> None:
        self.task.cancel()
        await self.ws.close()


async def open_many(n: int, opener: Callable[[int], Awaitable[Socket]]) -> list[Socket]:
    sem = asyncio.Semaphore(CONNECT_PARALLEL)
    counter = itertools.count()

    async def one() -> Socket:
        async with sem:
            return await opener(next(counter))

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def settle_rss(pid: int) -> int:
    await asyncio.sleep(2.0)
    return rss_kib(pid)


def spread(sockets: list[Socket], key: str, t0: float) -> tuple[list[float], int]:
    got = [s.arrivals[key] - t0 for s in sockets if key in s.arrivals]
    return got, len(sockets) - len(got)


async def wait_all(sockets: list[Socket], key: str, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and any(key not in s.arrivals for s in sockets):  # noqa: ASYNC110 - polls thousands of sockets, bounded by the deadline
        await asyncio.sleep(0.005)


def summarize(per_message: list[tuple[list[float], int]]) -> JSONDict:
    p50s = [statistics.median(g) * 1000 for g, _ in per_message if g]
    lasts = [max(g) * 1000 for g, _ in per_message if g]
    return {
        "messages": len(per_message),
        "p50_ms_median": round(statistics.median(p50s), 1) if p50s else None,
        "last_socket_ms_median": round(statistics.median(lasts), 1) if lasts else None,
        "last_socket_ms_max": round(max(lasts), 1) if lasts else None,
        "missed": sum(m for _, m in per_message),
    }


async def hub_broadcast(pool: asyncpg.Pool, agents: list[Socket], channel_id: int, count: int, seq: itertools.count[int]) -> JSONDict:
    results = []
    for _ in range(count):
        key = f"bcast-{next(seq):08d}"
        sender = f"fan-{key}" if channel_id == WIDGET_CHANNEL else str(300000000 + int(key[6:]))
        t0 = time.perf_counter()
        await ingest(pool, InboundMessage(channel_id=channel_id, external_id=key, sender=Sender(sender, "Fan"), text=key))
        await wait_all(agents, key, 30)
        results.append(spread(agents, key, t0))
        await asyncio.sleep(0.2)
    return summarize(results)


async def floor_broadcast(control: ClientConnection, sockets: list[Socket], count: int, seq: itertools.count[int]) -> JSONDict:
    results = []
    for _ in range(count):
        key = f"bcast-{next(seq):08d}"
        t0 = time.perf_counter()
        await control.send(f"broadcast {{\"type\": \"message.created\", \"text\": \"{key}\"}}")
        await wait_all(sockets, key, 30)
        results.append(spread(sockets, key, t0))
        await asyncio.sleep(0.2)
    return summarize(results)


async def run_hub(args: argparse.Namespace, url: str) -> list[JSONDict]:
    rows: list[JSONDict] = []
    seq = itertools.count()
    async with db.open_pool(url, min_size=4, max_size=10) as pool, HubProcess(url) as hub:
        token = await agent_token(pool)
        agents: list[Socket] = []
        visitors: list[Socket] = []
        rows.append({"connections": 0, "rss_mib": round(await settle_rss(hub.pid) / 1024, 1)})
        print(f"hub   {0:>6} connections: RSS {rows[-1]['rss_mib']:7.1f} MiB (idle)", flush=True)

        async def agent(_i: int) -> Socket:
            ws = await connect(f"{hub.ws_url}/ws/agent?token={token}", ping_interval=None, max_size=None,
                               compression=None, open_timeout=60)
            return Socket(ws)

        async def visitor(i: int) -> Socket:
            # 20 visitors per source address: the widget's per-address connect burst.
            addr = f"127.0.{1 + i // 20 // 250}.{1 + (i // 20) % 250}"
            ws = await connect(f"{hub.ws_url}/ws/widget?channel={WIDGET_CHANNEL}", ping_interval=None,
                               max_size=None, compression=None, open_timeout=60, local_addr=(addr, 0))
            return Socket(ws)

        vcount = itertools.count()
        for target in args.steps:
            t0 = time.perf_counter()
            want_agents = int(target * args.agent_share)
            agents += await open_many(want_agents - len(agents), agent)
            need = target - want_agents - len(visitors)
            visitors += await open_many(need, lambda _i: visitor(next(vcount)))
            took = time.perf_counter() - t0
            gc.collect()
            rss = await settle_rss(hub.pid)
            row: JSONDict = {
                "connections": len(agents) + len(visitors), "agents": len(agents), "visitors": len(visitors),
                "rss_mib": round(rss / 1024, 1), "connect_seconds": round(took, 1),
                "broadcast_telegram_msg": await hub_broadcast(pool, agents, TELEGRAM_CHANNEL, args.messages, seq),
                "broadcast_widget_msg": await hub_broadcast(pool, agents, WIDGET_CHANNEL, args.messages, seq),
                "rss_mib_after_broadcast": round(rss_kib(hub.pid) / 1024, 1),
                "loadavg": loadavg()[0],
            }
            rows.append(row)
            tb, wb = row["broadcast_telegram_msg"], row["broadcast_widget_msg"]
            print(
                f"hub   {row['connections']:>6} connections: RSS {row['rss_mib']:7.1f} MiB;"
                f" broadcast to {len(agents)} agents p50 {tb['p50_ms_median']} ms, last {tb['last_socket_ms_median']} ms"
                f" (widget-channel message: p50 {wb['p50_ms_median']}, last {wb['last_socket_ms_median']} ms);"
                f" opened in {took:.0f}s (load {row['loadavg']})",
                flush=True,
            )
        await asyncio.gather(*(s.close() for s in agents + visitors), return_exceptions=True)
    return rows


async def run_floor(args: argparse.Namespace) -> list[JSONDict]:
    rows: list[JSONDict] = []
    seq = itertools.count(50_000_000)
    async with FloorProcess("") as floor:
        sockets: list[Socket] = []
        control = await connect(floor.ws_url, ping_interval=None)
        rows.append({"connections": 0, "rss_mib": round(await settle_rss(floor.pid) / 1024, 1)})

        async def plain(_i: int) -> Socket:
            return Socket(await connect(floor.ws_url, ping_interval=None, max_size=None, compression=None, open_timeout=60))

        for target in args.steps:
            sockets += await open_many(target - len(sockets), plain)
            rss = await settle_rss(floor.pid)
            agents = sockets[: int(target * args.agent_share)]  # broadcast reaches all; time the same count as the hub
            b = await floor_broadcast(control, sockets, args.messages, seq)
            rows.append({"connections": len(sockets), "rss_mib": round(rss / 1024, 1), "broadcast": b,
                         "loadavg": loadavg()[0]})
            print(
                f"floor {len(sockets):>6} connections: RSS {rows[-1]['rss_mib']:7.1f} MiB;"
                f" broadcast to all {len(sockets)} p50 {b['p50_ms_median']} ms, last {b['last_socket_ms_median']} ms"
                f" ({len(agents)} would be agents)",
                flush=True,
            )
        await control.close()
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
    return rows


async def run(args: argparse.Namespace) -> JSONDict:
    raise_fd_limit(max(args.steps) + 2000)
    random.seed(3)
    result: JSONDict = {"benchmark": "fanout", "machine": machine(), "params": vars(args).copy()}
    async with scratch_database("fanout") as url:
        result["machine"]["postgres"] = await server_version(url)
        result["seed"] = await seed(url, 0.002, quiet=True)
        result["hub"] = await run_hub(args, url)
    result["floor"] = await run_floor(args)
    top = result["hub"][-1]
    result["figures"] = {
        "connections": top["connections"], "rss_mib": top["rss_mib"], "target_mib": 1024,
        "meets_target": top["connections"] >= 10_000 and top["rss_mib"] < 1024,
        "rss_kib_per_connection": round((top["rss_mib"] - result["hub"][0]["rss_mib"]) * 1024 / top["connections"], 1),
        "floor_rss_kib_per_connection": round(
            (result["floor"][-1]["rss_mib"] - result["floor"][0]["rss_mib"]) * 1024 / result["floor"][-1]["connections"], 1
        ),
    }
    f = result["figures"]
    print(
        f"\n{f['connections']:,} connections in {f['rss_mib']:.0f} MiB ({f['rss_kib_per_connection']} KiB each;"
        f" bare websockets {f['floor_rss_kib_per_connection']} KiB each); target < 1 GiB at 10,000:"
        f" {'met' if f['meets_target'] else 'MISSED'}"
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, nargs="+", default=[1000, 5000, 10000])
    p.add_argument("--agent-share", type=float, default=0.5, help="fraction of connections that are agents")
    p.add_argument("--messages", type=int, default=10, help="broadcasts timed per step and channel")
    write_result("fanout", asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
