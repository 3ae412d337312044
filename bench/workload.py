"""Inbound traffic shaped like a real inbox: reused senders (a few write a lot), two languages."""

from __future__ import annotations

import random
from dataclasses import dataclass

import asyncpg

from bench.seed import EN, RU
from hub.types import InboundMessage, Sender


@dataclass(frozen=True)
class Who:
    channel_id: int
    external_id: str
    name: str
    conversation_id: int | None  # a seeded conversation of theirs (the baseline writes there)


async def senders(pool: asyncpg.Pool, *, known: int, new: int, rng: random.Random) -> list[Who]:
    """`known` senders already in the store (with a conversation) and `new` first-time senders, shuffled."""
    rows = await pool.fetch(
        "SELECT i.channel_id, i.external_id, i.display_name,"
        " (SELECT max(c.id) FROM conversations c WHERE c.identity_id = i.id) AS conversation_id"
        " FROM identities i WHERE i.id % 7 = 3 LIMIT $1",
        known,
    )
    who = [Who(r["channel_id"], r["external_id"], r["display_name"], r["conversation_id"]) for r in rows]
    fallback = [w.conversation_id for w in who if w.conversation_id is not None]
    for n in range(new):
        channel = rng.choice((1, 1, 2, 3, 4))
        who.append(Who(channel, f"new-{rng.getrandbits(48):x}-{n}", f"New sender {n}", rng.choice(fallback)))
    rng.shuffle(who)
    return who


def text(rng: random.Random) -> str:
    words = RU if rng.random() < 0.35 else EN
    return f"{rng.choice(words)}, {rng.choice(words)} #{rng.randrange(100000)}"


def skewed(rng: random.Random, population: int) -> int:
    """An index into `population` where low indexes come up far more often (a few chatty senders)."""
    return min(population - 1, int(population * rng.random() ** 2.5))


def messages(who: list[Who], count: int, *, tag: str, rng: random.Random) -> list[tuple[InboundMessage, Who]]:
    out = []
    for i in range(count):
        w = who[skewed(rng, len(who))]
        m = InboundMessage(
            channel_id=w.channel_id,
            external_id=f"{tag}-{i}",
            sender=Sender(external_id=w.external_id, display_name=w.name),
            text=text(rng),
        )
        out.append((m, w))
    return out
