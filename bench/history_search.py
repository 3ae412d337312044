"""`python -m bench.history_search`: managers' history search on the 100,000-message seed of tests/test_search.py.

Method: the seed (Russian and English messages with known word families,
notes, tags, statuses) in a scratch database; then `--requests` first pages of
50 hits with highlights, query and filter drawn at random (fixed seed) from a
list covering single words in both languages, `or`, `-word`, and channel,
status, tag and agent filters. Baseline in the same run: the same queries
through the existing inbox search (`/conversations?q=`, conversations only).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from bench.common import machine, scratch_database, server_version, summary_ms, write_result
from hub import db
from inbox.conversations import list_conversations
from inbox.search import SearchFilters, search
from tests.test_search import _seed

QUERIES = ["заказы", "доставку", "refunded", "parcels", "оплата or invoices", "возврат -parcel", "эскалация", "заказчик"]


async def main(args: argparse.Namespace) -> None:
    async with scratch_database("history") as url, db.open_pool(url, min_size=1, max_size=4) as pool:
        started = time.perf_counter()
        seed = await _seed(pool, None)  # type: ignore[arg-type]  # no hub needed to seed
        seeded_s = time.perf_counter() - started
        filters: list[dict[str, object]] = [
            {}, {"channel": "email"}, {"status": "resolved"}, {"tag": "vip"}, {"agent_id": seed.agents[1]},
        ]
        rng = random.Random(1)
        draws = [(rng.choice(QUERIES), rng.choice(filters)) for _ in range(args.requests)]
        for q, f in draws[:20]:  # warm-up
            await search(pool, SearchFilters(q=q, **f), limit=50)  # type: ignore[arg-type]
        history, baseline = [], []
        for q, f in draws:
            t = time.perf_counter()
            await search(pool, SearchFilters(q=q, **f), limit=50)  # type: ignore[arg-type]
            history.append(time.perf_counter() - t)
            t = time.perf_counter()
            await list_conversations(pool, q=q, limit=50)
            baseline.append(time.perf_counter() - t)
        result = {
            "machine": {**machine(), "postgres": await server_version(url)},
            "seed": {"messages": await pool.fetchval("SELECT count(*) FROM messages"),
                     "notes": await pool.fetchval("SELECT count(*) FROM notes"), "seconds": round(seeded_s, 1)},
            "history_search_first_page": summary_ms(history),
            "baseline_conversations_q": summary_ms(baseline),
        }
        for name in ("history_search_first_page", "baseline_conversations_q"):
            print(name, result[name])
        write_result("history_search", result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
