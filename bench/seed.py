"""`python -m bench.seed`: a large, realistic inbox generated in SQL.

At `--scale 1`: 1 M conversations, ~10 M messages, 600 k clients, 700 k
identities on four channels (Telegram, widget, e-mail, VK), 20 agents. Shapes:
a third of clients write in Russian, the rest in English; a few clients own many
conversations (identities and conversations pick their owner with a cubic skew);
conversations hold 1-200 messages (exponential, mean ~10); recent conversations
are open or pending, old ones mostly resolved; 5 % of clients are VIP.

Rows come from `generate_series` with a deterministic hash per row, so a run
is reproducible; messages go in on two connections at once (two cores), with
the big secondary indexes dropped first and rebuilt after.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

from bench.common import JSONDict
from hub import db

AGENTS = 20
CHANNELS = (("telegram", "Support bot"), ("widget", "Website"), ("email", "Support mail"), ("vk", "Community"))

EN = [
    "Hello, I have a problem with my order",
    "where is my parcel, the tracking number does not work",
    "I was charged twice for the same subscription",
    "can you help me reset my password please",
    "the app crashes when I open the payment page",
    "thank you, that solved it",
    "I would like to return the headphones I bought last week",
    "delivery is late again, this is the third time",
    "how do I change the shipping address",
    "your courier did not call before arriving",
    "the invoice has the wrong company name",
    "is there a discount for annual billing",
    "I cannot log in since the last update",
    "please cancel my subscription from next month",
    "the refund has not arrived on my card yet",
    "which warranty applies to the coffee machine",
    "we need twenty more licenses for our team",
    "the promo code says it has expired",
    "could you send me the receipt by email",
    "great service, thanks a lot",
]
RU = [
    "Здравствуйте, у меня проблема с заказом",
    "где моя посылка, трек-номер не работает",
    "с меня дважды списали оплату за подписку",
    "помогите, пожалуйста, восстановить пароль",
    "приложение вылетает на странице оплаты",
    "спасибо, всё заработало",
    "хочу вернуть наушники, купленные на прошлой неделе",
    "доставка опять задерживается, уже третий раз",
    "как изменить адрес доставки",
    "курьер не позвонил перед приездом",
    "в счёте указано неверное название компании",
    "есть ли скидка при оплате за год",
    "не могу войти после последнего обновления",
    "отмените, пожалуйста, подписку со следующего месяца",
    "возврат ещё не пришёл на карту",
    "какая гарантия на кофемашину",
    "нам нужно ещё двадцать лицензий для команды",
    "промокод пишет, что истёк срок действия",
    "пришлите, пожалуйста, чек на почту",
    "отличный сервис, большое спасибо",
]
FIRST_EN = ["James", "Mary", "John", "Linda", "Robert", "Emma", "David", "Olivia", "Michael", "Sophia", "Daniel", "Grace"]
LAST_EN = ["Smith", "Johnson", "Brown", "Taylor", "Wilson", "Clark", "Lewis", "Walker", "Young", "King", "Wright"]
FIRST_RU = ["Александр", "Мария", "Дмитрий", "Анна", "Сергей", "Елена", "Иван", "Ольга", "Никита", "Татьяна", "Павел"]
LAST_RU = ["Иванов", "Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева", "Козлов", "Новикова", "Морозов", "Волкова"]


def arr(words: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + w.replace("'", "''") + "'" for w in words) + "]::text[]"


def h(x: str, salt: int) -> str:
    """A deterministic hash of a bigint expression into [0, 2^31-1)."""
    return f"((({x}) * 2654435761 + {salt * 40503 + 7}) % 2147483647)"


def frac(x: str, salt: int) -> str:
    return f"({h(x, salt)}::float8 / 2147483647.0)"


def pick(words: list[str], x: str, salt: int) -> str:
    return f"({arr(words)})[1 + {h(x, salt)} % {len(words)}]"


def nmsg(c: str) -> str:
    """Messages in conversation `c`: 1-200, exponential, mean ~10."""
    return f"least(200, 1 + floor(-ln(({h(c, 1)} + 1)::float8 / 2147483648.0) * 9.5)::int)"


def settings_for(kind: str) -> JSONDict:
    return {"origins": []} if kind == "widget" else {"api_base": "http://127.0.0.1:9"}


def sizes(scale: float) -> JSONDict:
    conversations = max(1000, int(1_000_000 * scale))
    return {
        "conversations": conversations,
        "clients": int(conversations * 0.6),
        "identities": int(conversations * 0.7),
    }


async def seed(url: str, scale: float, *, quiet: bool = False) -> JSONDict:
    """Fill a freshly migrated database; returns row counts and seconds taken."""
    n = sizes(scale)
    conv, clients, idents = n["conversations"], n["clients"], n["identities"]
    t0 = time.perf_counter()

    def say(text: str) -> None:
        if not quiet:
            print(f"  seed [{time.perf_counter() - t0:6.1f}s] {text}", flush=True)

    conn = await db.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '512MB'")
        for i, (kind, name) in enumerate(CHANNELS, start=1):
            await conn.execute(
                "INSERT INTO channels (id, kind, name, settings, secrets, enabled) VALUES ($1, $2, $3, $4, $5, $6)",
                i, kind, name,
                settings_for(kind),
                {"signing_key": "bench-signing-key"} if kind == "widget" else {"token": "1:bench"},
                kind == "widget",  # the others would try to poll their (absent) servers
            )
        await conn.execute(
            "INSERT INTO agents (id, email, name, role, password_hash)"
            " SELECT g, 'agent' || g || '@example.com', 'Agent ' || g, 'agent', 'x' FROM generate_series(1, $1) g",
            AGENTS,
        )
        say("clients")
        await conn.execute(f"""
            INSERT INTO clients (id, name, email, phone, segment, tags, created_at, updated_at)
            SELECT g,
                   CASE WHEN g % 3 = 0 THEN {pick(FIRST_RU, 'g', 3)} || ' ' || {pick(LAST_RU, 'g', 4)}
                        ELSE {pick(FIRST_EN, 'g', 3)} || ' ' || {pick(LAST_EN, 'g', 4)} END,
                   CASE WHEN {h('g', 5)} % 3 = 0 THEN 'client' || g || '@example.com' ELSE '' END,
                   CASE WHEN {h('g', 6)} % 4 = 0 THEN '+7900' || lpad(g::text, 7, '0') ELSE '' END,
                   CASE WHEN {h('g', 7)} % 20 = 0 THEN 'vip' ELSE '' END,
                   CASE WHEN {h('g', 8)} % 10 = 0 THEN ARRAY['wholesale'] ELSE '{{}}' END,
                   now() - interval '400 days' + (g::float8 / {clients}) * interval '365 days',
                   now() - interval '400 days' + (g::float8 / {clients}) * interval '365 days'
            FROM generate_series(1, {clients}) g""")
        say("identities")
        # The first `clients` identities give every client one; the rest go to a skewed few.
        await conn.execute(f"""
            INSERT INTO identities (id, channel_id, external_id, client_id, display_name, created_at)
            SELECT g, ch, CASE ch WHEN 1 THEN (100000000 + g)::text WHEN 2 THEN 'v' || md5(g::text)
                                  WHEN 3 THEN 'client' || g || '@example.com' ELSE (200000000 + g)::text END,
                   cl, 'Sender ' || g, now() - interval '400 days' + (g::float8 / {idents}) * interval '365 days'
            FROM (SELECT g,
                         CASE WHEN {h('g', 9)} % 100 < 40 THEN 1 WHEN {h('g', 9)} % 100 < 65 THEN 2
                              WHEN {h('g', 9)} % 100 < 85 THEN 3 ELSE 4 END AS ch,
                         CASE WHEN g <= {clients} THEN g
                              ELSE 1 + floor({clients} * power({frac('g', 10)}, 3))::bigint END AS cl
                  FROM generate_series(1, {idents}) g) x""")
        say("conversations")
        recent = 0.95
        await conn.execute(f"""
            INSERT INTO conversations (id, client_id, channel_id, identity_id, subject, status, snoozed_until,
                                       assignee_id, unread_count, created_at, last_activity_at, first_response_at,
                                       resolved_at)
            SELECT x.g, i.client_id, i.channel_id, i.id,
                   CASE WHEN i.channel_id = 3 THEN 'Order ' || (x.g % 100000) ELSE '' END,
                   x.status, CASE WHEN x.status = 'snoozed' THEN now() + interval '1 day' END,
                   CASE WHEN {h('x.g', 12)} % 100 < 85 THEN 1 + {h('x.g', 13)} % {AGENTS} END,
                   CASE WHEN x.status = 'open' THEN {h('x.g', 14)} % 4 ELSE 0 END,
                   x.created, x.created + {nmsg('x.g')} * interval '3 minutes', x.created + interval '3 minutes',
                   CASE WHEN x.status = 'resolved' THEN x.created + {nmsg('x.g')} * interval '3 minutes' END
            FROM (SELECT g,
                         CASE WHEN g <= {idents} THEN g ELSE 1 + floor({idents} * power({frac('g', 11)}, 3))::bigint END
                           AS ident,
                         CASE WHEN g::float8 / {conv} < {recent}
                              THEN CASE WHEN {h('g', 15)} % 100 < 96 THEN 'resolved' ELSE 'open' END
                              ELSE (ARRAY['open','open','open','pending','pending','snoozed','resolved','resolved'])
                                   [1 + {h('g', 15)} % 8] END AS status,
                         now() - interval '365 days' + (g::float8 / {conv}) * interval '365 days' AS created
                  FROM generate_series(1, {conv}) g) x
            JOIN identities i ON i.id = x.ident""")
        say("routing: teams, queue rows and SLA clocks of recent conversations")
        await seed_routing(conn, conv)
        for table in ("agents", "channels", "clients", "identities", "conversations"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        say("events")
        await conn.execute("""
            INSERT INTO events (type, client_id, conversation_id, payload, created_at)
            SELECT 'conversation.created', client_id, id, '{}', created_at FROM conversations ORDER BY id""")
        await conn.execute("""
            INSERT INTO events (type, client_id, conversation_id, actor_agent_id, payload, created_at)
            SELECT 'conversation.status', client_id, id, assignee_id, '{"from": "open", "to": "resolved"}', resolved_at
            FROM conversations WHERE status = 'resolved' ORDER BY id""")
        say("dropping message indexes for the bulk load")
        index_defs = [
            r["indexdef"]
            for r in await conn.fetch(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'messages'"
                " AND indexname IN ('messages_conversation_idx', 'messages_search_idx')"
            )
        ]
        await conn.execute("DROP INDEX IF EXISTS messages_conversation_idx, messages_search_idx")
    finally:
        await conn.close()

    say(f"messages (two connections; ~{conv * 10:,} rows, the tsvector of each computed on insert)")
    halves = [(1, conv // 2), (conv // 2 + 1, conv)]
    await asyncio.gather(*(_messages(url, lo, hi) for lo, hi in halves))

    conn = await db.connect(url)
    try:
        await conn.execute(
            "SET maintenance_work_mem = '512MB'; SET max_parallel_maintenance_workers = 2"
        )
        for d in index_defs:
            say(f"index: {d.split(' ON ')[0]}")
            await conn.execute(d)
        say("analyze")
        await conn.execute("ANALYZE")
        counts = {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}")
            for t in ("clients", "identities", "conversations", "messages", "events")
        }
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
    finally:
        await conn.close()
    seconds = round(time.perf_counter() - t0, 1)
    say(f"done: {counts} ({size})")
    return {"scale": scale, "rows": counts, "database_size": size, "seconds": seconds}


async def seed_routing(conn: asyncpg.Connection, conv: int) -> None:
    """Three teams; recent (the newest 5 %) conversations get a team, a priority and SLA clocks.

    First response is stopped at the first reply; resolution is due three days after the start,
    already breached (or stopped, once resolved) for the older ones, so a running hub's SLA sweep
    finds nothing to do.
    """
    await conn.execute(
        "INSERT INTO teams (id, name) VALUES (1, 'Support'), (2, 'Sales'), (3, 'Billing') ON CONFLICT DO NOTHING"
    )
    recent = f"c.id > {int(conv * 0.95)}"
    await conn.execute(f"""
        INSERT INTO conversation_routing (conversation_id, team_id, queued_at, priority)
        SELECT c.id, 1 + c.channel_id % 3, c.created_at, CASE WHEN {h('c.id', 18)} % 50 = 0 THEN 2 ELSE 0 END
        FROM conversations c WHERE {recent} ON CONFLICT DO NOTHING""")
    await conn.execute(f"""
        INSERT INTO sla_clocks (conversation_id, metric, started_at, due_at, stopped_at, breached_at)
        SELECT c.id, 'first_response', c.created_at, c.created_at + interval '1 hour', c.first_response_at, NULL
        FROM conversations c WHERE {recent}
        UNION ALL
        SELECT c.id, 'resolution', c.created_at, c.created_at + interval '3 days', c.resolved_at,
               CASE WHEN c.resolved_at IS NULL AND c.created_at + interval '3 days' <= now()
                    THEN c.created_at + interval '3 days' END
        FROM conversations c WHERE {recent}
        ON CONFLICT DO NOTHING""")
    await conn.execute("SELECT setval(pg_get_serial_sequence('teams', 'id'), 3)")


async def _messages(url: str, lo: int, hi: int) -> None:
    text = (
        f"CASE WHEN c.client_id % 3 = 0 THEN {pick(RU, 'm.k * 7 + c.id', 16)} || ', ' || {pick(RU, 'm.k + c.id * 3', 17)}"
        f" || ' заказ ' || (c.id % 100000)"
        f" ELSE {pick(EN, 'm.k * 7 + c.id', 16)} || ', ' || {pick(EN, 'm.k + c.id * 3', 17)}"
        f" || ' order ' || (c.id % 100000) END"
    )
    conn = await db.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off")
        step = 50_000
        for start in range(lo, hi + 1, step):
            end = min(hi, start + step - 1)
            await conn.execute(f"""
                INSERT INTO messages (conversation_id, channel_id, external_id, direction, author_agent_id, text,
                                      status, created_at, sent_at)
                SELECT c.id, c.channel_id, 's' || c.id || '-' || m.k,
                       CASE WHEN m.k % 2 = 1 THEN 'in' ELSE 'out' END,
                       CASE WHEN m.k % 2 = 0 THEN coalesce(c.assignee_id, 1) END,
                       {text},
                       CASE WHEN m.k % 2 = 1 THEN 'received' ELSE 'delivered' END,
                       c.created_at + m.k * interval '3 minutes',
                       CASE WHEN m.k % 2 = 0 THEN c.created_at + m.k * interval '3 minutes' END
                FROM conversations c
                CROSS JOIN LATERAL generate_series(1, {nmsg('c.id')}) AS m(k)
                WHERE c.id BETWEEN {start} AND {end}""")
    finally:
        await conn.close()


async def _main(args: argparse.Namespace) -> None:
    if args.database_url:
        conn = await db.connect(args.database_url)
        try:
            from hub.migrate import migrate

            await migrate(conn)
        finally:
            await conn.close()
        print(await seed(args.database_url, args.scale))
        return
    from bench.common import scratch_database

    async with scratch_database("seed", keep=True) as url:
        print(await seed(url, args.scale))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.seed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 1 M conversations / ~10 M messages")
    parser.add_argument(
        "--database-url", help="an empty database to fill (migrated first); default: a new scratch database, kept"
    )
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
