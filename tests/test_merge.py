"""One card per person: merges either way, undo, suggestions, and the card's own fields.

The property test drives random sequences of merges, undos, new messages and
notes against a real database and checks after every step that each message,
conversation, identity and note hangs off exactly one live card (read through
`client_card`, the way the inbox reads it), and after undoing every merge that
the store is back to the people it started with.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import asyncpg
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.channels import add_channel
from hub.types import InboundMessage, Sender
from inbox import clients, merge
from inbox.ingest import ingest
from inbox.notes import add_client_note, add_note
from tests.conftest import RunningHub, make_agent
from tests.test_api import check

# (channel index, external id, name, email, phone, tags): two of them share an e-mail domain, none a contact.
PEOPLE = [
    (0, "tg-1", "Ivan Petrov", "", "+79990000001", ["vip"]),
    (0, "tg-2", "Olga", "", "", []),
    (1, "anna@example.com", "Anna Smith", "anna@example.com", "", ["wholesale"]),
    (1, "bob@example.com", "Bob", "bob@example.com", "+15550000002", []),
    (0, "tg-5", "", "", "", []),
]

Op = tuple[Any, ...]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("merge"), st.integers(0, 9), st.integers(0, 9)),
        st.tuples(st.just("undo"), st.integers(0, 9)),
        st.tuples(st.just("message"), st.integers(0, len(PEOPLE) - 1), st.booleans()),
        st.tuples(st.just("note"), st.integers(0, 30), st.booleans()),
    ),
    max_size=14,
)

KEEP = ["channels", "agents", "sessions", "schema_migrations", "blobs"]


class World:
    """What the test did, to compare the store with."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.channels: list[int] = []
        self.agent: dict[str, Any] = {}
        self.identity_owner: dict[int, int] = {}  # identity id -> the client it was created for
        self.initial_fields: dict[int, tuple[Any, ...]] = {}
        self.messages = 0
        self.notes = 0
        self.active: list[int] = []  # merges not undone, in the order made
        self.seq = 0

    async def setup(self) -> None:
        """A clean store (one database for all examples), the channels and the agent kept."""
        async with self.pool.acquire() as conn, conn.transaction():
            # DELETE, not TRUNCATE (which takes ~0.7 s a time); with foreign-key triggers off
            # for this transaction, every table but the kept ones empties in any order.
            await conn.execute("SET LOCAL session_replication_role = replica")
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> ALL($1::text[])", KEEP
            )
            for t in tables:
                await conn.execute(f'DELETE FROM "{t["tablename"]}"')
        self.channels = [r["id"] for r in await self.pool.fetch("SELECT id FROM channels ORDER BY id")]
        if not self.channels:
            self.channels = [
                await add_channel(self.pool, kind="loopback", name=n, settings={}, secrets={}) for n in ("Bot", "Mail")
            ]
        agent = await self.pool.fetchrow("SELECT id, name FROM agents")
        self.agent = dict(agent) if agent else await make_agent(self.pool, "agent", name="Mia Merger")
        for i, (ch, ext, *_contact, tags) in enumerate(PEOPLE):
            r = await self.write(i)
            await self.pool.execute("UPDATE clients SET tags = $2, custom_fields = $3 WHERE id = $1",
                                    r.client_id, tags, {"n": i} if i % 2 else {})
            identity = await self.pool.fetchval(
                "SELECT id FROM identities WHERE channel_id = $1 AND external_id = $2", self.channels[ch], ext
            )
            self.identity_owner[identity] = r.client_id
        for row in await self.pool.fetch("SELECT * FROM clients"):
            self.initial_fields[row["id"]] = _fields(row)

    async def write(self, person: int, new_thread: bool = False) -> Any:
        ch, ext, name, email, phone, _tags = PEOPLE[person]
        self.seq += 1
        self.messages += 1
        return await ingest(self.pool, InboundMessage(
            channel_id=self.channels[ch], external_id=f"m{self.seq}", sender=Sender(ext, name, email=email, phone=phone),
            text=f"message {self.seq}", new_thread=new_thread,
        ))

    async def live(self) -> list[int]:
        return [r["id"] for r in await self.pool.fetch("SELECT id FROM clients WHERE merged_into IS NULL ORDER BY id")]

    async def apply(self, op: Op) -> None:
        kind = op[0]
        if kind == "merge":
            live = await self.live()
            a, b = live[op[1] % len(live)], live[op[2] % len(live)]
            if a == b:
                return
            card = await clients.merge_clients(self.pool, client_id=a, other_id=b, agent=self.agent)
            assert card["id"] == a
            self.active.append(card["merges"][0]["id"])
        elif kind == "undo":
            if not self.active:
                return
            merge_id = self.active.pop(op[1] % len(self.active))
            undone = await merge.undo_merge(self.pool, merge_id=merge_id, agent=self.agent)
            assert undone["undone_by"] == {"id": self.agent["id"], "name": "Mia Merger"}
        elif kind == "message":
            await self.write(op[1], new_thread=op[2])
        elif kind == "note":
            conversations = [r["id"] for r in await self.pool.fetch("SELECT id FROM conversations ORDER BY id")]
            if op[2]:
                live = await self.live()
                await add_client_note(self.pool, client_id=live[op[1] % len(live)], agent=self.agent, text="card note")
            else:
                conv = conversations[op[1] % len(conversations)]
                await add_note(self.pool, conversation_id=conv, agent=self.agent, text="note")
            self.notes += 1

    async def check(self) -> None:
        """Each message, conversation, identity and note on exactly one live card."""
        live = await self.live()
        seen_conversations: Counter[int] = Counter()
        seen_identities: Counter[int] = Counter()
        seen_notes: Counter[int] = Counter()
        for client_id in live:
            card = await clients.client_card(self.pool, client_id)
            assert card["id"] == client_id
            seen_conversations.update(c["id"] for c in card["conversations"])
            seen_identities.update(i["id"] for i in card["identities"])
            seen_notes.update(n["id"] for n in card["notes"])
        message_conversations = [r["conversation_id"] for r in await self.pool.fetch("SELECT conversation_id FROM messages")]
        assert len(message_conversations) == self.messages
        assert all(seen_conversations[c] == 1 for c in message_conversations), "a message is not on exactly one card"
        assert sum(seen_conversations.values()) == await self.pool.fetchval("SELECT count(*) FROM conversations")
        assert set(seen_identities.values()) == {1}
        assert sum(seen_identities.values()) == len(self.identity_owner)
        assert set(seen_notes.values()) <= {1} and sum(seen_notes.values()) == self.notes
        # A conversation stays with its sender's card; its notes and events go where it goes.
        assert await self.pool.fetchval(
            "SELECT count(*) FROM conversations c JOIN identities i ON i.id = c.identity_id WHERE c.client_id <> i.client_id"
        ) == 0
        for table in ("notes", "events"):
            assert await self.pool.fetchval(
                f"SELECT count(*) FROM {table} t JOIN conversations c ON c.id = t.conversation_id"
                " WHERE t.client_id <> c.client_id"
            ) == 0, table

    async def check_restored(self) -> None:
        """With every merge undone: the people we started with, their fields as they were."""
        assert await self.pool.fetchval("SELECT count(*) FROM clients WHERE merged_into IS NOT NULL") == 0
        for identity, owner in self.identity_owner.items():
            assert await self.pool.fetchval("SELECT client_id FROM identities WHERE id = $1", identity) == owner
        for row in await self.pool.fetch("SELECT * FROM clients"):
            assert _fields(row) == self.initial_fields[row["id"]], row["id"]


def _fields(row: asyncpg.Record) -> tuple[Any, ...]:
    return (row["name"], row["email"], row["phone"], row["segment"], list(row["tags"]), row["custom_fields"],
            row["first_touch"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS, undo_order=st.randoms(use_true_random=False))
async def test_any_merges_and_undos_keep_every_message_on_exactly_one_live_card(
    pool: asyncpg.Pool, ops: list[Op], undo_order: random.Random
) -> None:
    world = World(pool)
    await world.setup()
    await world.check()
    for op in ops:
        await world.apply(op)
        await world.check()
    remaining = list(world.active)
    undo_order.shuffle(remaining)
    for merge_id in remaining:
        await merge.undo_merge(pool, merge_id=merge_id, agent=world.agent)
        await world.check()
    await world.check_restored()


async def test_merge_either_way_and_undo_through_the_api(hub: RunningHub, api: httpx.AsyncClient) -> None:
    tg = await add_channel(hub.pool, kind="loopback", name="Bot", settings={}, secrets={})
    mail = await add_channel(hub.pool, kind="loopback", name="Mail", settings={}, secrets={})
    ivan = await ingest(hub.pool, InboundMessage(channel_id=tg, external_id="1", sender=Sender("77", "Ivan"), text="привет"))
    jane = await ingest(hub.pool, InboundMessage(
        channel_id=mail, external_id="<a@x>", sender=Sender("jane@example.com", "Jane", email="jane@example.com"), text="hi"))
    await api.patch(f"/api/v1/clients/{ivan.client_id}", json={"tags": ["vip"], "custom_fields": {"city": "Kazan"}})
    await api.patch(f"/api/v1/clients/{jane.client_id}", json={"tags": ["b2b"], "custom_fields": {"city": "Perm", "plan": "gold"}})

    # The newer card survives this time: the agent chose.
    card = check(await api.post(f"/api/v1/clients/{jane.client_id}/merge", json={"other_id": ivan.client_id}),
                 "POST", "/api/v1/clients/{id}/merge")
    assert card["id"] == jane.client_id
    assert {c["id"] for c in card["conversations"]} == {ivan.conversation_id, jane.conversation_id}
    assert card["tags"] == ["b2b", "vip"] and card["custom_fields"] == {"city": "Perm", "plan": "gold"}
    assert card["first_touch"]["channel_id"] == tg  # Ivan's card is older: the person first came by the bot
    merged = next(e for e in card["timeline"] if e["type"] == "client.merged")
    assert merged["actor"]["name"] == "Alice Admin" and merged["data"]["merged_client_id"] == ivan.client_id
    [m] = check(await api.get(f"/api/v1/clients/{jane.client_id}/merges"), "GET", "/api/v1/clients/{id}/merges")["items"]
    assert m["moved"]["identity"] == 1 and m["moved"]["conversation"] == 1 and m["undone_at"] is None
    assert (await api.get(f"/api/v1/clients/{ivan.client_id}")).json()["id"] == jane.client_id

    # A message from Ivan while merged lands on the merged card; the undo takes it back to Ivan.
    later = await ingest(hub.pool, InboundMessage(channel_id=tg, external_id="2", sender=Sender("77", "Ivan"), text="ещё", new_thread=True))
    assert later.client_id == jane.client_id
    undone = check(await api.post(f"/api/v1/merges/{m['id']}/undo"), "POST", "/api/v1/merges/{id}/undo")
    assert undone["undone_by"]["name"] == "Alice Admin" and undone["undone_at"]
    ivan_card = (await api.get(f"/api/v1/clients/{ivan.client_id}")).json()
    jane_card = (await api.get(f"/api/v1/clients/{jane.client_id}")).json()
    assert ivan_card["id"] == ivan.client_id
    assert {c["id"] for c in ivan_card["conversations"]} == {ivan.conversation_id, later.conversation_id}
    assert {c["id"] for c in jane_card["conversations"]} == {jane.conversation_id}
    assert jane_card["tags"] == ["b2b"] and ivan_card["tags"] == ["vip"]
    assert jane_card["first_touch"]["channel_id"] == mail
    for c in (ivan_card, jane_card):
        unmerged = [e for e in c["timeline"] if e["type"] == "client.unmerged"]
        assert len(unmerged) == 1 and unmerged[0]["actor"]["name"] == "Alice Admin"
    again = await api.post(f"/api/v1/merges/{m['id']}/undo")
    assert again.status_code == 409 and "already undone" in again.json()["error"]


async def test_suggestions_from_weak_evidence_are_confirmed_or_dismissed(hub: RunningHub, api: httpx.AsyncClient) -> None:
    tg = await add_channel(hub.pool, kind="loopback", name="Bot", settings={}, secrets={})
    mail = await add_channel(hub.pool, kind="loopback", name="Mail", settings={}, secrets={})
    a = await ingest(hub.pool, InboundMessage(channel_id=tg, external_id="1", sender=Sender("1", "Petr Ivanov"), text="hi"))
    b = await ingest(hub.pool, InboundMessage(channel_id=tg, external_id="2", sender=Sender("2", "petr ivanov "), text="hi"))
    c = await ingest(hub.pool, InboundMessage(channel_id=tg, external_id="3", sender=Sender("3", "Petr Ivanov"), text="hi"))
    mailer = await ingest(hub.pool, InboundMessage(
        channel_id=mail, external_id="<m@x>", sender=Sender("petr@example.com", "P.", email="petr@example.com"), text="x"))
    assert len({a.client_id, b.client_id, c.client_id, mailer.client_id}) == 4  # names alone link nobody
    assert (await api.get("/api/v1/merge-suggestions")).json()["items"] == []

    # Same name and phone (after an edit; the phones are written differently): a suggestion, not a merge.
    await api.patch(f"/api/v1/clients/{a.client_id}", json={"phone": "+7 (999) 123-45-67"})
    await api.patch(f"/api/v1/clients/{b.client_id}", json={"phone": "89991234567"})
    await api.patch(f"/api/v1/clients/{c.client_id}", json={"phone": "+7 999 000-00-00"})  # same name, other phone
    # An e-mail typed into a chat that is another card's address.
    typed = await ingest(hub.pool, InboundMessage(channel_id=tg, external_id="4", sender=Sender("3", "Petr Ivanov"),
                                                  text="my mail is Petr@Example.com."))
    body = check(await api.get("/api/v1/merge-suggestions"), "GET", "/api/v1/merge-suggestions")
    got = {(s["reason"], frozenset(x["id"] for x in s["clients"])) for s in body["items"]}
    assert got == {
        ("same_name_and_phone", frozenset({a.client_id, b.client_id})),
        ("email_in_message", frozenset({c.client_id, mailer.client_id})),
    }
    email_s = next(s for s in body["items"] if s["reason"] == "email_in_message")
    assert email_s["evidence"]["message_id"] == typed.message_id
    mine = check(await api.get(f"/api/v1/clients/{mailer.client_id}/merge-suggestions"), "GET", "/api/v1/clients/{id}/merge-suggestions")
    assert [s["id"] for s in mine["items"]] == [email_s["id"]]
    assert await hub.pool.fetchval("SELECT count(*) FROM clients WHERE merged_into IS NULL") == 4  # nothing merged by itself

    phone_s = next(s for s in body["items"] if s["reason"] == "same_name_and_phone")
    dismissed = check(await api.post(f"/api/v1/merge-suggestions/{phone_s['id']}/dismiss"), "POST", "/api/v1/merge-suggestions/{id}/dismiss")
    assert dismissed["status"] == "dismissed" and dismissed["decided_by"]["name"] == "Alice Admin"
    await api.patch(f"/api/v1/clients/{b.client_id}", json={"name": "Petr Ivanov"})  # same evidence again
    assert [s["id"] for s in (await api.get("/api/v1/merge-suggestions")).json()["items"]] == [email_s["id"]]

    bad = await api.post(f"/api/v1/merge-suggestions/{email_s['id']}/confirm", json={"survivor_id": a.client_id})
    assert bad.status_code == 400 and "survivor_id must be" in bad.json()["error"]
    card = check(await api.post(f"/api/v1/merge-suggestions/{email_s['id']}/confirm", json={"survivor_id": mailer.client_id}),
                 "POST", "/api/v1/merge-suggestions/{id}/confirm")
    assert card["id"] == mailer.client_id
    assert {i["external_id"] for i in card["identities"]} == {"petr@example.com", "3"}
    assert (await api.get("/api/v1/merge-suggestions")).json()["items"] == []
    twice = await api.post(f"/api/v1/merge-suggestions/{email_s['id']}/confirm", json={})
    assert twice.status_code == 409 and "already confirmed" in twice.json()["error"]
    # Undoing the merge settles the suggestion as "two people".
    await api.post(f"/api/v1/merges/{card['merges'][0]['id']}/undo")
    status = await hub.pool.fetchval("SELECT status FROM merge_suggestions WHERE id = $1", email_s["id"])
    assert status == "dismissed"


async def test_card_fields_first_touch_and_notes(hub: RunningHub, api: httpx.AsyncClient) -> None:
    tg = await add_channel(hub.pool, kind="loopback", name="Bot", settings={}, secrets={})
    web = await add_channel(hub.pool, kind="loopback", name="Site", settings={}, secrets={})
    bot = await ingest(hub.pool, InboundMessage(channel_id=tg, external_id="1", sender=Sender("9", "Vera"), text="/start promo42",
                                                raw={"start_payload": "promo42", "update": {"x": 1}}))
    await ingest(hub.pool, InboundMessage(channel_id=tg, external_id="2", sender=Sender("9", "Vera"), text="hi",
                                          raw={"start_payload": "other"}))
    site = await ingest(hub.pool, InboundMessage(channel_id=web, external_id="v:1", sender=Sender("v", "Visitor"), text="hi",
                                                 raw={"page": "https://shop.example/pricing"}))
    card = check(await api.get(f"/api/v1/clients/{bot.client_id}"), "GET", "/api/v1/clients/{id}")
    assert card["first_touch"]["channel_id"] == tg and card["first_touch"]["channel"] == "loopback"
    assert card["first_touch"]["start_payload"] == "promo42"  # the first touch, not the latest
    assert "update" not in card["first_touch"]
    assert (await api.get(f"/api/v1/clients/{site.client_id}")).json()["first_touch"]["page"] == "https://shop.example/pricing"

    r = await api.patch(f"/api/v1/clients/{bot.client_id}", json={"segment": "VIP", "custom_fields": {"inn": "7700000000", "employees": 12}})
    edited = check(r, "PATCH", "/api/v1/clients/{id}")
    assert edited["segment"] == "VIP" and edited["custom_fields"] == {"inn": "7700000000", "employees": 12}
    edited = (await api.patch(f"/api/v1/clients/{bot.client_id}", json={"custom_fields": {"employees": None, "vip": True}})).json()
    assert edited["custom_fields"] == {"inn": "7700000000", "vip": True}
    bad: dict[str, Any]
    for bad in ({"custom_fields": []}, {"custom_fields": {"x": {"nested": 1}}}, {"custom_fields": {"": "x"}}, {"first_touch": {}}):
        r = await api.patch(f"/api/v1/clients/{bot.client_id}", json=bad)
        assert r.status_code == 400, bad
    changes = [e["data"]["changes"] for e in edited["timeline"] if e["type"] == "client.updated"]
    assert changes[-1] == {"custom_fields": {"inn": "7700000000", "vip": True}}

    note = check(await api.post(f"/api/v1/clients/{bot.client_id}/notes", json={"text": "calls after 18:00"}),
                 "POST", "/api/v1/clients/{id}/notes")
    assert note["conversation_id"] is None and note["client_id"] == bot.client_id
    await api.post(f"/api/v1/conversations/{bot.conversation_id}/notes", json={"text": "asked about promo"})
    notes = check(await api.get(f"/api/v1/clients/{bot.client_id}/notes"), "GET", "/api/v1/clients/{id}/notes")
    assert [n["text"] for n in notes["items"]] == ["calls after 18:00", "asked about promo"]
    card = (await api.get(f"/api/v1/clients/{bot.client_id}")).json()
    assert [n["text"] for n in card["notes"]] == ["calls after 18:00", "asked about promo"]
    assert sum(e["type"] == "note.created" for e in card["timeline"]) == 2
    assert (await api.post("/api/v1/clients/999999/notes", json={"text": "x"})).status_code == 404


async def test_merging_while_the_people_write_neither_deadlocks_nor_strands_a_row(pool: asyncpg.Pool) -> None:
    """Ingest locks an identity, then its card; a merge takes the same order, so they wait instead of deadlocking."""
    ch = await add_channel(pool, kind="loopback", name="Bot", settings={}, secrets={})
    agent = await make_agent(pool, "agent")
    for n in range(15):
        a = await ingest(pool, InboundMessage(channel_id=ch, external_id=f"a{n}", sender=Sender(f"a{n}", "A"), text="x"))
        b = await ingest(pool, InboundMessage(channel_id=ch, external_id=f"b{n}", sender=Sender(f"b{n}", "B", email=f"b{n}@x.org"),
                                              text="x"))
        survivor, merged = (a.client_id, b.client_id) if n % 2 else (b.client_id, a.client_id)
        await asyncio.gather(
            clients.merge_clients(pool, client_id=survivor, other_id=merged, agent=agent),
            # a known sender shares a phone (fills the card), a new identity gives B's e-mail (links to B's card)
            ingest(pool, InboundMessage(channel_id=ch, external_id=f"a{n}-2", sender=Sender(f"a{n}", "A", phone=f"+7999{n:07}"),
                                        text="y")),
            ingest(pool, InboundMessage(channel_id=ch, external_id=f"c{n}", sender=Sender(f"c{n}", "C", email=f"b{n}@x.org"),
                                        text="z")),
        )
        stranded = await pool.fetchval(
            "SELECT count(*) FROM identities i JOIN clients c ON c.id = i.client_id WHERE c.merged_into IS NOT NULL"
        )
        assert stranded == 0, n
        assert await pool.fetchval(
            "SELECT count(DISTINCT client_id) FROM identities WHERE external_id = ANY($1::text[])", [f"a{n}", f"b{n}", f"c{n}"]
        ) == 1
