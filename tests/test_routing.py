"""Routing: round-robin within capacity, the queue, VIP first, presence and grace time, two hub processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect

from hub.channels import add_channel
from hub.types import InboundMessage, Sender
from inbox.ingest import ingest
from tests.conftest import RunningHub, free_port, login, make_agent, wait_for
from tests.test_api import check

ROOT = Path(__file__).resolve().parent.parent


async def until(predicate: Any, timeout: float = 15.0) -> Any:
    """Routing reacts within a tick; a busy machine gets more slack."""
    return await wait_for(predicate, timeout=timeout)


def message(ch: int, n: int, sender: str | None = None) -> InboundMessage:
    return InboundMessage(channel_id=ch, external_id=f"m{n}", sender=Sender(sender or f"c{n}", f"Client {n}"), text=f"hi {n}")


@contextlib.asynccontextmanager
async def online(ws_url: str, agent: dict[str, Any], base_url: str) -> AsyncIterator[ClientConnection]:
    """An agent with the inbox open: their /ws/agent socket."""
    client = await login(base_url, agent)
    token = client.headers["Authorization"].split()[1]
    await client.aclose()
    # Nobody reads most events here: an unbounded queue lets close() finish without draining them.
    async with connect(f"{ws_url}/ws/agent?token={token}", max_queue=None) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        yield ws


async def statuses(api: httpx.AsyncClient) -> dict[int, str]:
    body = check(await api.get("/api/v1/presence"), "GET", "/api/v1/presence")
    return {p["agent"]["id"]: p["status"] for p in body["items"]}


async def loads(pool: asyncpg.Pool) -> Counter[int]:
    rows = await pool.fetch("SELECT assignee_id FROM conversations WHERE assignee_id IS NOT NULL AND status = 'open'")
    return Counter(r["assignee_id"] for r in rows)


async def assignee(pool: asyncpg.Pool, conv: int) -> int | None:
    value: int | None = await pool.fetchval("SELECT assignee_id FROM conversations WHERE id = $1", conv)
    return value


async def team_of(api: httpx.AsyncClient, channel: int, agents: list[dict[str, Any]], capacity: int) -> dict[str, Any]:
    team = check(await api.post("/api/v1/teams", json={
        "name": "Support", "channel_ids": [channel], "agent_ids": [a["id"] for a in agents],
    }), "POST", "/api/v1/teams")
    settings = await api.patch("/api/v1/routing/settings", json={"default_capacity": capacity})
    check(settings, "PATCH", "/api/v1/routing/settings")
    assert settings.json()["default_capacity"] == capacity
    body: dict[str, Any] = team
    return body


async def test_round_robin_within_capacity_then_the_longest_waiting_takes_a_freed_slot(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    ch = await add_channel(hub.pool, kind="loopback", name="line", settings={}, secrets={})
    agents = [await make_agent(hub.pool, name=f"Agent {n}") for n in "ABC"]
    team = await team_of(api, ch, agents, capacity=3)
    assert {m["id"] for m in team["members"]} == {a["id"] for a in agents}
    assert [c["id"] for c in team["channels"]] == [ch]
    async with contextlib.AsyncExitStack() as stack:
        for a in agents:
            await stack.enter_async_context(online(hub.ws_url, a, hub.base_url))
        await until(lambda: _all(api, agents, "online"))

        # six customers write at once: two each, in turn
        await asyncio.gather(*(ingest(hub.pool, message(ch, n)) for n in range(6)))
        await until(lambda: _total(hub.pool, 6))
        await asyncio.sleep(1.2)
        assert sorted((await loads(hub.pool)).values()) == [2, 2, 2]

        # five more: one each fills everyone up, two wait in the queue
        await asyncio.gather(*(ingest(hub.pool, message(ch, n)) for n in range(6, 11)))
        await until(lambda: _total(hub.pool, 9))
        await asyncio.sleep(1.2)
        assert sorted((await loads(hub.pool)).values()) == [3, 3, 3]
        queue = check(await api.get("/api/v1/queue"), "GET", "/api/v1/queue")["items"]
        assert [q["position"] for q in queue] == [1, 2]
        assert all(q["conversation"]["assignee"] is None for q in queue)
        assert all(q["conversation"]["team"] == {"id": team["id"], "name": "Support"} for q in queue)
        assert queue[0]["waiting_since"] <= queue[1]["waiting_since"]
        assert [q["conversation"]["id"] for q in (await api.get(f"/api/v1/queue?team={team['id']}")).json()["items"]] == [
            q["conversation"]["id"] for q in queue
        ]
        assert (await api.get("/api/v1/queue?team=none")).json()["items"] == []

        # agent B resolves one: the longest-waiting conversation goes to B, the other keeps waiting
        b = agents[1]["id"]
        mine = await hub.pool.fetchval("SELECT min(id) FROM conversations WHERE assignee_id = $1", b)
        await api.post(f"/api/v1/conversations/{mine}/status", json={"status": "resolved"})
        first = queue[0]["conversation"]["id"]
        await until(lambda: _is(hub.pool, first, b))
        await asyncio.sleep(1.2)
        assert await assignee(hub.pool, queue[1]["conversation"]["id"]) is None
        assert sorted((await loads(hub.pool)).values()) == [3, 3, 3]
        presence = {p["agent"]["id"]: p for p in (await api.get("/api/v1/presence")).json()["items"]}
        assert presence[b]["open_conversations"] == 3 and presence[b]["capacity"] == 3
        assert presence[b]["team_ids"] == [team["id"]]
        auto = await hub.pool.fetch(
            "SELECT payload FROM events WHERE type = 'conversation.assigned' AND conversation_id = $1", first
        )
        assert [(e["payload"]["reason"], e["payload"]["to_agent_id"], e["payload"].get("actor")) for e in auto] == [
            ("auto", b, None)
        ]


async def _all(api: httpx.AsyncClient, agents: list[dict[str, Any]], status: str) -> bool:
    now = await statuses(api)
    return all(now.get(a["id"]) == status for a in agents)


async def _total(pool: asyncpg.Pool, n: int) -> bool:
    return sum((await loads(pool)).values()) >= n


async def _is(pool: asyncpg.Pool, conv: int, agent_id: int | None) -> bool:
    return await assignee(pool, conv) == agent_id


async def test_vip_clients_jump_the_queue(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await add_channel(hub.pool, kind="loopback", name="line", settings={}, secrets={})
    agent = await make_agent(hub.pool, name="Solo")
    await team_of(api, ch, [agent], capacity=1)
    convs = [await ingest(hub.pool, message(ch, n)) for n in range(4)]
    await api.patch(f"/api/v1/clients/{convs[2].client_id}", json={"tags": ["vip"]})
    await api.patch(f"/api/v1/clients/{convs[3].client_id}", json={"segment": "VIP"})

    async def order() -> list[int]:
        return [q["conversation"]["id"] for q in (await api.get("/api/v1/queue")).json()["items"]]

    expected = [convs[2].conversation_id, convs[3].conversation_id, convs[0].conversation_id, convs[1].conversation_id]
    await until(lambda: _eq(order, expected))
    queue = (await api.get("/api/v1/queue")).json()["items"]
    assert [q["vip"] for q in queue] == [True, True, False, False]

    async with online(hub.ws_url, agent, hub.base_url):
        await until(lambda: _is(hub.pool, convs[2].conversation_id, agent["id"]))
        await api.post(f"/api/v1/conversations/{convs[2].conversation_id}/status", json={"status": "resolved"})
        await until(lambda: _is(hub.pool, convs[3].conversation_id, agent["id"]))
        assert await order() == [convs[0].conversation_id, convs[1].conversation_id]


async def _eq(get: Any, expected: Any) -> bool:
    return bool(await get() == expected)


async def test_presence_away_grace_time_and_return_to_the_queue(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await add_channel(hub.pool, kind="loopback", name="line", settings={}, secrets={})
    agent = await make_agent(hub.pool, name="Anna")
    await team_of(api, ch, [agent], capacity=5)
    check(await api.patch("/api/v1/routing/settings", json={"offline_grace_seconds": 2}), "PATCH", "/api/v1/routing/settings")
    assert (await statuses(api))[agent["id"]] == "offline"
    async with online(hub.ws_url, agent, hub.base_url) as ws:
        await until(lambda: _all(api, [agent], "online"))
        first = [(await ingest(hub.pool, message(ch, n))).conversation_id for n in range(2)]
        for conv in first:
            await until(lambda conv=conv: _is(hub.pool, conv, agent["id"]))

        await ws.send(json.dumps({"type": "presence", "status": "away"}))
        await until(lambda: _all(api, [agent], "away"))
        waiting = (await ingest(hub.pool, message(ch, 2))).conversation_id
        await asyncio.sleep(1.5)
        assert await assignee(hub.pool, waiting) is None  # away: keeps what they have, gets nothing new
        await ws.send(json.dumps({"type": "presence", "status": "online"}))
        await until(lambda: _is(hub.pool, waiting, agent["id"]))
    mine = [*first, waiting]

    # a flaky connection: back within the grace time, nothing changes
    async with online(hub.ws_url, agent, hub.base_url):
        await asyncio.sleep(3)
        assert (await statuses(api))[agent["id"]] == "online"
        assert [await assignee(hub.pool, c) for c in mine] == [agent["id"]] * 3

    # gone for good: offline after the grace time, their open conversations back in the queue, in order
    late = (await ingest(hub.pool, message(ch, 3))).conversation_id
    await asyncio.sleep(0.8)
    # within the grace time: still online, keeps their conversations, but nothing new goes to a closed inbox
    assert (await statuses(api))[agent["id"]] == "online"
    assert [await assignee(hub.pool, c) for c in mine] == [agent["id"]] * 3
    assert await assignee(hub.pool, late) is None
    await wait_for(lambda: _all(api, [agent], "offline"), timeout=15)
    await until(lambda: _none_assigned(hub.pool, mine))
    queue = [q["conversation"]["id"] for q in (await api.get("/api/v1/queue")).json()["items"]]
    assert queue == [*mine, late]
    reasons = await hub.pool.fetch(
        "SELECT conversation_id, payload->>'reason' AS reason FROM events WHERE type = 'conversation.assigned'"
        " AND payload->>'reason' = 'agent offline' ORDER BY conversation_id"
    )
    assert [r["conversation_id"] for r in reasons] == mine

    # with return_on_offline off, an agent who leaves keeps their conversations
    await api.patch("/api/v1/routing/settings", json={"return_on_offline": False})
    async with online(hub.ws_url, agent, hub.base_url):
        for conv in [*mine, late]:
            await until(lambda conv=conv: _is(hub.pool, conv, agent["id"]))
    await wait_for(lambda: _all(api, [agent], "offline"), timeout=15)
    await asyncio.sleep(1.2)
    assert [await assignee(hub.pool, c) for c in [*mine, late]] == [agent["id"]] * 4


async def _none_assigned(pool: asyncpg.Pool, convs: list[int]) -> bool:
    return all([await assignee(pool, c) is None for c in convs])


async def test_a_colleague_sees_presence_live_and_can_take_over(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch = await add_channel(hub.pool, kind="loopback", name="line", settings={}, secrets={})
    anna, boris = await make_agent(hub.pool, name="Anna"), await make_agent(hub.pool, name="Boris")
    await team_of(api, ch, [anna], capacity=2)
    async with online(hub.ws_url, boris, hub.base_url) as watcher:
        async with online(hub.ws_url, anna, hub.base_url):
            async with asyncio.timeout(5):
                while True:
                    event = json.loads(await watcher.recv())
                    if event.get("type") == "agent.presence":
                        break
            assert event == {"type": "agent.presence", "agent_id": anna["id"], "status": "online"}
            conv = (await ingest(hub.pool, message(ch, 1))).conversation_id
            await until(lambda: _is(hub.pool, conv, anna["id"]))
            as_boris = await login(hub.base_url, boris)
            taken = check(await as_boris.post(f"/api/v1/conversations/{conv}/take"), "POST", "/api/v1/conversations/{id}/take")
            assert taken["assignee"] == {"id": boris["id"], "name": "Boris"}
            await as_boris.aclose()
            last = await hub.pool.fetchrow(
                "SELECT payload FROM events WHERE type = 'conversation.assigned' ORDER BY id DESC LIMIT 1"
            )
            assert last["payload"]["reason"] == "takeover" and last["payload"]["from_agent_id"] == anna["id"]
    assert (await api.post("/api/v1/conversations/999999/take")).status_code == 404
    r = await api.put(f"/api/v1/presence/{anna['id']}/capacity", json={"capacity": 7})
    assert check(r, "PUT", "/api/v1/presence/{id}/capacity")["capacity"] == 7
    assert (await api.put(f"/api/v1/presence/{anna['id']}/capacity", json={"capacity": -1})).status_code == 400


async def test_teams_are_managed_by_admins_and_read_by_agents(hub: RunningHub, api: httpx.AsyncClient) -> None:
    ch1 = await add_channel(hub.pool, kind="loopback", name="one", settings={}, secrets={})
    ch2 = await add_channel(hub.pool, kind="loopback", name="two", settings={}, secrets={})
    agent = await make_agent(hub.pool, name="Anna")
    sales = check(await api.post("/api/v1/teams", json={"name": "Sales", "channel_ids": [ch1, ch2]}), "POST", "/api/v1/teams")
    support = (await api.post("/api/v1/teams", json={"name": "Support"})).json()
    moved = check(await api.patch(f"/api/v1/teams/{support['id']}", json={"channel_ids": [ch2], "agent_ids": [agent["id"]]}),
                  "PATCH", "/api/v1/teams/{id}")
    assert [c["id"] for c in moved["channels"]] == [ch2]  # a channel serves one team
    as_agent = await login(hub.base_url, agent)
    listed = check(await as_agent.get("/api/v1/teams"), "GET", "/api/v1/teams")["items"]
    assert [(t["name"], [c["id"] for c in t["channels"]]) for t in listed] == [("Sales", [ch1]), ("Support", [ch2])]
    check(await as_agent.get(f"/api/v1/teams/{sales['id']}"), "GET", "/api/v1/teams/{id}")
    assert (await as_agent.post("/api/v1/teams", json={"name": "Mine"})).status_code == 403
    assert (await api.post("/api/v1/teams", json={"name": "Sales"})).status_code == 409
    assert (await api.patch(f"/api/v1/teams/{sales['id']}", json={"agent_ids": [424242]})).status_code == 404
    assert (await api.patch(f"/api/v1/teams/{sales['id']}", json={"colour": "red"})).status_code == 400
    assert check(await api.delete(f"/api/v1/teams/{sales['id']}"), "DELETE", "/api/v1/teams/{id}") == {"ok": True}
    assert (await api.get(f"/api/v1/teams/{sales['id']}")).status_code == 404
    await as_agent.aclose()


# --- two hub processes on one database -----------------------------------------------------------

def start_process(database_url: str, tmp: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "OMNIHUB_DATABASE_URL": database_url, "OMNIHUB_PORT": str(port), "OMNIHUB_DATA_DIR": str(tmp / name)}
    with (tmp / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.run_hub", "serve"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    return proc, f"http://127.0.0.1:{port}"


async def _healthy(base_url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as c:
            return (await c.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def test_two_hub_processes_never_assign_twice_nor_over_capacity(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    ch = await add_channel(pool, kind="loopback", name="line", settings={}, secrets={})
    admin = await make_agent(pool, "admin", name="Admin")
    agents = [await make_agent(pool, name=f"Agent {n}") for n in range(4)]
    procs = [start_process(database_url, tmp_path, "a"), start_process(database_url, tmp_path, "b")]
    try:
        for _, url in procs:
            await wait_for(lambda url=url: _healthy(url), timeout=90)  # a loaded CI box imports slowly
        api = await login(procs[0][1], admin)
        await team_of(api, ch, agents, capacity=3)
        async with contextlib.AsyncExitStack() as stack:
            for i, a in enumerate(agents):  # two agents on each process
                url = procs[i % 2][1]
                await stack.enter_async_context(online("ws" + url[4:], a, url))
            await wait_for(lambda: _all(api, agents, "online"), timeout=15)

            # twenty customers write at once; both processes hear of each and race to assign
            await asyncio.gather(*(ingest(pool, message(ch, n)) for n in range(20)))
            await wait_for(lambda: _total(pool, 12), timeout=15)
            await asyncio.sleep(2.5)  # let both processes sweep again
            assert sorted((await loads(pool)).values()) == [3, 3, 3, 3]
            per_conv = await pool.fetch(
                "SELECT conversation_id, count(*) AS n FROM events WHERE type = 'conversation.assigned'"
                " GROUP BY conversation_id"
            )
            assert len(per_conv) == 12 and all(r["n"] == 1 for r in per_conv)
            assert len((await api.get("/api/v1/queue?limit=100")).json()["items"]) == 8

            # each agent frees a slot, through either process, at the same moment
            clients = [await login(procs[i % 2][1], a) for i, a in enumerate(agents)]
            freed = [
                await pool.fetchval("SELECT min(id) FROM conversations WHERE assignee_id = $1", a["id"]) for a in agents
            ]
            await asyncio.gather(*(
                c.post(f"/api/v1/conversations/{conv}/status", json={"status": "resolved"}, )
                for c, conv in zip(clients, freed, strict=True)
            ))
            await wait_for(lambda: _total(pool, 12), timeout=15)
            await asyncio.sleep(2.5)
            assert sorted((await loads(pool)).values()) == [3, 3, 3, 3]
            twice = await pool.fetchval(
                "SELECT count(*) FROM (SELECT conversation_id FROM events WHERE type = 'conversation.assigned'"
                " GROUP BY conversation_id HAVING count(*) > 1) d"
            )
            assert twice == 0
            assert len((await api.get("/api/v1/queue?limit=100")).json()["items"]) == 4
            for c in clients:
                await c.aclose()
        await api.aclose()
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p, _ in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
