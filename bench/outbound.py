"""`python -m bench.outbound`: replies/s through `send_reply` → outbox → dispatcher → a loopback channel.

A hub runs in this process (`hub.runtime.running_hub`; its outbox dispatcher
is the code under test). The channel is a loopback connector (bench-only,
registered for kind `loopback`) that sends nothing over a network but applies
the same token-bucket limiter the Telegram connector uses (per chat and per
bot, `connectors.ratelimit.acquire_all` with the 5 s hand-back to the outbox).

Scenarios, each with replies spread over `--chats` conversations:
- `no-limit`: the dispatcher's own ceiling (limiter effectively off);
- `telegram`: Telegram's limits (1/s per chat, burst 3; 30/s per bot) — the
  rate must come out at ~30/s, never above;
- `per-chat-only`: 1/s per chat, burst 3, no bot-wide cap — bursts beyond 3 per
  chat go back to the outbox and are retried later.

Each reports the enqueue rate (agents' `send_reply` transactions, 16 at a time,
hub stopped) and the drain rate (hub started → every reply sent).

Baseline in the same run: the plainest loop that does the dispatcher's database
work — claim 50 rows, then per reply one transaction `UPDATE messages SET
status = 'sent'` + `DELETE FROM outbox` — no connector, no events.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import asyncpg

from bench.common import JSONDict, loadavg, machine, scratch_database, server_version, write_result
from connectors.ratelimit import KeyedRateLimiter, RateLimited, TokenBucket, acquire_all
from connectors.registry import register
from hub import db
from hub.config import Config
from hub.errors import RetryAfter
from hub.runtime import running_hub
from hub.types import BlobStore, ChannelAccount, InboundMessage, InboundSink, OutboundMessage, Sender, SendResult
from inbox.agents import add_agent
from inbox.ingest import ingest
from inbox.reply import send_reply

MAX_LOCAL_WAIT = 5.0  # as connectors/telegram.py


class BenchLoopback:
    """Sends nowhere, but waits on the limiter exactly as the Telegram connector does."""

    kind: ClassVar[str] = "loopback"
    per_chat: ClassVar[tuple[float, float]] = (1e6, 1e6)
    per_bot: ClassVar[tuple[float, float]] = (1e6, 1e6)
    sent: ClassVar[int] = 0
    instances: ClassVar[int] = 0  # more than one per hub start means each has its own "per bot" bucket

    def __init__(self, account: ChannelAccount) -> None:
        type(self).instances += 1
        self.account = account
        self._chats = KeyedRateLimiter(*self.per_chat)
        self._bot = TokenBucket(*self.per_bot)

    @classmethod
    async def check(cls, account: ChannelAccount) -> dict[str, Any]:
        return {}

    async def run(self, sink: InboundSink) -> None:
        await asyncio.Event().wait()

    async def send(self, message: OutboundMessage, blobs: BlobStore) -> SendResult:
        try:
            await acquire_all([self._chats.bucket(message.recipient), self._bot], max_wait=MAX_LOCAL_WAIT)
        except RateLimited as e:
            raise RetryAfter("rate limit (held back by omnihub)", e.delay) from None
        type(self).sent += 1
        return SendResult(external_id=f"bench-{message.message_id}")

    async def close(self) -> None:
        return None


register(BenchLoopback)

SCENARIOS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "no-limit": ((1e6, 1e6), (1e6, 1e6)),
    "telegram": ((1.0, 3.0), (30.0, 30.0)),
    "per-chat-only": ((1.0, 3.0), (1e6, 1e6)),
}


async def setup(pool: asyncpg.Pool, chats: int) -> tuple[int, list[int], JSONDict]:
    channel_id = await pool.fetchval(
        "INSERT INTO channels (kind, name, enabled) VALUES ('loopback', 'bench loopback', false) RETURNING id"
    )
    agent = await add_agent(pool, email="replier@example.com", name="Replier", role="agent", password="bench-password")
    conversations = []
    for i in range(chats):
        r = await ingest(pool, InboundMessage(channel_id=channel_id, external_id=f"hi-{i}",
                                              sender=Sender(str(500000 + i), f"Chat {i}"), text="hello"))
        conversations.append(r.conversation_id)
    return channel_id, conversations, agent


async def enqueue(pool: asyncpg.Pool, conversations: list[int], agent: JSONDict, n: int, rng: random.Random) -> float:
    it = iter(range(n))
    targets = [rng.choice(conversations) for _ in range(n)]

    async def worker() -> None:
        for i in it:
            await send_reply(pool, conversation_id=targets[i], agent=agent, text=f"reply {i}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(16)))
    return time.perf_counter() - t0


async def drain_with_hub(url: str, pool: asyncpg.Pool, expected: int, timeout: float) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="omnihub-bench-") as tmp:
        cfg = Config(database_url=url, data_dir=Path(tmp), host="127.0.0.1", port=9, secret="bench")
        t0 = time.perf_counter()
        async with running_hub(cfg, url, connectors=False):
            deadline = t0 + timeout
            while time.perf_counter() < deadline:
                left = await pool.fetchval("SELECT count(*) FROM outbox")
                if left == 0:
                    break
                await asyncio.sleep(0.05)
            took = time.perf_counter() - t0
    sent = await pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'sent'")
    return took, sent


async def baseline_drain(pool: asyncpg.Pool) -> tuple[float, int]:
    done = 0
    t0 = time.perf_counter()
    while True:
        rows = await pool.fetch(
            "UPDATE outbox SET locked_until = now() + interval '60 seconds', attempts = attempts + 1"
            " WHERE id IN (SELECT id FROM outbox WHERE next_attempt_at <= now()"
            " AND (locked_until IS NULL OR locked_until < now()) ORDER BY id LIMIT 50 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, message_id"
        )
        if not rows:
            break

        async def one(r: asyncpg.Record) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("UPDATE messages SET status = 'sent', sent_at = now() WHERE id = $1", r["message_id"])
                await conn.execute("DELETE FROM outbox WHERE id = $1", r["id"])

        await asyncio.gather(*(one(r) for r in rows))
        done += len(rows)
    return time.perf_counter() - t0, done


async def run(args: argparse.Namespace) -> JSONDict:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("hub.outbox").setLevel(logging.WARNING)
    rng = random.Random(17)
    result: JSONDict = {"benchmark": "outbound", "machine": machine(), "params": vars(args).copy(), "scenarios": {}}
    async with scratch_database("outbound") as url:
        result["machine"]["postgres"] = await server_version(url)
        async with db.open_pool(url, min_size=4, max_size=20) as pool:
            _channel, conversations, agent = await setup(pool, args.chats)
            # Baseline first: the same number of replies, drained by the plain loop.
            t_enq = await enqueue(pool, conversations, agent, args.replies, rng)
            t_base, n_base = await baseline_drain(pool)
            result["baseline"] = {
                "replies": n_base, "enqueue_per_s": round(args.replies / t_enq), "drain_per_s": round(n_base / t_base),
            }
            print(f"baseline        : enqueue {result['baseline']['enqueue_per_s']:>5}/s,"
                  f" plain claim+update+delete {result['baseline']['drain_per_s']:>5}/s", flush=True)
            for name in args.scenarios:
                BenchLoopback.per_chat, BenchLoopback.per_bot = SCENARIOS[name]
                n = args.telegram_replies if name != "no-limit" else args.replies
                await pool.execute("UPDATE messages SET status = 'delivered' WHERE direction = 'out'")
                t_enq = await enqueue(pool, conversations, agent, n, rng)
                before, made = BenchLoopback.sent, BenchLoopback.instances
                took, sent = await drain_with_hub(url, pool, n, args.timeout)
                row = {
                    "replies": n, "sent": sent, "connector_calls_ok": BenchLoopback.sent - before,
                    "connector_instances": BenchLoopback.instances - made,
                    "enqueue_per_s": round(n / t_enq), "drain_per_s": round(sent / took, 1),
                    "drain_seconds": round(took, 2), "loadavg": loadavg()[0],
                }
                result["scenarios"][name] = row
                print(f"{name:16}: enqueue {row['enqueue_per_s']:>5}/s, drained {sent}/{n} at {row['drain_per_s']:>7}/s"
                      f" in {took:.1f}s; {row['connector_instances']} connector instance(s) (load {row['loadavg']})",
                      flush=True)
    nl = result["scenarios"].get("no-limit")
    if nl:
        result["figures"] = {
            "replies_per_s_no_limit": nl["drain_per_s"], "baseline_per_s": result["baseline"]["drain_per_s"],
            "ratio": round(nl["drain_per_s"] / result["baseline"]["drain_per_s"], 3),
        }
        print(f"\ndispatcher {nl['drain_per_s']}/s vs plain loop {result['baseline']['drain_per_s']}/s"
              f" (ratio {result['figures']['ratio']:.2f})")
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.outbound", description=__doc__.split("\n\n")[0])
    p.add_argument("--replies", type=int, default=5000)
    p.add_argument("--telegram-replies", type=int, default=600, help="replies in the rate-limited scenarios")
    p.add_argument("--chats", type=int, default=500)
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    p.add_argument("--timeout", type=float, default=120.0)
    write_result("outbound", asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
