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
conversation distribution). Also measured in the same rounds: the same INSERTs
through the same group commit as ingest (`insert-grouped`: what batching alone
buys the plain loop), and ingest with one transaction per message
(`ingest-alone`: the path before group commit), and ingest storing its events
without `pg_notify` (`ingest-no-notify`: the most that moving the NOTIFY out of
the transaction could buy; not a correct system, a measuring stick). Rounds alternate the variants
and the medians are reported, so load from other processes hits all alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar
from unittest import mock
from urllib.parse import urlsplit

import asyncpg

from bench.common import ADMIN_URL, JSONDict, loadavg, machine, median, scratch_database, server_version, write_result
from bench.dbwait import WaitSampler
from bench.seed import seed
from bench.workload import Who, messages, senders
from hub import db, events, group_commit
from hub.group_commit import GroupCommit
from hub.types import InboundMessage
from inbox import ingest as ingest_module
from inbox.ingest import ingest, ingest_alone

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
        await _insert(conn, [(m, who)])


async def _insert(conn: asyncpg.Connection, items: Sequence[tuple[InboundMessage, Who]]) -> list[None]:
    for m, who in items:
        await conn.execute(
            "INSERT INTO messages (conversation_id, channel_id, external_id, direction, text, status)"
            " VALUES ($1, $2, $3, 'in', $4, 'received')",
            who.conversation_id,
            m.channel_id,
            m.external_id,
            m.text,
        )
    return [None] * len(items)


VARIANTS = ("insert", "insert-grouped", "ingest-alone", "ingest", "ingest-no-notify")


def events_without_notify() -> contextlib.AbstractContextManager[object]:
    """Ingest storing its events without pg_notify: the most a NOTIFY moved out of the transaction could buy."""
    return mock.patch.object(ingest_module, "publish_many", functools.partial(events.publish_many, notify=False))


def workers(pool: asyncpg.Pool) -> dict[str, Callable[[tuple[InboundMessage, Who]], Awaitable[object]]]:
    grouped: GroupCommit[tuple[InboundMessage, Who], None] = GroupCommit(
        pool, _insert, max_items=ingest_module.MAX_BATCH, max_transactions=ingest_module.MAX_TRANSACTIONS
    )
    return {
        "insert": lambda mw: baseline_insert(pool, *mw),
        "insert-grouped": lambda mw: grouped.submit((mw,)),
        "ingest-alone": lambda mw: ingest_alone(pool, mw[0]),
        "ingest": lambda mw: ingest(pool, mw[0]),
        "ingest-no-notify": lambda mw: ingest(pool, mw[0]),
    }


async def run(args: argparse.Namespace) -> JSONDict:
    rng = random.Random(9)
    ingest_module.MAX_BATCH = args.max_batch
    ingest_module.MAX_TRANSACTIONS = args.max_transactions
    result: JSONDict = {"benchmark": "ingest", "machine": machine(), "params": vars(args).copy()}
    variants = [v for v in VARIANTS if v in args.variants]
    async with scratch_database("ingest") as url:
        result["machine"]["postgres"] = await server_version(url)
        print(f"seeding {args.seed_scale} (≈{int(args.seed_scale * 10_000_000):,} messages) …", flush=True)
        result["seed"] = await seed(url, args.seed_scale, quiet=True)
        print(f"  {result['seed']}")
        async with db.open_pool(url, min_size=args.pool, max_size=args.pool) as pool:
            who = await senders(pool, known=args.senders // 2, new=args.senders // 2, rng=rng)
            work = workers(pool)
            rounds: list[JSONDict] = []
            sampler = WaitSampler(ADMIN_URL, urlsplit(url).path.lstrip("/"))
            for v in variants:  # warm-up: fills caches and the pool on every path
                if v == "ingest-no-notify":
                    continue
                await drive(messages(who, 1000, tag=f"warm-{v}", rng=rng), work[v], args.concurrency, 30)
            for r in range(args.rounds):
                row: JSONDict = {"round": r + 1}
                for v in variants if r % 2 == 0 else variants[::-1]:
                    batch = messages(who, args.per_round * (3 if v.startswith("insert") else 1), tag=f"{v}{r}", rng=rng)
                    before = (group_commit.totals.transactions, group_commit.totals.items)
                    quiet: contextlib.AbstractContextManager[object] = (
                        events_without_notify() if v == "ingest-no-notify" else contextlib.nullcontext()
                    )
                    async with sampler.running() if v == "ingest" else contextlib.nullcontext():
                        with quiet:
                            n, secs = await drive(batch, work[v], args.concurrency, args.seconds)
                    row[v] = round(n / secs)
                    txs = group_commit.totals.transactions - before[0]
                    if txs:
                        row[f"{v}_mean_batch"] = round((group_commit.totals.items - before[1]) / txs, 1)
                row["loadavg"] = loadavg()[0]
                for v in variants[1:]:
                    row[f"{v}_ratio"] = round(row[v] / row[variants[0]], 3)
                rounds.append(row)
                print(
                    f"round {r + 1}: " + "   ".join(f"{v} {row[v]:>6,}/s" for v in variants)
                    + f"   (load {row['loadavg']})  " + str({k: x for k, x in row.items() if "batch" in k}),
                    flush=True,
                )
            events = await pool.fetchval("SELECT count(*) FROM events WHERE type = 'message.created'")
            total_messages = await pool.fetchval("SELECT count(*) FROM messages")
    result["rounds"] = rounds
    figures: JSONDict = {f"{v}_msgs_per_s_median": median([r[v] for r in rounds]) for v in variants}
    for v in variants[1:]:
        figures[f"{v}_ratio_median"] = round(median([r[f"{v}_ratio"] for r in rounds]), 3)
    figures.update(
        target_msgs_per_s=5000,
        meets_target=figures.get("ingest_msgs_per_s_median", 0) >= 5000,
        db_wait_profile_during_ingest=sampler.report(),
        message_created_events=events,
        messages_in_store_after=total_messages,
    )
    result["figures"] = figures
    print(f"\nmedians of {len(rounds)} rounds: " + ", ".join(f"{k} {x}" for k, x in figures.items() if "median" in k))
    print(f"target ≥ 5,000 msg/s: {'met' if figures['meets_target'] else 'MISSED'}")
    print(f"database backends during ingest (average count per state): {figures['db_wait_profile_during_ingest']}")
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
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                   help="what to measure (the first is the baseline of the ratios)")
    p.add_argument("--max-batch", type=int, default=ingest_module.MAX_BATCH, help="messages per shared transaction")
    p.add_argument("--max-transactions", type=int, default=ingest_module.MAX_TRANSACTIONS,
                   help="shared transactions in flight")
    args = p.parse_args()
    write_result("ingest", asyncio.run(run(args)))


if __name__ == "__main__":
    main()
