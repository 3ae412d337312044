"""The REST API as an agent, a manager and a stranger use it; responses match the OpenAPI file."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import re
from typing import Any

import asyncpg
import httpx
import jsonschema
import pytest

from hub.channels import add_channel
from hub.runtime import housekeeping
from hub.types import InboundMessage, Sender
from inbox.ingest import ingest
from tests.conftest import RunningHub, login, make_agent, wait_for
from web.openapi import openapi_document

SPEC = openapi_document()


def check(response: httpx.Response, method: str, path_template: str) -> Any:
    """Validate a response against the OpenAPI description of that operation."""
    op = SPEC["paths"][path_template][method.lower()]
    status = str(response.status_code)
    described = op["responses"].get(status) or (op["responses"]["4XX"] if status.startswith("4") else None)
    assert described is not None, f"{method} {path_template} answered {status}, which the spec does not describe"
    if "content" not in described:
        return response.content
    schema = {**described["content"]["application/json"]["schema"], "components": SPEC["components"]}
    body = response.json()
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
    return body


async def seed(pool: asyncpg.Pool) -> dict[str, int]:
    tg = await add_channel(pool, kind="loopback", name="Telegram bot", settings={}, secrets={"token": "s3cret"})
    mail = await add_channel(pool, kind="loopback", name="Support mail", settings={}, secrets={})
    a = await ingest(pool, InboundMessage(channel_id=tg, external_id="1", sender=Sender("111", "Ivan Petrov"), text="Где мой заказ номер 42?"))
    b = await ingest(pool, InboundMessage(channel_id=mail, external_id="<x@y>", sender=Sender("jane@example.com", "Jane Roe", email="jane@example.com"), text="My parcels are delayed", subject="Delivery"))
    return {"tg": tg, "mail": mail, "conv_ru": a.conversation_id, "conv_en": b.conversation_id, "client_ru": a.client_id, "client_en": b.client_id}


async def test_a_working_day_through_the_api(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ids = await seed(hub.pool)
    body = check(await api.get("/api/v1/conversations"), "GET", "/api/v1/conversations")
    assert [c["id"] for c in body["items"]] == [ids["conv_en"], ids["conv_ru"]]  # newest activity first
    assert body["items"][0]["client_id"] == ids["client_en"]
    assert body["items"][0]["last_message"]["text"] == "My parcels are delayed"

    # filters
    only_tg = (await api.get(f"/api/v1/conversations?channel={ids['tg']}")).json()["items"]
    assert [c["id"] for c in only_tg] == [ids["conv_ru"]]
    assert (await api.get("/api/v1/conversations?channel=loopback")).json()["items"].__len__() == 2
    # full-text search with stemming, in both languages
    assert [c["id"] for c in (await api.get("/api/v1/conversations?q=заказы")).json()["items"]] == [ids["conv_ru"]]
    assert [c["id"] for c in (await api.get("/api/v1/conversations?q=parcel")).json()["items"]] == [ids["conv_en"]]
    assert [c["id"] for c in (await api.get("/api/v1/conversations?q=Petrov")).json()["items"]] == [ids["conv_ru"]]

    conv = ids["conv_ru"]
    check(await api.get(f"/api/v1/conversations/{conv}"), "GET", "/api/v1/conversations/{id}")
    msgs = check(await api.get(f"/api/v1/conversations/{conv}/messages"), "GET", "/api/v1/conversations/{id}/messages")
    assert msgs["items"][0]["author"] == {"type": "client", "id": ids["client_ru"], "name": "Ivan Petrov"}

    reply = check(await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Уже едет!"}), "POST", "/api/v1/conversations/{id}/messages")
    assert reply["channel"] == "loopback" and reply["status"] == "queued"
    note = check(await api.post(f"/api/v1/conversations/{conv}/notes", json={"text": "VIP, be nice"}), "POST", "/api/v1/conversations/{id}/notes")
    assert note["author"]["name"] == "Alice Admin"
    notes = check(await api.get(f"/api/v1/conversations/{conv}/notes"), "GET", "/api/v1/conversations/{id}/notes")
    assert [n["text"] for n in notes["items"]] == ["VIP, be nice"]

    me = check(await api.get("/api/v1/me"), "GET", "/api/v1/me")
    assigned = check(await api.post(f"/api/v1/conversations/{conv}/assign", json={"agent_id": me["id"]}), "POST", "/api/v1/conversations/{id}/assign")
    assert assigned["assignee"] == {"id": me["id"], "name": "Alice Admin"}
    assert [c["id"] for c in (await api.get("/api/v1/conversations?assignee=me")).json()["items"]] == [conv]
    assert [c["id"] for c in (await api.get("/api/v1/conversations?assignee=none")).json()["items"]] == [ids["conv_en"]]

    snoozed = check(await api.post(f"/api/v1/conversations/{conv}/status", json={"status": "snoozed", "snoozed_until": "2030-01-01T09:00:00+00:00"}), "POST", "/api/v1/conversations/{id}/status")
    assert snoozed["status"] == "snoozed" and snoozed["snoozed_until"].startswith("2030-01-01")
    resolved = (await api.post(f"/api/v1/conversations/{conv}/status", json={"status": "resolved"})).json()
    assert resolved["status"] == "resolved" and resolved["snoozed_until"] is None
    assert [c["id"] for c in (await api.get("/api/v1/conversations?status=resolved")).json()["items"]] == [conv]
    read = check(await api.post(f"/api/v1/conversations/{ids['conv_en']}/read"), "POST", "/api/v1/conversations/{id}/read")
    assert read["unread_count"] == 0

    card = check(await api.get(f"/api/v1/clients/{ids['client_ru']}"), "GET", "/api/v1/clients/{id}")
    assert card["name"] == "Ivan Petrov"
    assert [i["external_id"] for i in card["identities"]] == ["111"]
    assert [c["id"] for c in card["conversations"]] == [conv]
    kinds = [e["type"] for e in card["timeline"]]
    for expected in ("conversation.created", "message.created", "note.created", "conversation.assigned", "conversation.status"):
        assert expected in kinds
    assert kinds.index("conversation.created") < kinds.index("note.created")

    clients = check(await api.get("/api/v1/clients?q=jane"), "GET", "/api/v1/clients")
    assert [c["id"] for c in clients["items"]] == [ids["client_en"]]
    edited = check(await api.patch(f"/api/v1/clients/{ids['client_ru']}", json={"phone": "+79990001122"}), "PATCH", "/api/v1/clients/{id}")
    assert edited["phone"] == "+79990001122"

    merged = check(await api.post(f"/api/v1/clients/{ids['client_ru']}/merge", json={"other_id": ids["client_en"]}), "POST", "/api/v1/clients/{id}/merge")
    assert {i["external_id"] for i in merged["identities"]} == {"111", "jane@example.com"}
    assert {c["id"] for c in merged["conversations"]} == {conv, ids["conv_en"]}
    assert merged["email"] == "jane@example.com"
    assert (await api.get(f"/api/v1/clients/{ids['client_en']}")).json()["id"] == ids["client_ru"]  # the old card leads to the survivor

    channels = check(await api.get("/api/v1/channels"), "GET", "/api/v1/channels")
    assert "s3cret" not in (await api.get("/api/v1/channels")).text
    assert {c["name"] for c in channels["items"]} == {"Telegram bot", "Support mail"}
    check(await api.get("/api/v1/agents"), "GET", "/api/v1/agents")


async def test_paging_walks_every_conversation_once(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await add_channel(hub.pool, kind="loopback", name="l", settings={}, secrets={})
    for i in range(7):
        await ingest(hub.pool, InboundMessage(channel_id=ch, external_id=str(i), sender=Sender(f"s{i}"), text="x"))
    seen: list[int] = []
    cursor = None
    while True:
        r = (await api.get("/api/v1/conversations", params={"limit": 3, **({"cursor": cursor} if cursor else {})})).json()
        seen += [c["id"] for c in r["items"]]
        cursor = r["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 7
    assert (await api.get("/api/v1/conversations?limit=501")).status_code == 400
    assert (await api.get("/api/v1/conversations?cursor=garbage")).status_code == 400


async def test_reports_for_managers_as_json_and_csv(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ids = await seed(hub.pool)
    await api.post(f"/api/v1/conversations/{ids['conv_ru']}/messages", json={"text": "ok"})
    volume = check(await api.get("/api/v1/reports/volume"), "GET", "/api/v1/reports/volume")
    assert sum(r["inbound"] for r in volume["items"]) == 2
    assert sum(r["outbound"] for r in volume["items"]) == 1
    r = await api.get("/api/v1/reports/agents?format=csv")
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    alice = next(row for row in rows if row["agent"] == "Alice Admin")
    assert alice["replies"] == "1" and alice["first_responses"] == "1"


async def test_bad_requests_get_clear_errors(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ids = await seed(hub.pool)
    conv = ids["conv_ru"]
    cases = [
        (api.post(f"/api/v1/conversations/{conv}/messages", content=b"not json", headers={"content-type": "application/json"}), 400, "JSON"),
        (api.post(f"/api/v1/conversations/{conv}/messages", json={}), 400, "missing field: text"),
        (api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "  "}), 400, "non-empty"),
        (api.post("/api/v1/conversations/999999/messages", json={"text": "x"}), 404, "does not exist"),
        (api.post(f"/api/v1/conversations/{conv}/status", json={"status": "done"}), 400, "status must be one of"),
        (api.post(f"/api/v1/conversations/{conv}/status", json={"status": "snoozed"}), 400, "snoozed_until"),
        (api.post(f"/api/v1/conversations/{conv}/assign", json={"agent_id": 424242}), 404, "agent 424242"),
        (api.post(f"/api/v1/clients/{ids['client_ru']}/merge", json={"other_id": ids["client_ru"]}), 409, "itself"),
        (api.get("/api/v1/reports/volume?from=yesterday"), 400, "ISO 8601"),
    ]
    for call, status, words in cases:
        r = await call
        assert r.status_code == status, (r.status_code, r.text)
        assert words in r.json()["error"]


def _operations() -> list[tuple[str, str, str]]:
    ops = []
    for path, methods in SPEC["paths"].items():
        for method, op in methods.items():
            ops.append((method.upper(), path, op.get("x-required-role", "")))
    return ops


async def test_every_endpoint_checks_the_role(hub: RunningHub) -> None:
    ids = await seed(hub.pool)
    people = {role: await make_agent(hub.pool, role) for role in ("agent", "manager", "admin")}
    clients = {role: await login(hub.base_url, a) for role, a in people.items()}
    anonymous = httpx.AsyncClient(base_url=hub.base_url)
    rank = {"agent": 1, "manager": 2, "admin": 3}
    values = {"id": str(ids["conv_ru"]), "sha256": "0" * 64}
    try:
        for method, path, required in _operations():
            if not required:
                continue
            url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
            r = await anonymous.request(method, url, json={})
            assert r.status_code == 401, (method, path, r.status_code)
            for role, client in clients.items():
                if method == "POST" and path == "/api/v1/auth/logout":
                    continue
                r = await client.request(method, url, json={})
                if rank[role] < rank[required]:
                    assert r.status_code == 403, (method, path, role, r.status_code)
                else:
                    assert r.status_code not in (401, 403), (method, path, role, r.status_code, r.text)
    finally:
        await anonymous.aclose()
        for c in clients.values():
            await c.aclose()


async def test_cookie_session_writes_need_our_origin(hub: RunningHub) -> None:
    ids = await seed(hub.pool)
    agent = await make_agent(hub.pool)
    async with httpx.AsyncClient(base_url=hub.base_url) as browser:
        r = await browser.post("/api/v1/auth/login", json={"email": agent["email"], "password": agent["password"]})
        assert "omnihub_session" in r.cookies
        assert "HttpOnly" in r.headers["set-cookie"]
        url = f"/api/v1/conversations/{ids['conv_ru']}/notes"
        assert (await browser.get(url)).status_code == 200  # reads are fine
        evil = await browser.post(url, json={"text": "x"}, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403 and "Origin" in evil.json()["error"]
        assert (await browser.post(url, json={"text": "x"})).status_code == 403  # no Origin at all
        ok = await browser.post(url, json={"text": "x"}, headers={"Origin": hub.base_url})
        assert ok.status_code == 201
        assert (await browser.post("/api/v1/auth/logout", headers={"Origin": hub.base_url})).status_code == 200
        assert (await browser.get(url)).status_code == 401


@pytest.mark.parametrize("password", ["wrong password", ""])
async def test_wrong_login_is_refused(hub: RunningHub, password: str) -> None:
    agent = await make_agent(hub.pool)
    async with httpx.AsyncClient(base_url=hub.base_url) as c:
        r = await c.post("/api/v1/auth/login", json={"email": agent["email"], "password": password})
        assert r.status_code == 401
        check(r, "POST", "/api/v1/auth/login")
        assert (await c.post("/api/v1/auth/login", json={"email": 5})).status_code == 400


async def test_openapi_is_served_and_valid(hub: RunningHub) -> None:
    async with httpx.AsyncClient(base_url=hub.base_url) as c:
        doc = (await c.get("/api/v1/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema), name


async def test_a_snooze_that_runs_out_reopens_the_conversation(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ids = await seed(hub.pool)
    conv = ids["conv_ru"]
    soon = (await hub.pool.fetchval("SELECT now() + interval '300 milliseconds'")).isoformat()
    r = await api.post(f"/api/v1/conversations/{conv}/status", json={"status": "snoozed", "snoozed_until": soon})
    assert r.json()["status"] == "snoozed"
    await asyncio.sleep(0.4)
    task = asyncio.create_task(housekeeping(hub.pool))
    try:

        async def reopened() -> bool:
            return (await api.get(f"/api/v1/conversations/{conv}")).json()["status"] == "open"

        await wait_for(reopened, timeout=5)
    finally:
        task.cancel()


async def test_search_finds_the_same_conversations_for_rare_and_common_words(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ids = await seed(hub.pool)
    # make "parcel" common (more hits than the index probe takes), in the English conversation only
    await hub.pool.execute(
        "INSERT INTO messages (conversation_id, channel_id, external_id, direction, text, status)"
        " SELECT $1, $2, 'bulk-' || g, 'in', 'parcels again, note ' || g, 'received' FROM generate_series(1, 600) g",
        ids["conv_en"],
        ids["mail"],
    )
    common = (await api.get("/api/v1/conversations?q=parcel")).json()["items"]
    assert [c["id"] for c in common] == [ids["conv_en"]]
    rare = (await api.get("/api/v1/conversations?q=заказ")).json()["items"]
    assert [c["id"] for c in rare] == [ids["conv_ru"]]
    nothing = (await api.get("/api/v1/conversations?q=zeppelin")).json()["items"]
    assert nothing == []


async def test_a_long_thread_pages_from_its_newest_message_back(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await add_channel(hub.pool, kind="loopback", name="l", settings={}, secrets={})
    first = await ingest(hub.pool, InboundMessage(channel_id=ch, external_id="0", sender=Sender("s"), text="m0"))
    for i in range(1, 7):
        await ingest(hub.pool, InboundMessage(channel_id=ch, external_id=str(i), sender=Sender("s"), text=f"m{i}"))
    path = f"/api/v1/conversations/{first.conversation_id}/messages"
    newest = check(await api.get(path, params={"order": "desc", "limit": 3}), "GET", "/api/v1/conversations/{id}/messages")
    assert [m["text"] for m in newest["items"]] == ["m6", "m5", "m4"]
    older = (await api.get(path, params={"order": "desc", "limit": 3, "cursor": newest["next_cursor"]})).json()
    assert [m["text"] for m in older["items"]] == ["m3", "m2", "m1"]
    oldest = (await api.get(path, params={"order": "desc", "limit": 3, "cursor": older["next_cursor"]})).json()
    assert ([m["text"] for m in oldest["items"]], oldest["next_cursor"]) == (["m0"], None)
    forward = (await api.get(path, params={"limit": 4})).json()
    assert [m["text"] for m in forward["items"]] == ["m0", "m1", "m2", "m3"]  # the default is unchanged
    bad = await api.get(path, params={"order": "newest"})
    assert bad.status_code == 400 and "order must be asc" in bad.json()["error"]
    # opening (no cursor) is audited once per open, paging back is not
    reads = await hub.pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'conversation.read'")
    assert reads == 2


async def test_reply_limits_name_the_hubs_attachment_cap(hub: RunningHub, api: httpx.AsyncClient) -> None:
    limits = check(await api.get("/api/v1/reply-limits"), "GET", "/api/v1/reply-limits")
    assert limits == {"max_file_bytes": hub.hub.blobs.max_size, "max_files": 10, "max_text_chars": 100_000}
    async with httpx.AsyncClient(base_url=hub.base_url) as stranger:
        assert (await stranger.get("/api/v1/reply-limits")).status_code == 401


async def _more_conversations(pool: asyncpg.Pool, like: int, n: int) -> list[int]:
    """`n` more conversations of the same client, identity and channel as conversation `like`."""
    rows = await pool.fetch(
        "INSERT INTO conversations (client_id, channel_id, identity_id, status)"
        " SELECT client_id, channel_id, identity_id, 'resolved' FROM conversations, generate_series(1, $2)"
        " WHERE id = $1 RETURNING id",
        like,
        n,
    )
    return [r["id"] for r in rows]


async def test_the_card_holds_the_newest_conversations_and_pages_on(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ids = await seed(hub.pool)
    more = await _more_conversations(hub.pool, ids["conv_ru"], 52)
    every = sorted([ids["conv_ru"], *more], reverse=True)  # 53, newest (highest id) first
    card = check(await api.get(f"/api/v1/clients/{ids['client_ru']}"), "GET", "/api/v1/clients/{id}")
    assert [c["id"] for c in card["conversations"]] == every[:50]
    assert card["conversations_total"] == 53 and card["conversations_next_cursor"]
    path = f"/api/v1/clients/{ids['client_ru']}/conversations"
    rest = check(
        await api.get(path, params={"cursor": card["conversations_next_cursor"]}),
        "GET", "/api/v1/clients/{id}/conversations",
    )
    assert ([c["id"] for c in rest["items"]], rest["next_cursor"]) == (every[50:], None)
    assert rest["items"][-1]["last_message"]["text"] == "Где мой заказ номер 42?"  # decorated like the list
    walked: list[int] = []
    cursor = None
    while True:
        r = (await api.get(path, params={"limit": 7, **({"cursor": cursor} if cursor else {})})).json()
        walked += [c["id"] for c in r["items"]]
        if not (cursor := r["next_cursor"]):
            break
    assert walked == every
    small = (await api.get(f"/api/v1/clients/{ids['client_en']}")).json()
    assert (small["conversations_total"], small["conversations_next_cursor"]) == (1, None)
    # a merged-away card's conversations are the survivor's
    await api.post(f"/api/v1/clients/{ids['client_en']}/merge", json={"other_id": ids["client_ru"]})
    merged = (await api.get(path, params={"limit": 500})).json()["items"]
    assert sorted(c["id"] for c in merged) == sorted([*every, ids["conv_en"]])
    assert (await api.get(path, params={"cursor": "garbage"})).status_code == 400
    assert (await api.get("/api/v1/clients/999999/conversations")).status_code == 404


async def test_pages_never_skip_or_repeat_conversations_with_the_same_activity_time(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    ids = await seed(hub.pool)
    more = await _more_conversations(hub.pool, ids["conv_ru"], 20)
    await hub.pool.execute(
        "UPDATE conversations SET last_activity_at = '2026-05-01T10:00:00.123456Z',"
        " status = CASE WHEN id % 2 = 0 THEN 'open' ELSE 'pending' END WHERE id = ANY($1::bigint[])",
        more,
    )
    tied = sorted(more, reverse=True)
    newer = [ids["conv_en"], ids["conv_ru"]]  # open, with activity now: before the tie
    for params, expected in (
        ({}, sorted(newer, reverse=True) + tied),
        ({"status": "open"}, sorted(newer, reverse=True) + [i for i in tied if i % 2 == 0]),
        ({"channel": str(ids["tg"])}, [ids["conv_ru"], *tied]),
        ({"channel": "loopback", "status": "pending"}, [i for i in tied if i % 2 == 1]),
    ):
        for limit in (1, 3, 50):
            walked: list[int] = []
            cursor = None
            while True:
                r = check(
                    await api.get("/api/v1/conversations", params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})}),
                    "GET", "/api/v1/conversations",
                )
                walked += [c["id"] for c in r["items"]]
                if not (cursor := r["next_cursor"]):
                    break
            assert walked == expected, (params, limit)


@pytest.mark.parametrize(
    "walk, common, cap",
    [(300, 8, 20_000), (3, 2, 20_000), (3, 100, 20_000), (3, 100, 1)],
    ids=["defaults", "walks-on", "index-lists", "index-over-cap-walks-on"],
)
async def test_text_filter_finds_the_same_pages_whichever_way_it_looks(
    hub: RunningHub, monkeypatch: pytest.MonkeyPatch, walk: int, common: int, cap: int
) -> None:
    from inbox import conversations as convs

    ids = await seed(hub.pool)
    more = await _more_conversations(hub.pool, ids["conv_en"], 40)
    await hub.pool.execute(
        "INSERT INTO messages (conversation_id, channel_id, external_id, direction, text, status, created_at)"
        " SELECT c, $2, 'w-' || c, 'in', CASE WHEN c % 3 = 0 THEN 'which warranty applies' WHEN c % 7 = 0"
        "   THEN 'a rare unicorn' ELSE 'hello ' || c END, 'received', now()"
        " FROM unnest($1::bigint[]) c",
        more, ids["mail"],
    )
    await hub.pool.execute(
        "UPDATE conversations SET last_activity_at = now() - (id % 11) * interval '1 minute',"
        " status = CASE WHEN id % 2 = 0 THEN 'open' ELSE 'pending' END WHERE id = ANY($1::bigint[])",
        more,
    )
    named = await hub.pool.fetchval(  # a client whose name matches, with no message that does
        "WITH cl AS (INSERT INTO clients (name) VALUES ('Ann Warrantyson') RETURNING id)"
        " INSERT INTO conversations (client_id, channel_id, identity_id) SELECT cl.id, channel_id, identity_id"
        " FROM cl, conversations WHERE conversations.id = $1 RETURNING id",
        ids["conv_en"],
    )
    monkeypatch.setattr(convs, "WALK", walk)
    monkeypatch.setattr(convs, "COMMON", common)
    monkeypatch.setattr(convs, "INDEX_CAP", cap)
    for q, status in (("warranty", None), ("warranty", "open"), ("unicorn", None), ("unicorn", "pending"),
                      ("Warrantyson", None), ("zeppelin", None), ("заказ", None), ("Jane", "open")):
        truth = [r["id"] for r in await hub.pool.fetch(
            "SELECT c.id FROM conversations c JOIN clients cl ON cl.id = c.client_id"
            " WHERE ($2::text IS NULL OR c.status = $2) AND (cl.name ILIKE '%' || $1 || '%' OR c.id IN (SELECT"
            "  conversation_id FROM messages WHERE search @@ (websearch_to_tsquery('english', $1)"
            "  || websearch_to_tsquery('russian', $1))))"
            " ORDER BY c.last_activity_at DESC, c.id DESC",
            q, status,
        )]
        walked: list[int] = []
        cursor = None
        while True:
            items, cursor = await convs.list_conversations(hub.pool, q=q, status=status, limit=4, cursor=cursor)
            walked += [c["id"] for c in items]
            if not cursor:
                break
        assert walked == truth, (q, status)
        assert truth or q == "zeppelin"
    assert named in [c["id"] for c in (await convs.list_conversations(hub.pool, q="warrantyson"))[0]]


async def test_the_card_caps_identities_and_timeline_and_pages_on(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ids = await seed(hub.pool)
    client = ids["client_ru"]
    await hub.pool.execute(
        "INSERT INTO identities (channel_id, external_id, client_id, display_name)"
        " SELECT $1, 'extra-' || g, $2, 'Ivan ' || g FROM generate_series(1, 54) g",
        ids["tg"], client,
    )
    # 165 events with one timestamp (ties); a tenth are delivery noise that the timeline leaves out
    await hub.pool.execute(
        "INSERT INTO events (type, client_id, payload, created_at)"
        " SELECT CASE WHEN g % 10 = 0 THEN 'message.status' ELSE 'client.updated' END, $1, '{}',"
        " '2026-01-01T00:00:00Z' FROM generate_series(1, 165) g",
        client,
    )
    identities = [r["id"] for r in await hub.pool.fetch("SELECT id FROM identities WHERE client_id = $1 ORDER BY id DESC", client)]
    events = [
        r["id"] for r in await hub.pool.fetch(
            "SELECT id FROM events WHERE client_id = $1 AND type <> 'message.status' ORDER BY id DESC", client
        )
    ]
    assert len(identities) == 55 and len(events) > 150
    card = check(await api.get(f"/api/v1/clients/{client}"), "GET", "/api/v1/clients/{id}")
    assert [i["id"] for i in card["identities"]] == identities[:50]
    assert card["identities_total"] == 55 and card["identities_next_cursor"]
    assert [e["id"] for e in card["timeline"]] == events[:100][::-1]  # the newest 100, oldest first as before
    assert card["timeline_next_cursor"]

    async def walk(kind: str, limit: int, cursor: str | None) -> list[int]:
        seen: list[int] = []
        while True:
            r = check(
                await api.get(f"/api/v1/clients/{client}/{kind}", params={"limit": limit, **({"cursor": cursor} if cursor else {})}),
                "GET", f"/api/v1/clients/{{id}}/{kind}",
            )
            seen += [x["id"] for x in r["items"]]
            if not (cursor := r["next_cursor"]):
                return seen

    assert await walk("identities", 50, card["identities_next_cursor"]) == identities[50:]
    assert await walk("identities", 7, None) == identities
    assert await walk("timeline", 50, card["timeline_next_cursor"]) == events[100:]  # no gaps, no repeats
    assert await walk("timeline", 7, None) == events
    for kind in ("identities", "timeline"):
        path = f"/api/v1/clients/{client}/{kind}"
        assert (await api.get(path, params={"cursor": "garbage"})).status_code == 400
        assert (await api.get(path, params={"cursor": base64.urlsafe_b64encode(b"9" * 30).decode()})).status_code == 400
        assert (await api.get(f"/api/v1/clients/999999/{kind}")).status_code == 404
    small = check(await api.get(f"/api/v1/clients/{ids['client_en']}"), "GET", "/api/v1/clients/{id}")
    assert (small["identities_total"], small["identities_next_cursor"], small["timeline_next_cursor"]) == (1, None, None)
    # a merged-away id pages through the survivor's; its merges and suggestions are the survivor's too
    await api.post(f"/api/v1/clients/{ids['client_en']}/merge", json={"other_id": client})
    assert len(await walk("identities", 500, None)) == 56
    assert len(await walk("timeline", 500, None)) > len(events)
    merges = check(await api.get(f"/api/v1/clients/{client}/merges"), "GET", "/api/v1/clients/{id}/merges")
    assert [m["survivor"]["id"] for m in merges["items"]] == [ids["client_en"]]
    assert (await api.get(f"/api/v1/clients/{client}/merge-suggestions")).status_code == 200
    assert (await api.get("/api/v1/clients/999999/merges")).status_code == 404
    assert (await api.get("/api/v1/clients/999999/merge-suggestions")).status_code == 404
