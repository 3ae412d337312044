"""SLA regulations: clock arithmetic in business hours (time zones, weekends, holidays, DST), escalation, cadence."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from hub.channels import add_channel
from hub.types import InboundMessage, IngestResult, Sender
from inbox.agents import add_agent
from inbox.conversations import set_status, wake_snoozed
from inbox.ingest import ingest
from inbox.reply import send_reply
from inbox.views import fetch_conversation
from routing.business_hours import DAYS, AlwaysOpen, BadSchedule, add_outside, business_hours
from routing.policies import Policy, create_hours, create_policy, pick
from routing.sla import Stretch, clock_state, escalate_breaches, update_clocks
from tests.conftest import RunningHub, login, make_agent, start_hub, wait_for
from tests.test_api import check

H = dt.timedelta(hours=1)
WEEKDAYS_9_18 = {d: [["09:00", "18:00"]] for d in DAYS[:5]}
ALL_DAY = {d: [["00:00", "24:00"]] for d in DAYS}


def at(tz: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz))


# --- clock arithmetic -----------------------------------------------------------------------------

def test_office_hours_skip_the_night_and_the_weekend() -> None:
    bh = business_hours(time_zone="Europe/Moscow", schedule=WEEKDAYS_9_18)
    friday_5pm = at("Europe/Moscow", 2026, 11, 27, 17, 0)
    assert bh.add(friday_5pm, 2 * H) == at("Europe/Moscow", 2026, 11, 30, 10, 0)  # Monday 10:00
    saturday = at("Europe/Moscow", 2026, 11, 28, 12, 0)
    assert bh.add(saturday, 30 * dt.timedelta(minutes=1)) == at("Europe/Moscow", 2026, 11, 30, 9, 30)
    assert bh.between(friday_5pm, at("Europe/Moscow", 2026, 11, 30, 10, 0)) == 2 * H
    # the same instant written in another zone is the same start
    assert bh.add(friday_5pm.astimezone(ZoneInfo("America/New_York")), 2 * H) == at("Europe/Moscow", 2026, 11, 30, 10, 0)


def test_a_holiday_has_no_hours() -> None:
    bh = business_hours(time_zone="Europe/Moscow", schedule=WEEKDAYS_9_18, holidays=["2026-11-30"])
    assert bh.add(at("Europe/Moscow", 2026, 11, 27, 17, 0), 2 * H) == at("Europe/Moscow", 2026, 12, 1, 10, 0)


def test_the_schedule_is_read_in_its_own_time_zone() -> None:
    tokyo = business_hours(time_zone="Asia/Tokyo", schedule=WEEKDAYS_9_18)
    # 23:30 UTC on Monday is 08:30 Tuesday in Tokyo: the office opens 30 minutes later
    start = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC)
    assert tokyo.add(start, H) == at("Asia/Tokyo", 2026, 12, 1, 10, 0)


def test_dst_days_have_an_hour_more_or_less() -> None:
    berlin = business_hours(time_zone="Europe/Berlin", schedule=ALL_DAY)
    # spring forward (2024-03-31 02:00 → 03:00): four hours of clock run to 04:00 local, not 03:00
    start = at("Europe/Berlin", 2024, 3, 30, 23, 0)
    assert berlin.add(start, 4 * H) == at("Europe/Berlin", 2024, 3, 31, 4, 0) == start.astimezone(dt.UTC) + 4 * H
    assert start + 4 * H == at("Europe/Berlin", 2024, 3, 31, 3, 0)  # what naive wall-clock arithmetic would say
    night = business_hours(time_zone="Europe/Berlin", schedule={"sun": [["01:00", "04:00"]]})
    assert night.between(at("Europe/Berlin", 2024, 3, 31, 0), at("Europe/Berlin", 2024, 4, 1, 0)) == 2 * H
    # fall back (2024-10-27 03:00 → 02:00): the same local interval holds four real hours
    assert night.between(at("Europe/Berlin", 2024, 10, 27, 0), at("Europe/Berlin", 2024, 10, 28, 0)) == 4 * H
    # office hours after the change keep eight real hours; the clock crosses the weekend correctly
    ny = business_hours(time_zone="America/New_York", schedule={d: [["09:00", "17:00"]] for d in DAYS})
    assert ny.add(at("America/New_York", 2024, 3, 9, 16, 0), 2 * H) == at("America/New_York", 2024, 3, 10, 10, 0)
    assert ny.add(at("America/New_York", 2024, 3, 9, 16, 0), 2 * H) == dt.datetime(2024, 3, 10, 14, 0, tzinfo=dt.UTC)


def test_bad_schedules_are_refused_with_a_reason() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"time_zone": "Mars/Olympus", "schedule": {}}, "unknown time zone"),
        ({"time_zone": "UTC", "schedule": {"monday": []}}, "unknown days"),
        ({"time_zone": "UTC", "schedule": {"mon": [["18:00", "09:00"]]}}, "ends before it starts"),
        ({"time_zone": "UTC", "schedule": {"mon": [["9am", "5pm"]]}}, "is not a time"),
        ({"time_zone": "UTC", "schedule": {"mon": [["09:00", "18:00"]]}, "holidays": ["soon"]}, "is not a date"),
    ]
    for kwargs, words in cases:
        with pytest.raises(BadSchedule, match=words):
            business_hours(**kwargs)
    closed = business_hours(time_zone="UTC", schedule={})
    with pytest.raises(BadSchedule, match="no room"):
        closed.add(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), H)


ZONES = ["UTC", "Europe/Moscow", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
         "America/Santiago"]
times = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@st.composite
def schedules(draw: st.DrawFn) -> dict[str, list[list[str]]]:
    week: dict[str, list[list[str]]] = {}
    for day in DAYS:
        spans = []
        for _ in range(draw(st.integers(0, 2))):
            a, b = sorted([draw(times), draw(times)])
            if a != b:
                spans.append([a.strftime("%H:%M"), b.strftime("%H:%M")])
        if draw(st.booleans()) and not spans:
            spans.append([draw(times).strftime("%H:%M"), "24:00"])
        if spans:
            week[day] = spans
    if not week:
        week["wed"] = [["10:00", "11:00"]]
    return week


# Days when clocks change somewhere in ZONES (Lord Howe shifts by 30 minutes), where DST bugs live.
TRANSITIONS = [dt.datetime(*d, tzinfo=dt.UTC) for d in [
    (2024, 3, 10), (2024, 11, 3), (2024, 3, 31), (2024, 10, 27), (2024, 4, 7), (2024, 10, 6),
    (2024, 9, 8), (2025, 3, 30), (2025, 10, 26),
]]
near_transitions = st.builds(
    lambda day, seconds: day + dt.timedelta(seconds=seconds),
    st.sampled_from(TRANSITIONS), st.integers(-3 * 86400, 3 * 86400),
)
instants = st.one_of(
    st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(dt.UTC)),
    near_transitions,
)
durations = st.integers(0, 120 * 3600).map(lambda s: dt.timedelta(seconds=s))


@settings(max_examples=150, deadline=None)
@given(zone=st.sampled_from(ZONES), schedule=schedules(), start=instants, d1=durations, d2=durations,
       holiday_offsets=st.lists(st.integers(0, 20), max_size=3))
def test_business_time_added_is_business_time_elapsed(
    zone: str, schedule: dict[str, list[list[str]]], start: dt.datetime, d1: dt.timedelta, d2: dt.timedelta,
    holiday_offsets: list[int],
) -> None:
    local_day = start.astimezone(ZoneInfo(zone)).date()
    holidays = [(local_day + dt.timedelta(days=n)).isoformat() for n in holiday_offsets]
    bh = business_hours(time_zone=zone, schedule=schedule, holidays=holidays)
    due = bh.add(start, d1)
    assert due >= start
    assert bh.between(start, due) == d1
    if d1 > dt.timedelta(0):
        assert bh.is_open(due - dt.timedelta(microseconds=1))  # the clock ran out during open hours
    lo, hi = sorted([d1, d2])
    assert bh.add(start, lo) <= bh.add(start, hi)
    for h in holidays:
        day = dt.date.fromisoformat(h)
        assert not list(bh.intervals(day))
    # business time is additive over consecutive spans
    middle = start + d2
    end = middle + d1
    assert bh.between(start, middle) + bh.between(middle, end) == bh.between(start, end)


@settings(max_examples=100, deadline=None)
@given(zone=st.sampled_from(ZONES), start=instants, d=durations)
def test_around_the_clock_hours_are_real_time_in_any_zone(zone: str, start: dt.datetime, d: dt.timedelta) -> None:
    bh = business_hours(time_zone=zone, schedule=ALL_DAY)
    assert bh.add(start, d) == start + d == AlwaysOpen().add(start, d)


def test_the_most_specific_policy_applies() -> None:
    def policy(pid: int, team: int | None, segment: str) -> Policy:
        return Policy(pid, f"p{pid}", team, segment, {"first_response": 60}, AlwaysOpen())

    default, support, vip, support_vip = policy(1, None, ""), policy(2, 7, ""), policy(3, None, "vip"), policy(4, 7, "VIP")
    every = [default, support, vip, support_vip]
    assert pick(every, team_id=7, segment="", tags=["vip"]) is support_vip
    assert pick(every, team_id=8, segment="vip", tags=[]) is vip
    assert pick(every, team_id=7, segment="retail", tags=[]) is support
    assert pick(every, team_id=None, segment="", tags=[]) is default
    assert pick([support], team_id=None, segment="", tags=[]) is None


# --- through the API ------------------------------------------------------------------------------

async def regulated(api: httpx.AsyncClient, hub: RunningHub, **policy: Any) -> dict[str, int]:
    ch = await add_channel(hub.pool, kind="loopback", name="Support line", settings={}, secrets={})
    team = check(await api.post("/api/v1/teams", json={"name": "Support", "channel_ids": [ch], "auto_assign": False}),
                 "POST", "/api/v1/teams")
    body = {"name": "Support SLA", "team_id": team["id"], **policy}
    created = check(await api.post("/api/v1/sla/policies", json=body), "POST", "/api/v1/sla/policies")
    return {"channel": ch, "team": team["id"], "policy": created["id"]}


def message(ch: int, n: int, sender: str = "c1", name: str = "Ivan") -> InboundMessage:
    return InboundMessage(channel_id=ch, external_id=f"m{n}", sender=Sender(sender, name), text=f"message {n}")


async def breach_events(pool: asyncpg.Pool, conversation_id: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT payload FROM events WHERE type = 'sla.breached' AND conversation_id = $1 ORDER BY id", conversation_id
    )
    return [r["payload"] for r in rows]


async def test_a_breach_escalates_once_live_and_is_reported(hub: RunningHub, api: httpx.AsyncClient, database_url: str) -> None:
    ids = await regulated(api, hub, first_response_seconds=1, next_response_seconds=1, resolution_seconds=3600)
    manager = await make_agent(hub.pool, "manager", name="Maria Manager")
    await api.patch(f"/api/v1/teams/{ids['team']}", json={"agent_ids": [manager["id"]]})
    mgr = await login(hub.base_url, manager)
    token = mgr.headers["Authorization"].split()[1]
    async with start_hub(database_url):  # a second hub process's routing loop races the first
        async with connect(f"{hub.ws_url}/ws/agent?token={token}", max_queue=None) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            conv = (await ingest(hub.pool, message(ids["channel"], 1))).conversation_id

            clock = await wait_for(lambda: _sla(api, conv), timeout=15)
            assert [k["metric"] for k in clock["clocks"]] == ["first_response", "resolution"]
            created = dt.datetime.fromisoformat((await api.get(f"/api/v1/conversations/{conv}")).json()["created_at"])
            assert dt.datetime.fromisoformat(clock["clocks"][0]["due_at"]) == created + dt.timedelta(seconds=1)

            seen: list[dict[str, Any]] = []
            async with asyncio.timeout(20):
                while True:
                    event = json.loads(await ws.recv())
                    if event.get("type") == "sla.breached":
                        break
                    seen.append(event)
            # the inbox learned of the running clock live, before it ran out
            started = [e for e in seen if e.get("type") == "conversation.updated" and e["data"]["conversation"]["sla"]]
            assert started and started[0]["data"]["conversation"]["sla"]["clocks"][0]["metric"] == "first_response"
            assert event["conversation_id"] == conv
            assert event["data"]["metric"] == "first_response"
            assert event["data"]["team"] == {"id": ids["team"], "name": "Support"}
            assert event["data"]["notify"] == [{"id": manager["id"], "name": "Maria Manager"}]
            assert event["data"]["conversation"]["priority"] == "urgent"

        shown = check(await api.get(f"/api/v1/conversations/{conv}"), "GET", "/api/v1/conversations/{id}")
        assert shown["priority"] == "urgent"
        assert shown["sla"]["overdue"] is True and shown["sla"]["breached"] == ["first_response"]
        queue = (await api.get("/api/v1/queue")).json()["items"]
        assert queue[0]["conversation"]["id"] == conv

        await asyncio.sleep(2.5)  # both processes have swept several times since
        assert len(await breach_events(hub.pool, conv)) == 1

        # the reply stops the first clock; the customer's next message starts the next-response clock
        await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Looking into it"})
        await ingest(hub.pool, message(ids["channel"], 2))
        await wait_for(lambda: _breaches(hub.pool, conv, 2), timeout=15)
        await asyncio.sleep(2.5)
        events = await breach_events(hub.pool, conv)
        assert [e["metric"] for e in events] == ["first_response", "next_response"]
        # an answered wait never breaches
        await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Done"})
        await ingest(hub.pool, message(ids["channel"], 3))
        await api.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Quick answer"})
        await asyncio.sleep(2.5)
        assert [e["metric"] for e in await breach_events(hub.pool, conv)] == ["first_response", "next_response"]

    report = check(await mgr.get("/api/v1/reports/sla-breaches"), "GET", "/api/v1/reports/sla-breaches")
    assert [(r["conversation_id"], r["metric"], r["team"], r["policy"]) for r in report["items"]] == [
        (conv, "first_response", "Support", "Support SLA"), (conv, "next_response", "Support", "Support SLA"),
    ]
    csv = await mgr.get("/api/v1/reports/sla-breaches?format=csv")
    assert csv.text.splitlines()[0].startswith("id,conversation_id,client,metric")
    assert len(csv.text.splitlines()) == 3
    agent = await login(hub.base_url, await make_agent(hub.pool, "agent"))
    assert (await agent.get("/api/v1/reports/sla-breaches")).status_code == 403
    for c in (mgr, agent):
        await c.aclose()


async def _sla(api: httpx.AsyncClient, conv: int) -> Any:
    return (await api.get(f"/api/v1/conversations/{conv}")).json()["sla"]


async def _breaches(pool: asyncpg.Pool, conv: int, n: int) -> bool:
    return len(await breach_events(pool, conv)) >= n


async def test_the_clock_pauses_outside_business_hours(hub: RunningHub, api: httpx.AsyncClient) -> None:
    # Open only on one day, three days from now, in Vladivostok time: a 30-minute promise falls due
    # 30 minutes after that day opens, and nothing breaches meanwhile.
    tz = ZoneInfo("Asia/Vladivostok")
    today = dt.datetime.now(tz).date()
    open_day = today + dt.timedelta(days=3)
    hours = check(await api.post("/api/v1/business-hours", json={
        "name": "Far East office", "time_zone": "Asia/Vladivostok",
        "schedule": {DAYS[open_day.weekday()]: [["09:00", "18:00"]]},
        "holidays": [(today + dt.timedelta(days=1)).isoformat()],
    }), "POST", "/api/v1/business-hours")
    assert hours["schedule"] == {DAYS[open_day.weekday()]: [["09:00", "18:00"]]}
    ids = await regulated(api, hub, first_response_seconds=1800, business_hours_id=hours["id"])
    conv = (await ingest(hub.pool, message(ids["channel"], 1))).conversation_id
    clock = await wait_for(lambda: _sla(api, conv), timeout=15)
    expected = dt.datetime.combine(open_day, dt.time(9, 30), tzinfo=tz)
    assert dt.datetime.fromisoformat(clock["due_at"]) == expected
    assert clock["overdue"] is False
    listed = check(await api.get("/api/v1/business-hours"), "GET", "/api/v1/business-hours")
    assert [h["name"] for h in listed["items"]] == ["Far East office"]
    bad = await api.post("/api/v1/business-hours", json={"name": "x", "time_zone": "Nowhere/Land", "schedule": {}})
    assert bad.status_code == 400 and "time zone" in bad.json()["error"]
    closed = await api.post("/api/v1/business-hours", json={"name": "y", "time_zone": "UTC", "schedule": {}})
    assert closed.status_code == 400 and "no open hours" in closed.json()["error"]


async def test_a_vip_policy_is_stricter_than_the_default(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await add_channel(hub.pool, kind="loopback", name="line", settings={}, secrets={})
    await api.post("/api/v1/sla/policies", json={"name": "Everyone", "first_response_seconds": 3600})
    await api.post("/api/v1/sla/policies", json={"name": "VIP", "segment": "vip", "first_response_seconds": 600})
    regular = await ingest(hub.pool, message(ch, 1, "regular"))
    vip_first = await ingest(hub.pool, message(ch, 2, "vip"))
    await api.patch(f"/api/v1/clients/{vip_first.client_id}", json={"segment": "vip"})
    vip = await ingest(hub.pool, InboundMessage(channel_id=ch, external_id="m3", sender=Sender("vip"), text="again",
                                                new_thread=True))

    async def due(conv: int) -> dt.timedelta | None:
        body = (await api.get(f"/api/v1/conversations/{conv}")).json()
        if not body["sla"]:
            return None
        return dt.datetime.fromisoformat(body["sla"]["due_at"]) - dt.datetime.fromisoformat(body["created_at"])

    assert await wait_for(lambda: due(regular.conversation_id), timeout=15) == dt.timedelta(hours=1)
    assert await wait_for(lambda: due(vip.conversation_id), timeout=15) == dt.timedelta(minutes=10)
    policies = check(await api.get("/api/v1/sla/policies"), "GET", "/api/v1/sla/policies")
    assert {p["name"] for p in policies["items"]} == {"Everyone", "VIP"}
    r = await api.post("/api/v1/sla/policies", json={"name": "Nothing"})
    assert r.status_code == 400 and "at least one" in r.json()["error"]


async def test_clients_due_for_contact(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await add_channel(hub.pool, kind="loopback", name="line", settings={}, secrets={})
    people: dict[str, IngestResult] = {}
    for who in ("quiet", "recent", "never", "retail"):
        r = await ingest(hub.pool, message(ch, len(people), who, who.title()))
        people[who] = r
        segment = "retail" if who == "retail" else "vip"
        await api.patch(f"/api/v1/clients/{r.client_id}", json={"segment": segment})
        if who != "never":
            await api.post(f"/api/v1/conversations/{r.conversation_id}/messages", json={"text": "hello from us"})
    # the quiet VIP last heard from us 20 days ago, the recent one 3 days ago; "never" joined a month ago
    await hub.pool.execute(
        "UPDATE messages SET created_at = now() - interval '20 days' WHERE conversation_id = $1",
        people["quiet"].conversation_id,
    )
    await hub.pool.execute(
        "UPDATE messages SET created_at = now() - interval '3 days' WHERE conversation_id = $1",
        people["recent"].conversation_id,
    )
    await hub.pool.execute("UPDATE clients SET created_at = now() - interval '30 days' WHERE id = $1", people["never"].client_id)
    rule = check(await api.post("/api/v1/contact-rules", json={"segment": "vip", "every_days": 14}), "POST", "/api/v1/contact-rules")
    assert rule["every_days"] == 14
    due = check(await api.get("/api/v1/clients/due-for-contact"), "GET", "/api/v1/clients/due-for-contact")
    assert [d["client"]["name"] for d in due["items"]] == ["Quiet", "Never"]
    quiet = due["items"][0]
    assert quiet["rule"]["every_days"] == 14 and quiet["last_contact_at"] is not None
    assert due["items"][1]["last_contact_at"] is None
    adhoc = (await api.get("/api/v1/clients/due-for-contact?segment=vip&days=2")).json()["items"]
    assert [d["client"]["name"] for d in adhoc] == ["Quiet", "Recent", "Never"]
    assert (await api.get("/api/v1/clients/due-for-contact?segment=retail")).json()["items"] == []
    first = (await api.get("/api/v1/clients/due-for-contact?segment=vip&days=2&limit=2")).json()
    rest = (await api.get(f"/api/v1/clients/due-for-contact?segment=vip&days=2&cursor={first['next_cursor']}")).json()
    assert [d["client"]["name"] for d in first["items"] + rest["items"]] == ["Quiet", "Recent", "Never"]
    assert (await api.post("/api/v1/contact-rules", json={"segment": "vip", "every_days": 7})).status_code == 409
    assert (await api.delete(f"/api/v1/contact-rules/{rule['id']}")).status_code == 200
    assert (await api.get("/api/v1/clients/due-for-contact")).json()["items"] == []


# --- pauses: pending and snoozed stop the clock, reopening resumes it ----------------------------

def test_a_pause_moves_the_due_time_by_the_business_time_it_held() -> None:
    msk = "Europe/Moscow"
    policy = Policy(1, "p", None, "", {"first_response": 2 * 3600},
                    business_hours(time_zone=msk, schedule=WEEKDAYS_9_18))
    friday_5pm = at(msk, 2026, 11, 27, 17, 0)
    assert policy.due("first_response", friday_5pm) == at(msk, 2026, 11, 30, 10, 0)
    # Pending from 17:30 on Friday to 10:00 on Monday: 30 business minutes used, 90 left after 10:00.
    pending = (at(msk, 2026, 11, 27, 17, 30), at(msk, 2026, 11, 30, 10, 0))
    assert policy.due("first_response", friday_5pm, [pending]) == at(msk, 2026, 11, 30, 11, 30)
    # Still pending: the due time stays what it was when the pause began.
    assert policy.due("first_response", friday_5pm, [(pending[0], None)]) == at(msk, 2026, 11, 30, 10, 0)
    # A pause entirely outside business hours changes nothing; one before the start or after the due neither.
    weekend = (at(msk, 2026, 11, 28, 10, 0), at(msk, 2026, 11, 29, 20, 0))
    before = (at(msk, 2026, 11, 26, 10, 0), friday_5pm)
    after = (at(msk, 2026, 11, 30, 10, 0), at(msk, 2026, 11, 30, 12, 0))
    assert policy.due("first_response", friday_5pm, [after, weekend, before]) == at(msk, 2026, 11, 30, 10, 0)
    # Two pauses in one morning: each holds its business minutes.
    monday = [(at(msk, 2026, 11, 30, 9, 15), at(msk, 2026, 11, 30, 9, 45)), (at(msk, 2026, 11, 30, 10, 0), None)]
    assert policy.due("first_response", friday_5pm, monday[:1]) == at(msk, 2026, 11, 30, 10, 30)
    assert policy.due("first_response", friday_5pm, monday) == at(msk, 2026, 11, 30, 10, 30)  # paused at 10:00


def test_what_stops_a_clock_and_what_only_pauses_it() -> None:
    t0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    m = dt.timedelta(minutes=1)
    pending = Stretch("pending", t0 + 5 * m, None)
    # Waiting on the customer: paused where the stretch began.
    assert clock_state(t0, None, [pending]) == ([(t0 + 5 * m, None)], t0 + 5 * m, t0 + 5 * m)
    # Resolved: stopped there, nothing to resume.
    assert clock_state(t0, None, [Stretch("resolved", t0 + 7 * m, None)])[1:] == (t0 + 7 * m, None)
    # Answered while pending: the pause ends at the answer, which stops the clock for good.
    assert clock_state(t0, t0 + 9 * m, [pending]) == ([(t0 + 5 * m, t0 + 9 * m)], t0 + 9 * m, None)
    # A pause after the answer doesn't count; a closed one before it does.
    snoozed = Stretch("snoozed", t0 + 1 * m, t0 + 2 * m)
    later = Stretch("pending", t0 + 20 * m, None)
    assert clock_state(t0, t0 + 9 * m, [snoozed, later]) == ([(t0 + m, t0 + 2 * m)], t0 + 9 * m, None)
    # Open again after a snooze: running.
    assert clock_state(t0, None, [snoozed]) == ([(t0 + m, t0 + 2 * m)], None, None)


@st.composite
def pause_lists(draw: st.DrawFn, start: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Disjoint closed pauses after `start`."""
    cursor, out = start, []
    for _ in range(draw(st.integers(0, 4))):
        gap, length = draw(st.integers(0, 48 * 3600)), draw(st.integers(1, 72 * 3600))
        a = cursor + dt.timedelta(seconds=gap)
        cursor = a + dt.timedelta(seconds=length)
        out.append((a, cursor))
    return out


@settings(max_examples=150, deadline=None)
@given(zone=st.sampled_from(ZONES), schedule=schedules(), start=instants, d=durations, data=st.data())
def test_business_time_outside_pauses_adds_up_to_the_target(
    zone: str, schedule: dict[str, list[list[str]]], start: dt.datetime, d: dt.timedelta, data: st.DataObject
) -> None:
    bh = business_hours(time_zone=zone, schedule=schedule)
    pauses = data.draw(pause_lists(start))
    due = add_outside(bh, start, d, pauses)
    paused = sum((bh.between(a, min(b, due)) for a, b in pauses if a < due), dt.timedelta(0))
    assert bh.between(start, due) - paused == d
    assert due >= bh.add(start, d)
    assert add_outside(bh, start, d, []) == bh.add(start, d)
    if d > dt.timedelta(0):  # it runs out while open and not paused
        assert bh.is_open(due - dt.timedelta(microseconds=1))
        assert not any(a < due <= b for a, b in pauses)


async def _clock_row(pool: asyncpg.Pool, conv: int, metric: str = "first_response") -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM sla_clocks WHERE conversation_id = $1 AND metric = $2", conv, metric)
    assert row is not None
    return row


async def test_a_paused_clock_never_breaches_and_resumes_with_the_time_it_had_left(pool: asyncpg.Pool) -> None:
    ch = await add_channel(pool, kind="loopback", name="line", settings={}, secrets={})
    await create_policy(pool, {"name": "Ten minutes", "first_response_seconds": 600})
    agent = await add_agent(pool, email="a@example.com", name="Anna", role="agent", password="correct horse")
    sent = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    conv = (await ingest(pool, InboundMessage(channel_id=ch, external_id="m1", sender=Sender("c1", "Ivan"),
                                              text="hello", sent_at=sent))).conversation_id
    await set_status(pool, conversation_id=conv, status="pending", agent=agent)
    # Pending since four minutes after the customer wrote: six of the ten minutes are left, and the
    # due time as it stood then (20 minutes ago) has passed long since.
    paused_since = sent + dt.timedelta(minutes=4)
    await pool.execute("UPDATE conversation_pauses SET started_at = $2 WHERE conversation_id = $1", conv, paused_since)
    assert await update_clocks(pool, [conv]) == [conv]
    k = await _clock_row(pool, conv)
    assert (k["started_at"], k["due_at"], k["stopped_at"], k["paused_at"]) == (
        sent, sent + dt.timedelta(minutes=10), paused_since, paused_since)
    assert await escalate_breaches(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM sla_breaches") == 0
    body = await fetch_conversation(pool, conv)
    assert body is not None and body["sla"]["overdue"] is False and body["sla"]["due_at"] is None

    # Reopened: the clock runs again with its six minutes.
    reopened = await set_status(pool, conversation_id=conv, status="open", agent=agent)
    resumed = await pool.fetchval("SELECT ended_at FROM conversation_pauses WHERE conversation_id = $1", conv)
    assert await update_clocks(pool, [conv]) == [conv]
    k = await _clock_row(pool, conv)
    assert (k["due_at"], k["stopped_at"], k["paused_at"]) == (resumed + dt.timedelta(minutes=6), None, None)
    assert reopened["status"] == "open" and await escalate_breaches(pool) == []

    # Seven minutes after reopening it has run out: one breach, once.
    await pool.execute("UPDATE conversation_pauses SET ended_at = $2 WHERE conversation_id = $1",
                       conv, resumed - dt.timedelta(minutes=7))
    await update_clocks(pool, [conv])
    breached = await escalate_breaches(pool)
    assert [(b["conversation"]["id"], b["metric"]) for b in breached] == [(conv, "first_response")]
    assert breached[0]["due_at"] == (resumed - dt.timedelta(minutes=1)).isoformat()
    assert await escalate_breaches(pool) == []
    # Snoozed, and woken when the snooze runs out (housekeeping, not an agent): the same clock
    # (same start) does not breach a second time.
    await set_status(pool, conversation_id=conv, status="snoozed", agent=agent,
                     snoozed_until=dt.datetime.now(dt.UTC) + H)
    await update_clocks(pool, [conv])
    assert (await _clock_row(pool, conv))["paused_at"] is not None
    await pool.execute("UPDATE conversations SET snoozed_until = now() - interval '1 second' WHERE id = $1", conv)
    assert await wake_snoozed(pool) == 1
    await update_clocks(pool, [conv])
    assert await pool.fetchval(
        "SELECT count(*) FROM conversation_pauses WHERE conversation_id = $1 AND ended_at IS NULL", conv) == 0
    k = await _clock_row(pool, conv)
    assert k["paused_at"] is None and k["stopped_at"] is None and k["breached_at"] is not None
    assert await escalate_breaches(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM sla_breaches") == 1


async def test_the_api_shows_a_pending_conversations_clock_paused_then_running_due_later(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    ids = await regulated(api, hub, first_response_seconds=3600)
    sent = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    conv = (await ingest(hub.pool, InboundMessage(channel_id=ids["channel"], external_id="m1",
                                                  sender=Sender("c1", "Ivan"), text="hello", sent_at=sent))).conversation_id
    running = await wait_for(lambda: _sla(api, conv), timeout=15)
    due_before = dt.datetime.fromisoformat(running["due_at"])
    assert running["paused"] is False and due_before == sent + H
    assert dt.datetime.fromisoformat(running["clocks"][0]["started_at"]) == sent

    assert (await api.post(f"/api/v1/conversations/{conv}/status", json={"status": "pending"})).status_code == 200

    async def shown(paused: bool) -> Any:
        body = check(await api.get(f"/api/v1/conversations/{conv}"), "GET", "/api/v1/conversations/{id}")
        return body["sla"] if body["sla"]["paused"] is paused else None

    sla = await wait_for(lambda: shown(True), timeout=15)
    [k] = sla["clocks"]
    paused_at = dt.datetime.fromisoformat(k["paused_at"])
    # Paused, not answered: stopped where it paused (as before), and no due time in the summary.
    assert k["metric"] == "first_response" and k["stopped_at"] == k["paused_at"] and paused_at > sent
    assert dt.datetime.fromisoformat(k["started_at"]) == sent and dt.datetime.fromisoformat(k["due_at"]) == due_before
    assert sla["due_at"] is None and sla["overdue"] is False and sla["breached"] == []
    listed = check(await api.get("/api/v1/conversations?status=pending"), "GET", "/api/v1/conversations")
    assert [c["sla"]["paused"] for c in listed["items"]] == [True]

    assert (await api.post(f"/api/v1/conversations/{conv}/status", json={"status": "open"})).status_code == 200
    sla = await wait_for(lambda: shown(False), timeout=15)
    resumed = await hub.pool.fetchval("SELECT ended_at FROM conversation_pauses WHERE conversation_id = $1", conv)
    [k] = sla["clocks"]
    assert k["paused_at"] is None and k["stopped_at"] is None
    # It resumes with the time it had left when it paused: the due time moves by the pause.
    due_after = dt.datetime.fromisoformat(k["due_at"])
    assert due_after == resumed + (due_before - paused_at) and due_after > due_before
    assert dt.datetime.fromisoformat(sla["due_at"]) == due_after


async def test_business_hours_across_a_weekend_pause_through_the_store(pool: asyncpg.Pool) -> None:
    msk = "Europe/Moscow"
    hours = await create_hours(pool, {"name": "Office", "time_zone": msk, "schedule": WEEKDAYS_9_18})
    await create_policy(pool, {"name": "Two hours", "first_response_seconds": 7200, "business_hours_id": hours["id"]})
    agent = await add_agent(pool, email="a@example.com", name="Anna", role="agent", password="correct horse")
    ch = await add_channel(pool, kind="loopback", name="line", settings={}, secrets={})
    friday_5pm = at(msk, 2026, 11, 27, 17, 0)
    conv = (await ingest(pool, InboundMessage(channel_id=ch, external_id="m1", sender=Sender("c1", "Ivan"),
                                              text="hello", sent_at=friday_5pm))).conversation_id
    await set_status(pool, conversation_id=conv, status="pending", agent=agent)
    await set_status(pool, conversation_id=conv, status="open", agent=agent)
    await pool.execute("UPDATE conversation_pauses SET started_at = $2, ended_at = $3 WHERE conversation_id = $1",
                       conv, at(msk, 2026, 11, 27, 17, 30), at(msk, 2026, 11, 30, 10, 0))
    await update_clocks(pool, [conv])
    assert (await _clock_row(pool, conv))["due_at"] == at(msk, 2026, 11, 30, 11, 30)
    # That Monday is long past: the clock that runs again breaches, with the due time it had.
    [breach] = await escalate_breaches(pool)
    assert breach["due_at"] == at(msk, 2026, 11, 30, 11, 30).astimezone(dt.UTC).isoformat()


async def test_resolving_stops_every_clock_and_machine_mail_starts_none(pool: asyncpg.Pool) -> None:
    ch = await add_channel(pool, kind="loopback", name="line", settings={}, secrets={})
    await create_policy(pool, {"name": "Fast", "first_response_seconds": 60, "next_response_seconds": 60,
                               "resolution_seconds": 120})
    agent = await add_agent(pool, email="a@example.com", name="Anna", role="agent", password="correct horse")
    hour_ago = dt.datetime.now(dt.UTC) - H
    spam = (await ingest(pool, InboundMessage(channel_id=ch, external_id="s1", sender=Sender("spam", "Spam"),
                                              text="buy now", sent_at=hour_ago))).conversation_id
    await set_status(pool, conversation_id=spam, status="resolved", agent=agent)
    await update_clocks(pool, [spam])
    k = await _clock_row(pool, spam, "resolution")
    assert k["stopped_at"] is not None and k["paused_at"] is None
    assert await escalate_breaches(pool) == []

    conv = (await ingest(pool, InboundMessage(channel_id=ch, external_id="m1", sender=Sender("c1", "Ivan"),
                                              text="hello"))).conversation_id
    await send_reply(pool, conversation_id=conv, agent=agent, text="Hi!")
    await ingest(pool, InboundMessage(channel_id=ch, external_id="m2", sender=Sender("c1", "Ivan"), text="I'm away",
                                      sent_at=hour_ago + H, flags=("auto_reply",)))
    await update_clocks(pool, [conv])
    metrics = {r["metric"]: r for r in await pool.fetch("SELECT * FROM sla_clocks WHERE conversation_id = $1", conv)}
    assert set(metrics) == {"first_response", "resolution"}  # the auto-reply waits for nobody
    assert metrics["first_response"]["stopped_at"] is not None
