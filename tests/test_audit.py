"""The audit log and the history exports: who may see them, what gets written, what comes out."""

from __future__ import annotations

import csv
import io
from typing import Any

import asyncpg
import httpx

from hub.channels import add_channel
from hub.types import InboundMessage, Sender
from inbox.ingest import ingest
from tests.conftest import RunningHub, login, make_agent
from tests.test_api import check

MANAGER_ONLY = [
    "/api/v1/audit",
    "/api/v1/search?q=заказ",
    "/api/v1/search/export?q=заказ&format=csv",
    "/api/v1/conversations/{conv}/transcript",
    "/api/v1/conversations/{conv}/transcript?format=txt",
    "/api/v1/clients/{client}/transcript?format=csv",
]


async def _seed(pool: asyncpg.Pool) -> dict[str, int]:
    tg = await add_channel(pool, kind="loopback", name="Bot", settings={}, secrets={})
    mail = await add_channel(pool, kind="loopback", name="Mail", settings={}, secrets={})
    a = await ingest(pool, InboundMessage(channel_id=tg, external_id="1", sender=Sender("5", "Ivan Petrov"),
                                          text="Где мой заказ?\nНомер =SUM(A1:A9)"))
    b = await ingest(pool, InboundMessage(channel_id=mail, external_id="<b@x>",
                                          sender=Sender("jane@example.com", "Jane", email="jane@example.com"), text="Order late"))
    return {"tg": tg, "conv": a.conversation_id, "client": a.client_id, "message": a.message_id,
            "conv_b": b.conversation_id, "client_b": b.client_id}


async def _entries(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    body = check(await api.get("/api/v1/audit", params=params), "GET", "/api/v1/audit")
    items: list[dict[str, Any]] = body["items"]
    return items


async def _same_transaction(pool: asyncpg.Pool, audit_id: int, event_type: str, **where: int) -> bool:
    """The audit row and the action's event row were written by one transaction (same xmin)."""
    cond = " AND ".join(f"{k} = ${i + 2}" for i, k in enumerate(where))
    event_xmin = await pool.fetchval(
        f"SELECT xmin::text FROM events WHERE type = $1 AND {cond} ORDER BY id DESC LIMIT 1", event_type, *where.values()
    )
    audit_xmin = await pool.fetchval("SELECT xmin::text FROM audit_log WHERE id = $1", audit_id)
    return event_xmin is not None and event_xmin == audit_xmin


async def test_only_managers_and_admins_read_the_audit_log_and_export(hub: RunningHub) -> None:
    ids = await _seed(hub.pool)
    agents = {r: await make_agent(hub.pool, r) for r in ("agent", "manager", "admin")}
    people = {r: await login(hub.base_url, a) for r, a in agents.items()}
    anonymous = httpx.AsyncClient(base_url=hub.base_url)
    try:
        for template in MANAGER_ONLY:
            url = template.format(conv=ids["conv"], client=ids["client"])
            assert (await anonymous.get(url)).status_code == 401, url
            r = await people["agent"].get(url)
            assert r.status_code == 403 and "manager" in r.json()["error"], url
            for role in ("manager", "admin"):
                assert (await people[role].get(url)).status_code == 200, (url, role)
        # every export is on the log under who made it; the agent's refused attempts are not
        exports = await _entries(people["admin"], action="history.export")
        assert len(exports) == 2 * 4
        assert {e["agent"]["id"] for e in exports} == {agents["manager"]["id"], agents["admin"]["id"]}
    finally:
        await anonymous.aclose()
        for c in people.values():
            await c.aclose()


async def test_reads_replies_assignments_merges_and_exports_are_logged(hub: RunningHub) -> None:
    ids = await _seed(hub.pool)
    agent = await make_agent(hub.pool, "agent", name="Artem Agent")
    manager = await make_agent(hub.pool, "manager", name="Marta Manager")
    as_agent, as_manager = await login(hub.base_url, agent), await login(hub.base_url, manager)
    conv = ids["conv"]
    try:
        await as_agent.get(f"/api/v1/conversations/{conv}/messages")
        reply = (await as_agent.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Едет!"})).json()
        await as_agent.post(f"/api/v1/conversations/{conv}/assign", json={"agent_id": manager["id"]})
        await as_agent.post(f"/api/v1/conversations/{conv}/status", json={"status": "resolved"})
        merged = (await as_agent.post(f"/api/v1/clients/{ids['client']}/merge", json={"other_id": ids["client_b"]})).json()
        await as_agent.post(f"/api/v1/merges/{merged['merges'][0]['id']}/undo")
        # refused actions leave nothing
        assert (await as_agent.post("/api/v1/conversations/999999/messages", json={"text": "x"})).status_code == 404
        assert (await as_agent.post(f"/api/v1/clients/{ids['client']}/merge", json={"other_id": 999999})).status_code == 404
        await as_manager.get(f"/api/v1/conversations/{conv}/transcript?format=csv")

        mine = await _entries(as_manager, agent=str(agent["id"]))
        assert [e["action"] for e in reversed(mine)] == [
            "conversation.read", "message.reply", "conversation.assign", "conversation.status", "client.merge",
            "client.unmerge",
        ]
        by_action = {e["action"]: e for e in mine}
        assert all(e["agent"] == {"id": agent["id"], "name": "Artem Agent"} for e in mine)
        assert by_action["message.reply"]["details"] == {"message_id": reply["id"]}
        assert by_action["message.reply"]["conversation_id"] == conv
        assert by_action["conversation.assign"]["details"] == {"from_agent_id": None, "to_agent_id": manager["id"]}
        assert by_action["client.merge"]["details"]["merged_client_id"] == ids["client_b"]
        assert by_action["client.unmerge"]["details"]["restored_client_id"] == ids["client_b"]
        # each written by the transaction that did the thing
        assert await _same_transaction(hub.pool, by_action["message.reply"]["id"], "message.created", conversation_id=conv)
        assert await _same_transaction(hub.pool, by_action["conversation.assign"]["id"], "conversation.assigned", conversation_id=conv)
        assert await _same_transaction(hub.pool, by_action["client.merge"]["id"], "client.merged", client_id=ids["client"])
        assert not await _same_transaction(hub.pool, by_action["client.merge"]["id"], "message.created", conversation_id=conv)

        [export] = await _entries(as_manager, action="history.export")
        assert export["agent"]["name"] == "Marta Manager" and export["conversation_id"] == conv
        assert export["details"] == {"what": "conversation", "format": "csv"}
        assert [e["action"] for e in await _entries(as_manager, conversation=str(conv), limit=2)] == [
            "history.export", "conversation.status",
        ]
        page = check(await as_manager.get("/api/v1/audit", params={"limit": 3}), "GET", "/api/v1/audit")
        rest = check(await as_manager.get("/api/v1/audit", params={"limit": 500, "cursor": page["next_cursor"]}),
                     "GET", "/api/v1/audit")
        all_ids = [e["id"] for e in page["items"] + rest["items"]]
        assert all_ids == sorted(all_ids, reverse=True) and len(all_ids) == len(set(all_ids)) >= 7
        assert (await as_manager.get("/api/v1/audit?action=nonsense")).status_code == 400
    finally:
        await as_agent.aclose()
        await as_manager.aclose()


async def test_transcripts_and_search_export(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ids = await _seed(hub.pool)
    conv = ids["conv"]
    await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Заказ уже едет"})
    await api.post(f"/api/v1/conversations/{conv}/notes", json={"text": "Проверить заказы клиента"})
    await api.post(f"/api/v1/clients/{ids['client']}/notes", json={"text": "VIP since 2020"})

    doc = check(await api.get(f"/api/v1/conversations/{conv}/transcript"), "GET", "/api/v1/conversations/{id}/transcript")
    assert [(i["kind"], i["author"]["type"]) for i in doc["items"]] == [("message", "client"), ("message", "agent"), ("note", "agent")]

    r = await api.get(f"/api/v1/conversations/{conv}/transcript?format=txt")
    assert r.headers["content-type"].startswith("text/plain") and "attachment" in r.headers["content-disposition"]
    lines = r.text.splitlines()
    assert lines[0].startswith(f"Conversation {conv} · Bot (loopback) · Ivan Petrov")
    assert lines[1].endswith("] Ivan Petrov: Где мой заказ?") and lines[2] == "    Номер =SUM(A1:A9)"
    assert lines[3].endswith("] Alice Admin (agent): Заказ уже едет")
    assert lines[4].endswith("] (private note) Alice Admin: Проверить заказы клиента")

    r = await api.get(f"/api/v1/conversations/{conv}/transcript?format=csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["kind"] for row in rows] == ["message", "message", "note"]
    assert rows[0]["text"] == "Где мой заказ?\nНомер =SUM(A1:A9)" and rows[0]["direction"] == "in"

    whole = check(await api.get(f"/api/v1/clients/{ids['client']}/transcript"), "GET", "/api/v1/clients/{id}/transcript")
    assert [c["conversation"]["id"] for c in whole["conversations"]] == [conv]
    assert [n["text"] for n in whole["notes"]] == ["VIP since 2020"]
    assert "VIP since 2020" in (await api.get(f"/api/v1/clients/{ids['client']}/transcript?format=txt")).text

    exported = check(await api.get("/api/v1/search/export", params={"q": "заказы"}), "GET", "/api/v1/search/export")
    assert exported["truncated"] is False
    assert {(h["kind"], h["text"]) for h in exported["items"]} == {
        ("message", "Где мой заказ?\nНомер =SUM(A1:A9)"), ("message", "Заказ уже едет"), ("note", "Проверить заказы клиента"),
    }
    r = await api.get("/api/v1/search/export", params={"q": "=SUM", "format": "csv"})
    [row] = list(csv.DictReader(io.StringIO(r.text)))
    assert row["client_name"] == "Ivan Petrov" and row["text"].startswith("Где")
    r = await api.get("/api/v1/search/export", params={"q": "late", "format": "csv"})
    [row] = list(csv.DictReader(io.StringIO(r.text)))
    assert row["text"] == "Order late"
    formula = await ingest(hub.pool, InboundMessage(channel_id=ids["tg"], external_id="2", sender=Sender("5", "Ivan Petrov"),
                                                    text="=HYPERLINK(\"http://evil\") заказ"))
    r = await api.get("/api/v1/search/export", params={"q": "hyperlink", "format": "csv"})
    [row] = list(csv.DictReader(io.StringIO(r.text)))
    assert row["id"] == str(formula.message_id) and row["text"] == "'=HYPERLINK(\"http://evil\") заказ"
    assert (await api.get("/api/v1/search/export", params={"q": "x", "format": "pdf"})).status_code == 400
    assert (await api.get("/api/v1/conversations/999999/transcript")).status_code == 404
