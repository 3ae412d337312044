"""History search on a seeded store of 100,000+ messages in Russian and English.

The seed is generated here from a fixed random sequence, so the test knows
which word families each message and note holds: every check compares the
exact set (and order) of hits with that knowledge, so a hit too many fails as
surely as a hit missing.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from hub import db
from inbox.search import EXPORT_LIMIT, SearchFilters, search
from tests.conftest import RunningHub, login, make_agent, start_hub, with_database
from tests.test_api import check

MESSAGES = 100_000
CONVERSATIONS = 2_000
CLIENTS = 500
BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

# Word families: every form must find every other form of its family, and nothing else.
FAMILIES: dict[str, list[str]] = {
    "заказ": ["заказ", "заказа", "заказу", "заказом", "заказы", "заказов"],
    "доставка": ["доставка", "доставки", "доставку", "доставкой"],
    "оплата": ["оплата", "оплаты", "оплату", "оплатой"],
    "возврат": ["возврат", "возврата", "возвраты", "возвратом"],
    "parcel": ["parcel", "parcels"],
    "refund": ["refund", "refunds", "refunded", "refunding"],
    "invoice": ["invoice", "invoices", "invoiced"],
    "cancel": ["cancel", "cancels", "canceled", "canceling"],
}
NOTE_ONLY = ["эскалация", "эскалации", "эскалацию"]  # a family only notes use
FILLER = ["hello", "спасибо", "please", "сегодня", "urgent", "вопрос", "thanks", "когда"]
STATUSES = ["open", "pending", "resolved", "snoozed"]


@dataclass
class Item:
    kind: str
    id: int
    families: set[str]
    created_at: dt.datetime
    channel_kind: str | None
    channel_id: int | None
    status: str | None
    assignee: int | None
    author: int | None
    tags: list[str]


@dataclass
class Seed:
    hub: RunningHub
    items: list[Item] = field(default_factory=list)
    agents: list[int] = field(default_factory=list)
    channels: dict[str, int] = field(default_factory=dict)
    needle_id: int = 0
    script_id: int = 0

    def expect(self, families: Callable[[set[str]], bool], **filters: Any) -> list[tuple[str, int]]:
        """The hits a search must return, newest first."""
        out = [i for i in self.items if families(i.families) and _passes(i, filters)]
        out.sort(key=lambda i: (i.created_at, i.kind, i.id), reverse=True)
        return [(i.kind, i.id) for i in out]


def _passes(i: Item, f: dict[str, Any]) -> bool:
    if "channel_kind" in f and i.channel_kind != f["channel_kind"]:
        return False
    if "channel_id" in f and i.channel_id != f["channel_id"]:
        return False
    if "status" in f and i.status != f["status"]:
        return False
    if "agent" in f and f["agent"] not in (i.assignee, i.author):
        return False
    if "tag" in f and f["tag"] not in i.tags:
        return False
    if "start" in f and i.created_at < f["start"]:
        return False
    return not ("end" in f and i.created_at >= f["end"])


def _text(rng: random.Random, families: set[str]) -> str:
    words = rng.sample(FILLER, 2)
    for fam in families:
        words.insert(rng.randrange(len(words) + 1), rng.choice(FAMILIES[fam]).capitalize() if rng.random() < 0.2
                     else rng.choice(FAMILIES[fam]))
    return " ".join(words) + rng.choice([".", "?", "!", ""])


async def _seed(pool: asyncpg.Pool, hub: RunningHub) -> Seed:
    rng = random.Random(7)
    seed = Seed(hub)
    for kind in ("telegram", "email"):
        seed.channels[kind] = await pool.fetchval(
            "INSERT INTO channels (kind, name, enabled) VALUES ($1, $2, false) RETURNING id", kind, f"{kind} channel"
        )
    for n in range(3):
        seed.agents.append(await pool.fetchval(
            "INSERT INTO agents (email, name, role, password_hash) VALUES ($1, $2, 'agent', 'x') RETURNING id",
            f"seed{n}@example.com", f"Seed Agent {n}",
        ))
    kinds = ["telegram", "email"]
    client_tags = {c: (["vip"] if c % 10 == 0 else []) for c in range(CLIENTS)}
    await pool.copy_records_to_table(
        "clients", columns=["id", "name", "tags"], records=[(c + 1, f"Client {c}", client_tags[c]) for c in range(CLIENTS)]
    )
    await pool.copy_records_to_table(
        "identities", columns=["id", "channel_id", "external_id", "client_id"],
        records=[(c + 1, seed.channels[kinds[c % 2]], f"u{c}", c + 1) for c in range(CLIENTS)],
    )
    convs = []
    for k in range(CONVERSATIONS):
        c = k % CLIENTS
        assignee = seed.agents[k % 3] if k % 4 else None
        convs.append((k + 1, c + 1, seed.channels[kinds[c % 2]], c + 1, STATUSES[k % 4], assignee))
    await pool.copy_records_to_table(
        "conversations", columns=["id", "client_id", "channel_id", "identity_id", "status", "assignee_id"], records=convs
    )
    family_names = list(FAMILIES)
    records = []
    for i in range(MESSAGES):
        conv = convs[i % CONVERSATIONS]
        fams: set[str] = set()
        if rng.random() < 0.5:
            fams.add(rng.choice(family_names))
        if rng.random() < 0.1:
            fams.add(rng.choice(family_names))
        out = i % 5 == 0
        author = seed.agents[(i // 5) % 3] if out else None
        created = BASE + dt.timedelta(minutes=i)
        records.append((i + 1, conv[0], conv[2], f"s{i}", "out" if out else "in", author, _text(rng, fams),
                        "sent" if out else "received", created))
        seed.items.append(Item("message", i + 1, fams, created, kinds[(conv[1] - 1) % 2], conv[2], conv[4], conv[5],
                               author, client_tags[conv[1] - 1]))
    await pool.copy_records_to_table(
        "messages",
        columns=["id", "conversation_id", "channel_id", "external_id", "direction", "author_agent_id", "text", "status",
                 "created_at"],
        records=records,
    )
    notes = []
    for j in range(400):
        fams = {rng.choice(family_names)} if j % 2 else {"эскалация"}
        text = _text(rng, fams - {"эскалация"}) + (f" {rng.choice(NOTE_ONLY)}" if "эскалация" in fams else "")
        author = seed.agents[j % 3]
        created = BASE + dt.timedelta(minutes=j * 250, seconds=30)
        on_card = j % 10 == 0  # a note on the client card, no conversation
        conv = convs[(j * 7) % CONVERSATIONS]
        notes.append((j + 1, None if on_card else conv[0], conv[1], author, text, created))
        seed.items.append(Item(
            "note", j + 1, fams, created, None if on_card else kinds[(conv[1] - 1) % 2], None if on_card else conv[2],
            None if on_card else conv[4], None if on_card else conv[5], author, client_tags[conv[1] - 1],
        ))
    await pool.copy_records_to_table(
        "notes", columns=["id", "conversation_id", "client_id", "author_agent_id", "text", "created_at"], records=notes
    )
    # Two messages that must be found, or not, for one reason each.
    special = [(MESSAGES + 1, "Заказчик приехал в офис", set()),  # another word with the same letters: no match
               (MESSAGES + 2, "Цена <100 & доставка <i>курьером</i>", {"доставка"})]
    for mid, text, fams in special:
        created = BASE + dt.timedelta(minutes=MESSAGES + mid)
        await pool.execute(
            "INSERT INTO messages (id, conversation_id, channel_id, external_id, direction, text, status, created_at)"
            " VALUES ($1, 1, $2, $3, 'in', $4, 'received', $5)", mid, convs[0][2], f"x{mid}", text, created,
        )
        seed.items.append(Item("message", mid, fams, created, "telegram", convs[0][2], convs[0][4], convs[0][5], None,
                               client_tags[0]))
    seed.needle_id, seed.script_id = MESSAGES + 1, MESSAGES + 2
    for table in ("clients", "identities", "conversations", "messages", "notes"):
        await pool.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    await pool.execute("ANALYZE")
    return seed


@pytest.fixture(scope="module")
async def seeded(pg_server_url: str, template_db: str) -> AsyncIterator[Seed]:
    name = f"omnihub_search_{os.getpid()}"
    admin = await asyncpg.connect(pg_server_url)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    url = with_database(pg_server_url, name)
    try:
        async with start_hub(url) as hub, db.open_pool(url, min_size=1, max_size=4) as pool:
            yield await _seed(pool, hub)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def hits(seed: Seed, q: str, **filters: Any) -> list[tuple[str, int]]:
    items, more = await search(seed.hub.pool, SearchFilters(q=q, **filters), limit=5 * EXPORT_LIMIT, export=True)
    assert more is None
    return [(h["kind"], h["id"]) for h in items]


def having(*names: str) -> Callable[[set[str]], bool]:
    return lambda fams: any(n in fams for n in names)


async def test_the_seed_is_big_enough(seeded: Seed) -> None:
    assert await seeded.hub.pool.fetchval("SELECT count(*) FROM messages") >= 100_000
    ru = await seeded.hub.pool.fetchval("SELECT count(*) FROM messages WHERE text ~ '[а-яА-Я]'")
    en = await seeded.hub.pool.fetchval("SELECT count(*) FROM messages WHERE text ~ '[a-zA-Z]'")
    assert ru > 50_000 and en > 50_000


@pytest.mark.parametrize(("query", "family"), [
    ("заказы", "заказ"), ("заказом", "заказ"), ("доставку", "доставка"), ("ОПЛАТОЙ", "оплата"), ("возвраты", "возврат"),
    ("parcels", "parcel"), ("refunded", "refund"), ("invoiced", "invoice"), ("canceling", "cancel"),
])
async def test_any_form_finds_every_form_in_both_languages(seeded: Seed, query: str, family: str) -> None:
    expected = seeded.expect(having(family))
    assert len(expected) > 1000
    assert await hits(seeded, query) == expected


async def test_web_search_syntax(seeded: Seed) -> None:
    both = seeded.expect(lambda f: "заказ" in f and "refund" in f)
    assert both and await hits(seeded, "заказ refunds") == both
    either = seeded.expect(having("оплата", "invoice"))
    assert await hits(seeded, "оплата or invoices") == either
    without = seeded.expect(lambda f: "возврат" in f and "parcel" not in f)
    assert await hits(seeded, "возврат -parcel") == without
    assert await hits(seeded, "ничегонепохожего") == []


async def test_a_message_that_does_not_match_is_not_returned(seeded: Seed) -> None:
    found = await hits(seeded, "заказ")
    assert ("message", seeded.needle_id) not in found  # "Заказчик" is another word
    assert ("message", seeded.needle_id) in await hits(seeded, "заказчик")


async def test_notes_are_found_too(seeded: Seed) -> None:
    expected = seeded.expect(having("эскалация"))
    assert expected and {k for k, _ in expected} == {"note"}
    assert await hits(seeded, "эскалацией") == expected
    refunds = await hits(seeded, "refund")
    assert any(k == "note" for k, _ in refunds) and any(k == "message" for k, _ in refunds)


async def test_filters(seeded: Seed) -> None:
    agent = seeded.agents[1]
    start, end = BASE + dt.timedelta(days=10), BASE + dt.timedelta(days=20)
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"channel": "email"}, {"channel_kind": "email"}),
        ({"channel": str(seeded.channels["telegram"])}, {"channel_id": seeded.channels["telegram"]}),
        ({"status": "resolved"}, {"status": "resolved"}),
        ({"agent_id": agent}, {"agent": agent}),
        ({"tag": "vip"}, {"tag": "vip"}),
        ({"start": start, "end": end}, {"start": start, "end": end}),
        ({"channel": "telegram", "status": "open", "tag": "vip", "agent_id": agent},
         {"channel_kind": "telegram", "status": "open", "tag": "vip", "agent": agent}),
    ]
    for given, oracle in cases:
        expected = seeded.expect(having("доставка"), **oracle)
        assert expected, given
        assert await hits(seeded, "доставки", **given) == expected, given
    # Card notes have no channel or status: a channel filter leaves them out, a tag filter does not.
    card_notes = [i.id for i in seeded.items if i.kind == "note" and i.channel_id is None and "эскалация" in i.families]
    assert card_notes
    assert not set(card_notes) & {i for k, i in await hits(seeded, "эскалация", channel="email") if k == "note"}


async def test_paging_through_the_api(seeded: Seed) -> None:
    manager = await make_agent(seeded.hub.pool, "manager")
    api = await login(seeded.hub.base_url, manager)
    try:
        expected = seeded.expect(having("invoice"), tag="vip", status="resolved")
        assert 300 < len(expected) < 2000
        got: list[tuple[str, int]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"q": "invoices", "tag": "vip", "status": "resolved", "limit": 97}
            if cursor:
                params["cursor"] = cursor
            body = check(await api.get("/api/v1/search", params=params), "GET", "/api/v1/search")
            got += [(h["kind"], h["id"]) for h in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert got == expected  # each hit once, in order, none missing

        body = check(await api.get("/api/v1/search", params={"q": "доставка", "channel": "telegram", "from": "2026-03-01"}),
                     "GET", "/api/v1/search")
        script = next(h for h in body["items"] if h["id"] == seeded.script_id)
        assert "&lt;100 &amp;" in script["headline"] and "<i>" not in script["headline"]
        assert "<mark>доставка</mark>" in script["headline"]
        first = body["items"][-1]
        assert first["headline"].count("<mark>") >= 1
        assert first["client"]["name"].startswith("Client ") and first["channel"]["kind"] == "telegram"
        for bad, words in [({"q": ""}, "q is required"), ({"q": "x", "status": "gone"}, "status must be"),
                           ({"q": "x", "from": "yesterday"}, "ISO 8601"), ({"q": "x", "cursor": "bogus"}, "cursor")]:
            r = await api.get("/api/v1/search", params=bad)
            assert r.status_code == 400 and words in r.json()["error"], (bad, r.text)
    finally:
        await api.aclose()


@pytest.mark.parametrize(
    "walk, common, cap",
    [(3, 2, 20_000), (50, 1_000, 20_000), (50, 1_000, 5), (1_000_000, 8, 20_000)],
    ids=["walks-on", "index-lists", "index-over-cap-walks-on", "window-holds-everything"],
)
async def test_every_way_of_finding_messages_gives_the_same_pages(
    seeded: Seed, monkeypatch: pytest.MonkeyPatch, walk: int, common: int, cap: int
) -> None:
    from inbox import search as history

    monkeypatch.setattr(history, "WALK", walk)
    monkeypatch.setattr(history, "COMMON", common)
    monkeypatch.setattr(history, "INDEX_CAP", cap)
    agent = seeded.agents[1]
    cases: list[tuple[str, Callable[[set[str]], bool], dict[str, Any], dict[str, Any]]] = [
        ("доставки", having("доставка"), {"channel": "email", "status": "resolved"}, {"channel_kind": "email", "status": "resolved"}),
        ("invoices", having("invoice"), {"tag": "vip", "agent_id": agent}, {"tag": "vip", "agent": agent}),
        ("эскалация", having("эскалация"), {}, {}),  # notes only
        ("ничегонепохожего", lambda f: False, {}, {}),
    ]
    for q, families, given, oracle in cases:
        expected = seeded.expect(families, **oracle)
        got: list[tuple[str, int]] = []
        cursor = None
        while True:
            items, cursor = await search(seeded.hub.pool, SearchFilters(q=q, **given), limit=37, cursor=cursor)
            got += [(h["kind"], h["id"]) for h in items]
            if not cursor or len(got) > 400:
                break
        assert got == expected[: len(got)] and (len(got) > 400 or got == expected), (q, given)
