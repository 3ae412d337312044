"""Manager reports with exact numbers for a seeded week: who answered, how fast, who was late.

The week: Anna answers two customers within the 10-minute first-response target;
Boris answers one in time and one 25 minutes late, and leaves a third unanswered
(an SLA breach while it is his); a conversation ten days old is outside the period.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from hub.channels import add_channel
from hub.types import InboundMessage, Sender
from inbox.ingest import ingest
from inbox.reply import send_reply
from routing.sla import escalate_breaches, update_clocks
from tests.conftest import RunningHub, login, make_agent, wait_for
from tests.test_api import check

MIN = dt.timedelta(minutes=1)


@dataclass
class Week:
    start: dt.datetime  # midnight UTC, seven days ago: the period is [start, now]
    day: dt.datetime  # the busy day, two days ago at 00:00 UTC
    anna: dict[str, Any]
    boris: dict[str, Any]
    manager: dict[str, Any]
    unanswered: int  # Boris's conversation that breached
    late: int


async def _customer(pool: asyncpg.Pool, ch: int, who: str, at: dt.datetime, n: int = 1) -> int:
    r = await ingest(pool, InboundMessage(channel_id=ch, external_id=f"{who}-{n}", sender=Sender(who, who),
                                          text=f"{who} asks ({n})", sent_at=at))
    return r.conversation_id


async def _reply(pool: asyncpg.Pool, conv: int, agent: dict[str, Any], at: dt.datetime) -> None:
    msg = await send_reply(pool, conversation_id=conv, agent=agent, text="Here to help")
    await pool.execute("UPDATE messages SET created_at = $2 WHERE id = $1", msg["id"], at)


async def seed_week(hub: RunningHub, admin: httpx.AsyncClient) -> Week:
    pool = hub.pool
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day, start = today - dt.timedelta(days=2), today - dt.timedelta(days=7)
    nine = day + dt.timedelta(hours=9)
    tg = await add_channel(pool, kind="loopback", name="Telegram", settings={}, secrets={})
    mail = await add_channel(pool, kind="loopback", name="Mail", settings={}, secrets={})
    anna = await make_agent(pool, "agent", name="Anna Agent")
    boris = await make_agent(pool, "agent", name="Boris Agent")
    manager = await make_agent(pool, "manager", name="Max Manager")

    # Anna: 4 and 6 minutes (and a second exchange in the first conversation).
    olga = await _customer(pool, tg, "Olga", nine)
    await _reply(pool, olga, anna, nine + 4 * MIN)
    await _customer(pool, tg, "Olga", nine + 30 * MIN, 2)
    await _reply(pool, olga, anna, nine + 32 * MIN)
    petr = await _customer(pool, tg, "Petr", nine + 60 * MIN)
    await _reply(pool, petr, anna, nine + 66 * MIN)
    # Boris: 25 minutes (late), 2 minutes, and one left unanswered (assigned to him).
    late = await _customer(pool, tg, "Lena", nine + 120 * MIN)
    await _reply(pool, late, boris, nine + 145 * MIN)
    unanswered = await _customer(pool, mail, "Vera", nine + 180 * MIN)
    r = await admin.post(f"/api/v1/conversations/{unanswered}/assign", json={"agent_id": boris["id"]})
    assert r.status_code == 200, r.text
    quick = await _customer(pool, mail, "Ivan", nine + 300 * MIN)
    await _reply(pool, quick, boris, nine + 302 * MIN)
    # Ten days ago, outside the period: Anna answered after 50 minutes.
    old = await _customer(pool, tg, "Oleg", today - dt.timedelta(days=10) + dt.timedelta(hours=9))
    await _reply(pool, old, anna, today - dt.timedelta(days=10) + dt.timedelta(hours=9, minutes=50))

    # The target comes last, so the clocks are computed once, from the finished week.
    r = await admin.post("/api/v1/sla/policies", json={"name": "Ten minutes", "first_response_seconds": 600})
    assert r.status_code == 201, r.text
    conversations = [olga, petr, late, unanswered, quick, old]
    await update_clocks(pool, conversations)
    await escalate_breaches(pool)  # the routing loop may have got there first: once either way
    await wait_for(lambda: pool.fetchval("SELECT count(*) FROM sla_breaches"))
    return Week(start, day, anna, boris, manager, unanswered, late)


def period(w: Week) -> str:
    to = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    return f"from={w.start.isoformat()}&to={to.isoformat()}".replace("+", "%2B")


async def test_agents_volume_and_breaches_for_a_seeded_week(hub: RunningHub, api: httpx.AsyncClient) -> None:
    w = await seed_week(hub, api)
    mgr = await login(hub.base_url, w.manager)
    q = period(w)

    report = check(await mgr.get(f"/api/v1/reports/agents?{q}"), "GET", "/api/v1/reports/agents")
    assert report["columns"] == ["agent_id", "agent", "conversations", "replies", "first_responses",
                                 "median_first_response_min", "p90_first_response_min", "late_first_responses",
                                 "sla_breaches"]
    rows = [{k: v for k, v in r.items() if k != "agent_id"} for r in report["items"]]
    assert rows == [
        {"agent": "Anna Agent", "conversations": 2, "replies": 3, "first_responses": 2,
         "median_first_response_min": 5.0, "p90_first_response_min": 5.8, "late_first_responses": 0, "sla_breaches": 0},
        {"agent": "Boris Agent", "conversations": 2, "replies": 2, "first_responses": 2,
         "median_first_response_min": 13.5, "p90_first_response_min": 22.7, "late_first_responses": 1,
         "sla_breaches": 1},
    ]
    assert [r["agent_id"] for r in report["items"]] == [w.anna["id"], w.boris["id"]]

    as_csv = await mgr.get(f"/api/v1/reports/agents?{q}&format=csv")
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["agent"], r["late_first_responses"], r["median_first_response_min"]) for r in lines] == [
        ("Anna Agent", "0", "5.0"), ("Boris Agent", "1", "13.5")]

    # The rows behind the table: every first response of the period, and Boris's late one.
    path = "/api/v1/reports/first-responses"
    every = check(await mgr.get(f"{path}?{q}"), "GET", path)["items"]
    assert [(r["client"], r["agent"], r["minutes"], r["late"]) for r in every] == [
        ("Olga", "Anna Agent", 4.0, False), ("Petr", "Anna Agent", 6.0, False), ("Lena", "Boris Agent", 25.0, True),
        ("Ivan", "Boris Agent", 2.0, False)]
    late = check(await mgr.get(f"{path}?{q}&agent={w.boris['id']}&late=1"), "GET", path)["items"]
    nine = w.day + dt.timedelta(hours=9)
    assert [(r["conversation_id"], r["agent_id"], r["customer_at"], r["replied_at"], r["due_at"]) for r in late] == [
        (w.late, w.boris["id"], (nine + 120 * MIN).isoformat(), (nine + 145 * MIN).isoformat(),
         (nine + 130 * MIN).isoformat())]
    late_csv = await mgr.get(f"{path}?{q}&late=1&format=csv")
    assert [r["client"] for r in csv.DictReader(io.StringIO(late_csv.text))] == ["Lena"]
    assert (await mgr.get(f"{path}?agent=boris")).status_code == 400

    # The week before: only the old conversation, 50 minutes, late; nobody breached then.
    before = f"from={(w.start - dt.timedelta(days=7)).isoformat()}&to={w.start.isoformat()}".replace("+", "%2B")
    earlier = check(await mgr.get(f"/api/v1/reports/agents?{before}"), "GET", "/api/v1/reports/agents")["items"]
    assert [(r["agent"], r["replies"], r["first_responses"], r["median_first_response_min"], r["late_first_responses"],
             r["sla_breaches"]) for r in earlier] == [("Anna Agent", 1, 1, 50.0, 1, 0), ("Boris Agent", 0, 0, None, 0, 0)]

    volume = check(await mgr.get(f"/api/v1/reports/volume?{q}"), "GET", "/api/v1/reports/volume")
    day = w.day.date().isoformat()
    assert volume["items"] == [
        {"day": day, "channel": "Mail", "inbound": 2, "outbound": 1, "conversations": 2},
        {"day": day, "channel": "Telegram", "inbound": 4, "outbound": 4, "conversations": 3},
    ]
    # Days in the manager's time zone: 14:00 UTC is already tomorrow in Vladivostok.
    far_east = check(await mgr.get(f"/api/v1/reports/volume?{q}&tz=Asia/Vladivostok"), "GET", "/api/v1/reports/volume")
    next_day = (w.day.date() + dt.timedelta(days=1)).isoformat()
    assert [(r["day"], r["channel"], r["inbound"], r["outbound"]) for r in far_east["items"]] == [
        (day, "Mail", 1, 0), (day, "Telegram", 4, 4), (next_day, "Mail", 1, 1)]

    breaches = check(await mgr.get(f"/api/v1/reports/sla-breaches?{q}"), "GET", "/api/v1/reports/sla-breaches")
    assert [(b["conversation_id"], b["client"], b["metric"], b["assignee"], b["policy"]) for b in breaches["items"]] == [
        (w.unanswered, "Vera", "first_response", "Boris Agent", "Ten minutes")]
    assert breaches["items"][0]["due_at"] == (nine + 190 * MIN).isoformat()

    for path in ("/api/v1/reports/agents", "/api/v1/reports/volume", "/api/v1/reports/sla-breaches",
                 "/api/v1/reports/first-responses"):
        bad = await mgr.get(f"{path}?from=2026-11-10&to=2026-11-09")
        assert bad.status_code == 400 and "later than" in bad.json()["error"]
    bad_tz = await mgr.get("/api/v1/reports/volume?tz=Mars/Olympus")
    assert bad_tz.status_code == 400 and "time zone" in bad_tz.json()["error"]
    agent = await login(hub.base_url, w.anna)
    assert (await agent.get(f"/api/v1/reports/agents?{q}")).status_code == 403
    for c in (mgr, agent):
        await c.aclose()


async def test_a_first_response_counts_from_the_customers_first_message(hub: RunningHub, api: httpx.AsyncClient) -> None:
    # The company wrote first (an outbound e-mail); the customer answered an hour later; the
    # agent's reply 3 minutes after that is a 3-minute first response, not 63.
    ch = await add_channel(hub.pool, kind="loopback", name="Mail", settings={}, secrets={})
    anna = await make_agent(hub.pool, "agent", name="Anna Agent")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    conv = (await ingest(hub.pool, InboundMessage(channel_id=ch, external_id="out-1", sender=Sender("c", "Client"),
                                                  text="Your order shipped", direction="out", sent_at=start))).conversation_id
    await _reply(hub.pool, conv, anna, start)
    await _customer(hub.pool, ch, "c", start + 60 * MIN)
    await _reply(hub.pool, conv, anna, start + 63 * MIN)
    rows = (await api.get("/api/v1/reports/agents")).json()["items"]
    assert [(r["agent"], r["replies"], r["first_responses"], r["median_first_response_min"]) for r in rows] == [
        ("Anna Agent", 2, 1, 3.0)]
