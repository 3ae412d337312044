"""`python -m bench.ingest`: inbound messages/s through `inbox.ingest.ingest`, against a plain-INSERT baseline.

Setup: a scratch database pre-seeded (bench/seed.py, `--scale 0.1`) with 100 k
conversations and ~1 M messages. Traffic: `--concurrency` senders at once
through a pool of `--pool` connections (the hub's own pool size is 20); each
message comes from one of ~20 k senders, half already known to the store and
half writing for the first time, picked with a skew so a few write a lot; Russian
and English text. The ingest path does everything it does in production:
identity (row lock) → client → conversation → idempotent insert → conversation
update → event stored + NOTIFY, one transaction per message.

Baseline, same run, same pool and concurrency: the plainest asyncpg loop, one
`INSERT INTO messages` per message per transaction (same channel, text,
conversation distribution). Rounds alternate baseline / ingest and the medians
are reported, so load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg

from bench.common import ADMIN_URL, JSONDict, loadavg, machine, median, scratch_database, server_version, write_result
from bench.dbwait import WaitSampler
from bench.seed import seed
from bench.workload import Who, messages, senders
from hub import db
from hub.types import InboundMessage
from inbox.ingest import ingest

T = TypeVar("T")


async def drive(items: Sequence[T], work: Callable[[T], Awaitable[object]], concurrency: int, max_seconds: float) -> tuple[int, float]:
    """Run `work` over `items` with `concurrency` workers; (done, seconds). Stops early at `max_seconds`."""
    it = iter(items)
    done = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal done
        for item in it:
            if time.perf_counter() > deadline:
                return
            await work(item)
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - t0


async def baseline_insert(pool: asyncpg.Pool, m: InboundMessage, who: Who) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO messages (conversation_id, channel_id, external_id, direction, text, status)"
            " VALUES ($1, $2, $3, 'in', $4, 'received')",
            who.conversation_id,
            m.channel_id,
            m.external_id,
            m.text,
        )


async def run(args: argparse.Namespace) -> JSONDict:
    rng = random.Random(9)
    result: JSONDict = {"benchmark": "ingest", "machine": machine(), "params": vars(args).copy()}
    async with scratch_database("ingest") as url:
        result["machine"]["postgres"] = await server_version(url)
        print(f"seeding {args.seed_scale} (≈{int(args.seed_scale * 10_000_000):,} messages) …", flush=True)
        result["seed"] = await seed(url, args.seed_scale, quiet=True)
        print(f"  {result['seed']}")
        async with db.open_pool(url, min_size=args.pool, max_size=args.pool) as pool:
            who = await senders(pool, known=args.senders // 2, new=args.senders // 2, rng=rng)
            rounds: list[JSONDict] = []
            sampler = WaitSampler(ADMIN_URL, urlsplit(url).path.lstrip("/"))
            # Warm-up: fills caches and the pool on both paths.
            warm = messages(who, 2000, tag="warm", rng=rng)
            await drive(warm, lambda mw: ingest(pool, mw[0]), args.concurrency, 30)
            await drive(messages(who, 2000, tag="warmb", rng=rng), lambda mw: baseline_insert(pool, *mw), args.concurrency, 30)
            for r in range(args.rounds):
                base = messages(who, args.per_round * 3, tag=f"b{r}", rng=rng)
                n_b, s_b = await drive(base, lambda mw: baseline_insert(pool, *mw), args.concurrency, args.seconds)
                batch = messages(who, args.per_round, tag=f"i{r}", rng=rng)
                async with sampler.running():
                    n_i, s_i = await drive(batch, lambda mw: ingest(pool, mw[0]), args.concurrency, args.seconds)
                row = {
                    "round": r + 1,
                    "baseline_msgs": n_b, "baseline_per_s": round(n_b / s_b),
                    "ingest_msgs": n_i, "ingest_per_s": round(n_i / s_i),
                    "ratio": round((n_i / s_i) / (n_b / s_b), 3),
                    "loadavg": loadavg()[0],
                }
                rounds.append(row)
                print(
                    f"round {r + 1}: baseline {row['baseline_per_s']:>6,} msg/s   ingest {row['ingest_per_s']:>6,} msg/s"
                    f"   ratio {row['ratio']:.2f}   (load {row['loadavg']})",
                    flush=True,
                )
            events = await pool.fetchval("SELECT count(*) FROM events WHERE type = 'message.created'")
            total_messages = await pool.fetchval("SELECT count(*) FROM messages")
    ingest_med = median([r["ingest_per_s"] for r in rounds])
    base_med = median([r["baseline_per_s"] for r in rounds])
    result["rounds"] = rounds
    result["figures"] = {
        "ingest_msgs_per_s_median": ingest_med,
        "baseline_msgs_per_s_median": base_med,
        "ratio_median": round(median([r["ratio"] for r in rounds]), 3),
        "target_msgs_per_s": 5000,
        "meets_target": ingest_med >= 5000,
        "db_wait_profile_during_ingest": sampler.report(),
        "message_created_events": events,
        "messages_in_store_after": total_messages,
    }
    f = result["figures"]
    print(
        f"\ningest {ingest_med:,.0f} msg/s vs baseline {base_med:,.0f} msg/s (median of {len(rounds)} rounds),"
        f" ratio {f['ratio_median']:.2f}; target ≥ 5,000 msg/s: {'met' if f['meets_target'] else 'MISSED'}"
    )
    print(f"database backends during ingest (average count per state): {f['db_wait_profile_during_ingest']}")
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed-scale", type=float, default=0.1, help="0.1 = 100 k conversations / ~1 M messages")
    p.add_argument("--concurrency", type=int, default=64, help="senders in flight at once")
    p.add_argument("--pool", type=int, default=20, help="connections (the hub's pool holds 20)")
    p.add_argument("--senders", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-round", type=int, default=20_000, help="ingest messages per round")
    p.add_argument("--seconds", type=float, default=20.0, help="cap on each timed phase")
    args = p.parse_args()
    write_result("ingest", asyncio.run(run(args)))


if __name__ == "__main__":
    main()
