"""`python -m bench.reads`: inbox list, client card and full-text search at 1 M conversations / 10 M messages.

Seeds a scratch database with bench/seed.py (`--scale 1`: 1 M conversations,
~10 M messages; takes several minutes — or point `--database-url` at a database
seeded once with `python -m bench.seed`), starts a hub process and times GET
requests one at a time, as an agent's browser makes them:

- list: `/api/v1/conversations` first page; filtered (status, channel, assignee
  and combinations); the next page via the cursor;
- card: `/api/v1/clients/{id}` of the client of a random conversation (so
  clients with many conversations come up as often as they do in an inbox);
- search: `/api/v1/conversations?q=` with English and Russian words, phrases,
  order numbers and client names;
- history: the managers' `/api/v1/search?q=` (messages and notes, newest first)
  with the same words, unfiltered, `status=open` or `channel=email`.

Baseline in the same run: the same inbox functions called directly on a pool
in this process (SQL + row → JSON, no HTTP, no auth), so the table shows what
the web layer adds. `--ab` adds, for the list, the one-statement query the list
used before (CONVERSATION_SELECT with the filters, ORDER BY and LIMIT), timed in
turn with today's page-then-decorate on the same pool. EXPLAIN (ANALYZE,
BUFFERS, SUMMARY) of one query per kind goes into the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from bench.common import (
    HubProcess,
    JSONDict,
    agent_token,
    loadavg,
    machine,
    pct,
    scratch_database,
    server_version,
    summary_ms,
    write_result,
)
from bench.seed import AGENTS, seed
from hub import db
from inbox.clients import client_card
from inbox.conversations import decode_cursor, list_conversations
from inbox.search import SearchFilters, search
from inbox.views import CONVERSATION_SELECT, conversation_json

FILTERS: list[dict[str, str]] = [
    {"status": "open"},
    {"status": "pending"},
    {"channel": "telegram"},
    {"channel": "email", "status": "open"},
    {"assignee": "AGENT"},
    {"assignee": "AGENT", "status": "open"},
    {"assignee": "none"},
    {"status": "snoozed", "channel": "widget"},
]
SEARCHES = [
    "refund", "password", "parcel tracking", "subscription", "invoice", "coffee machine", "\"promo code\"",
    "посылка", "пароль", "подписку", "возврат", "кофемашину", "доставка адрес", "лицензий",
    "order 4217", "заказ 88123", "Иванов", "Taylor", "warranty", "курьер",
]
HISTORY_FILTERS: list[dict[str, str]] = [{}, {"status": "open"}, {"channel": "email"}]
TARGETS_MS = {"list_first_page": 20, "list_filtered": 20, "list_next_page": 20, "card": 20, "search": 100, "history": 100}
SLOW_KINDS = ("search", "history")  # fewer requests: each may run to --timeout


def params_for(kind: str, rng: random.Random, state: JSONDict) -> tuple[str, dict[str, str]]:
    if kind == "list_first_page":
        return "/api/v1/conversations", {}
    if kind == "list_filtered":
        f = dict(rng.choice(FILTERS))
        if f.get("assignee") == "AGENT":
            f["assignee"] = str(rng.randint(1, AGENTS))
        return "/api/v1/conversations", f
    if kind == "list_next_page":
        return "/api/v1/conversations", {"cursor": state["cursor"]}
    if kind == "card":
        return f"/api/v1/clients/{rng.choice(state['client_ids'])}", {}
    if kind == "history":
        return "/api/v1/search", {"q": rng.choice(SEARCHES), **rng.choice(HISTORY_FILTERS)}
    return "/api/v1/conversations", {"q": rng.choice(SEARCHES)}


async def direct(pool: asyncpg.Pool, path: str, params: dict[str, str]) -> object:
    if path.startswith("/api/v1/clients/"):
        return await client_card(pool, int(path.rsplit("/", 1)[1]))
    if path == "/api/v1/search":
        return await search(pool, SearchFilters(q=params["q"], status=params.get("status"), channel=params.get("channel")))
    assignee: Any = params.get("assignee")
    if assignee and assignee != "none":
        assignee = int(assignee)
    return await list_conversations(
        pool, status=params.get("status"), channel=params.get("channel"), assignee=assignee,
        q=params.get("q"), cursor=params.get("cursor"),
    )


async def one_statement_list(pool: asyncpg.Pool, path: str, params: dict[str, str]) -> object:
    """The list as it was before page-then-decorate: one statement, eight relations, every filter in it."""
    where: list[str] = []
    args: list[object] = []

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if params.get("status"):
        where.append(f"c.status = {arg(params['status'])}")
    if params.get("channel"):
        where.append(f"ch.kind = {arg(params['channel'])}")
    if params.get("assignee") == "none":
        where.append("c.assignee_id IS NULL")
    elif params.get("assignee"):
        where.append(f"c.assignee_id = {arg(int(params['assignee']))}")
    if params.get("cursor"):
        ts, cid = decode_cursor(params["cursor"], 2)
        where.append(f"(c.last_activity_at, c.id) < ({arg(dt.datetime.fromisoformat(ts))}, {arg(int(cid))})")
    sql = CONVERSATION_SELECT + (" WHERE " + " AND ".join(where) if where else "")
    rows = await pool.fetch(sql + f" ORDER BY c.last_activity_at DESC, c.id DESC LIMIT {arg(51)}", *args)
    return [conversation_json(r) for r in rows[:50]]


async def timed(n: int, call: Callable[[], Awaitable[object]], pool: asyncpg.Pool, timeout: float) -> tuple[list[float], int]:
    """Latencies of `n` calls, and how many hit `timeout` (counted at the timeout: a lower bound)."""
    out = []
    timeouts = 0
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(call(), timeout)
        except (TimeoutError, httpx.TimeoutException, asyncpg.QueryCanceledError):
            timeouts += 1
            # The hub's query runs on after we gave up: stop it so it doesn't slow the next request.
            # Terminate, not cancel: the search plan's SubPlan loop does not answer a cancel for minutes.
            await pool.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state = 'active' AND pid <> pg_backend_pid() AND now() - query_start > $1::interval",
                dt.timedelta(seconds=timeout / 2),
            )
        out.append(time.perf_counter() - t0)
    return out, timeouts


async def explain(pool: asyncpg.Pool) -> JSONDict:
    """One EXPLAIN ANALYZE per query kind, for the README's notes."""
    plans: JSONDict = {}
    page = [r["id"] for r in await pool.fetch(
        "SELECT id FROM conversations ORDER BY last_activity_at DESC, id DESC LIMIT 50")]
    busiest = await pool.fetchval("SELECT client_id FROM conversations GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
    order = " ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 51"
    probes: dict[str, tuple[str, list[object]]] = {
        "list_page_first": ("SELECT c.id, c.last_activity_at FROM conversations c" + order, []),
        "list_page_status_open": ("SELECT c.id, c.last_activity_at FROM conversations c WHERE c.status = $1" + order, ["open"]),
        "list_decorate_page": (CONVERSATION_SELECT + " WHERE c.id = ANY($1::bigint[])", [page]),
        "list_one_statement_before": (CONVERSATION_SELECT + order, []),
        "list_one_statement_before_status_open": (CONVERSATION_SELECT + " WHERE c.status = $1" + order, ["open"]),
        "card_page_of_busiest_client": (
            "SELECT (SELECT array_agg(id ORDER BY id DESC) FROM (SELECT id FROM conversations WHERE client_id = $1"
            " ORDER BY id DESC LIMIT 51) p) AS ids, (SELECT count(*) FROM conversations WHERE client_id = $1) AS total",
            [busiest],
        ),
        "card_before_all_conversations_of_busiest_client": (
            CONVERSATION_SELECT + " WHERE c.client_id = $1 ORDER BY c.id DESC", [busiest],
        ),
    }
    async with pool.acquire() as conn:
        for name, (sql, args) in probes.items():
            try:
                async with conn.transaction():
                    await conn.execute("SET LOCAL statement_timeout = '20s'")
                    rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, SUMMARY) " + str(sql), *list(args))
                plans[name] = [r[0] for r in rows]
            except asyncpg.QueryCanceledError:
                rows = await conn.fetch("EXPLAIN " + str(sql), *list(args))
                plans[name] = ["(EXPLAIN ANALYZE ran past 20 s; plan only)"] + [r[0] for r in rows]
    return plans


async def run(args: argparse.Namespace) -> JSONDict:
    rng = random.Random(5)
    result: JSONDict = {"benchmark": "reads", "machine": machine(), "params": vars(args).copy()}
    if args.database_url:
        result["seed"] = {"database_url": args.database_url}
        result["machine"]["postgres"] = await server_version(args.database_url)
        await measure(args.database_url, args, rng, result)
    else:
        async with scratch_database("reads") as url:
            result["machine"]["postgres"] = await server_version(url)
            print(f"seeding scale {args.scale} …", flush=True)
            result["seed"] = await seed(url, args.scale)
            await measure(url, args, rng, result)
    return result


async def measure(url: str, args: argparse.Namespace, rng: random.Random, result: JSONDict) -> None:
    async with db.open_pool(url, min_size=2, max_size=4) as pool, HubProcess(url) as hub:
        await pool.execute("SELECT 1")
        counts = await pool.fetchrow(
            "SELECT (SELECT count(*) FROM conversations) AS conversations,"
            " (SELECT reltuples::bigint FROM pg_class WHERE relname = 'messages') AS messages_estimate"
        )
        result["data"] = dict(counts)
        token = await agent_token(pool)
        n_conv = counts["conversations"]
        picks = [rng.randint(1, n_conv) for _ in range(args.requests)]
        client_ids = [r["client_id"] for r in await pool.fetch(
            "SELECT client_id FROM conversations WHERE id = ANY($1::bigint[])", picks)]
        async with httpx.AsyncClient(base_url=hub.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            first = (await http.get("/api/v1/conversations")).json()
            state: JSONDict = {"cursor": first["next_cursor"], "client_ids": client_ids}
            figures: JSONDict = {}
            for kind in args.only or list(TARGETS_MS):
                async def via_http(kind: str = kind) -> object:
                    path, params = params_for(kind, rng, state)
                    r = await http.get(path, params=params)
                    if r.status_code != 200:
                        raise RuntimeError(f"{path} {params}: {r.status_code} {r.text[:200]}")
                    return r

                async def via_pool(kind: str = kind) -> object:
                    path, params = params_for(kind, rng, state)
                    return await direct(pool, path, params)

                n = args.requests if kind not in SLOW_KINDS else args.search_requests
                await timed(args.warmup if kind not in SLOW_KINDS else 2, via_http, pool, args.timeout)
                http_t, http_timeouts = await timed(n, via_http, pool, args.timeout)
                pool_t, pool_timeouts = await timed(n, via_pool, pool, args.timeout)
                h, b = summary_ms(http_t), summary_ms(pool_t)
                target = TARGETS_MS[kind]
                figures[kind] = {
                    "http": h, "direct_baseline": b, "target_p95_ms": target,
                    "timeouts_http": http_timeouts, "timeouts_direct": pool_timeouts, "timeout_s": args.timeout,
                    "meets_target": pct([t * 1000 for t in http_t], 95) < target, "loadavg": loadavg()[0],
                }
                if args.ab and kind.startswith("list_"):
                    figures[kind]["ab"] = await ab(pool, kind, rng, state, n)
                    print(f"{'':16} A/B direct, alternating: {figures[kind]['ab']}", flush=True)
                print(
                    f"{kind:16} p50 {h['p50_ms']:7.1f} ms  p95 {h['p95_ms']:7.1f} ms  (direct p50 {b['p50_ms']:6.1f}"
                    f" p95 {b['p95_ms']:6.1f})  target p95 < {target} ms: {'met' if figures[kind]['meets_target'] else 'MISSED'}"
                    f"  (load {loadavg()[0]}){f'; {http_timeouts} timed out at {args.timeout:.0f}s' if http_timeouts else ''}",
                    flush=True,
                )
        result["figures"] = figures
        result["explain"] = await explain(pool)


async def ab(pool: asyncpg.Pool, kind: str, rng: random.Random, state: JSONDict, n: int) -> JSONDict:
    """p50/p95 of the one-statement list (before) and list_conversations (after), called in turn."""
    times: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(n):
        path, params = params_for(kind, rng, state)
        calls = [("before", one_statement_list), ("after", direct)]
        for name, call in calls if i % 2 else calls[::-1]:
            t0 = time.perf_counter()
            await call(pool, path, params)
            times[name].append(time.perf_counter() - t0)
    return {name: {k: v for k, v in summary_ms(t).items() if k in ("p50_ms", "p95_ms")} for name, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.reads", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="seed size: 1.0 = 1 M conversations / ~10 M messages")
    p.add_argument("--database-url", help="use this already seeded database (bench.seed) instead of seeding one")
    p.add_argument("--requests", type=int, default=200, help="timed requests per query kind")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--only", nargs="+", choices=list(TARGETS_MS), help="time only these query kinds")
    p.add_argument("--search-requests", type=int, default=40, help="timed searches (each may run to --timeout)")
    p.add_argument("--ab", action="store_true", help="time the list's former one-statement query in turn with today's")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds before a request counts as timed out")
    write_result("reads", asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
