"""Routing and regulations: teams, presence, the queue, SLA policies, business hours, contact cadence."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.events import publish_ephemeral
from hub.types import JSON
from inbox.conversations import decode_cursor, encode_cursor
from routing import auto_assign, contact, policies, presence, sla, teams
from web.api_reports import _answer, _period
from web.auth import role
from web.http import HTTPError, agent_of, hub_of, json_body, page, paging, path_id

SETTINGS = {"offline_grace_seconds": int, "return_on_offline": bool, "default_capacity": int}


async def _changed(request: Request) -> None:
    """Wake every process's routing loop: who may take what has changed."""
    await publish_ephemeral(hub_of(request).pool, {"type": "routing.changed", "audience": "routing"})


def _created(body: JSON) -> Response:
    return JSONResponse(body, status_code=201)


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise HTTPError(400, f"{name} must be true or false")
    return value


def _whole_number(value: Any) -> bool:
    """A whole number ≥ 0; JSON's true and false are not numbers here, though Python's bool is an int."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- teams ----------------------------------------------------------------------------------------

@role("agent")
async def list_teams(request: Request) -> Response:
    return page(await teams.list_teams(hub_of(request).pool), None)


@role("agent")
async def get_team(request: Request) -> Response:
    return JSONResponse(await teams.get_team(hub_of(request).pool, path_id(request)))


@role("admin")
async def create_team(request: Request) -> Response:
    body = await json_body(request, "name")
    name = body["name"]
    if not isinstance(name, str) or not name.strip():
        raise HTTPError(400, "name must be a non-empty string")
    pool = hub_of(request).pool
    team = await teams.create_team(pool, name=name, auto_assign=_bool(body, "auto_assign", True))
    rest = {k: v for k, v in body.items() if k in ("agent_ids", "channel_ids")}
    if rest:
        team = await teams.update_team(pool, team_id=team["id"], changes=rest)
    await _changed(request)
    return _created(team)


@role("admin")
async def update_team(request: Request) -> Response:
    body = await json_body(request)
    team = await teams.update_team(hub_of(request).pool, team_id=path_id(request), changes=body)
    await _changed(request)
    return JSONResponse(team)


@role("admin")
async def delete_team(request: Request) -> Response:
    await teams.delete_team(hub_of(request).pool, team_id=path_id(request))
    return JSONResponse({"ok": True})


# --- presence, capacity, settings -----------------------------------------------------------------

@role("agent")
async def list_presence(request: Request) -> Response:
    return page(await presence.presence_list(hub_of(request).pool), None)


@role("admin")
async def set_capacity(request: Request) -> Response:
    body = await json_body(request, "capacity")
    capacity = body["capacity"]
    if capacity is not None and not _whole_number(capacity):
        raise HTTPError(400, "capacity must be a whole number ≥ 0, or null for the default")
    pool = hub_of(request).pool
    agent_id = path_id(request)
    if not await pool.fetchval("SELECT 1 FROM agents WHERE id = $1", agent_id):
        raise HTTPError(404, f"agent {agent_id} does not exist")
    await pool.execute(
        "INSERT INTO routing_agents (agent_id, capacity) VALUES ($1, $2)"
        " ON CONFLICT (agent_id) DO UPDATE SET capacity = EXCLUDED.capacity",
        agent_id,
        capacity,
    )
    await _changed(request)
    entry = next(p for p in await presence.presence_list(pool) if p["agent"]["id"] == agent_id)
    return JSONResponse(entry)


async def _settings(request: Request) -> JSON:
    row = await hub_of(request).pool.fetchrow(
        "SELECT offline_grace_seconds, return_on_offline, default_capacity FROM routing_settings"
    )
    return dict(row)


@role("agent")
async def get_settings(request: Request) -> Response:
    return JSONResponse(await _settings(request))


@role("admin")
async def update_settings(request: Request) -> Response:
    body = await json_body(request)
    unknown = set(body) - set(SETTINGS)
    if unknown:
        raise HTTPError(400, f"unknown settings: {', '.join(sorted(unknown))}")
    for name, value in body.items():
        kind = SETTINGS[name]
        if kind is bool and not isinstance(value, bool):
            raise HTTPError(400, f"{name} must be true or false")
        if kind is int and not _whole_number(value):
            raise HTTPError(400, f"{name} must be a whole number ≥ 0")
    if body:
        sets = ", ".join(f"{k} = ${i + 1}" for i, k in enumerate(body))
        await hub_of(request).pool.execute(f"UPDATE routing_settings SET {sets}", *body.values())
        await _changed(request)
    return JSONResponse(await _settings(request))


# --- the queue ------------------------------------------------------------------------------------

@role("agent")
async def get_queue(request: Request) -> Response:
    limit, cursor = paging(request)
    offset = 0
    if cursor:
        (value,) = decode_cursor(cursor, 1)
        if not value.isdigit():
            raise HTTPError(400, "cursor is not one this server gave out")
        offset = int(value)
    raw = request.query_params.get("team")
    team: int | str | None = None
    if raw == "none":
        team = "none"
    elif raw:
        if not raw.isdigit():
            raise HTTPError(400, "team must be a team id or 'none'")
        team = int(raw)
    items = await auto_assign.queue(hub_of(request).pool, team=team, limit=limit + 1, offset=offset)
    next_cursor = encode_cursor(offset + limit) if len(items) > limit else None
    return page(items[:limit], next_cursor)


@role("agent")
async def take(request: Request) -> Response:
    conv = await auto_assign.take(hub_of(request).pool, conversation_id=path_id(request), agent=agent_of(request))
    return JSONResponse(conv)


# --- SLA ------------------------------------------------------------------------------------------

@role("agent")
async def list_policies(request: Request) -> Response:
    return page(await policies.list_policies(hub_of(request).pool), None)


@role("admin")
async def create_policy(request: Request) -> Response:
    body = await json_body(request, "name")
    return _created(await policies.create_policy(hub_of(request).pool, body))


@role("admin")
async def delete_policy(request: Request) -> Response:
    await policies.delete_policy(hub_of(request).pool, path_id(request))
    return JSONResponse({"ok": True})


@role("agent")
async def list_hours(request: Request) -> Response:
    return page(await policies.list_hours(hub_of(request).pool), None)


@role("admin")
async def create_hours(request: Request) -> Response:
    body = await json_body(request, "name", "time_zone", "schedule")
    return _created(await policies.create_hours(hub_of(request).pool, body))


@role("admin")
async def delete_hours(request: Request) -> Response:
    await policies.delete_hours(hub_of(request).pool, path_id(request))
    return JSONResponse({"ok": True})


@role("manager")
async def breaches_report(request: Request) -> Response:
    start, end = _period(request)
    rows = await sla.breaches(hub_of(request).pool, start=start, end=end)
    columns = ["id", "conversation_id", "client", "metric", "policy", "team", "assignee", "segment", "started_at",
               "due_at", "breached_at"]
    return _answer(request, columns, rows)


# --- contact cadence ------------------------------------------------------------------------------

@role("agent")
async def list_contact_rules(request: Request) -> Response:
    return page(await contact.list_rules(hub_of(request).pool), None)


@role("admin")
async def create_contact_rule(request: Request) -> Response:
    body = await json_body(request, "segment", "every_days")
    return _created(await contact.create_rule(hub_of(request).pool, body))


@role("admin")
async def delete_contact_rule(request: Request) -> Response:
    await contact.delete_rule(hub_of(request).pool, path_id(request))
    return JSONResponse({"ok": True})


@role("agent")
async def due_for_contact(request: Request) -> Response:
    limit, cursor = paging(request)
    after = 0
    if cursor:
        (value,) = decode_cursor(cursor, 1)
        after = int(value) if value.isdigit() else 0
    qp = request.query_params
    days: int | None = None
    if qp.get("days"):
        if not qp["days"].isdigit():
            raise HTTPError(400, "days must be a whole number of days")
        days = int(qp["days"])
    items = await contact.due_for_contact(
        hub_of(request).pool, segment=qp.get("segment") or None, days=days, limit=limit + 1, after=after
    )
    next_cursor = encode_cursor(items[limit - 1]["client"]["id"]) if len(items) > limit else None
    return page(items[:limit], next_cursor)


routes = [
    Route("/api/v1/teams", list_teams, methods=["GET"]),
    Route("/api/v1/teams", create_team, methods=["POST"]),
    Route("/api/v1/teams/{id:int}", get_team, methods=["GET"]),
    Route("/api/v1/teams/{id:int}", update_team, methods=["PATCH"]),
    Route("/api/v1/teams/{id:int}", delete_team, methods=["DELETE"]),
    Route("/api/v1/presence", list_presence, methods=["GET"]),
    Route("/api/v1/presence/{id:int}/capacity", set_capacity, methods=["PUT"]),
    Route("/api/v1/routing/settings", get_settings, methods=["GET"]),
    Route("/api/v1/routing/settings", update_settings, methods=["PATCH"]),
    Route("/api/v1/queue", get_queue, methods=["GET"]),
    Route("/api/v1/conversations/{id:int}/take", take, methods=["POST"]),
    Route("/api/v1/sla/policies", list_policies, methods=["GET"]),
    Route("/api/v1/sla/policies", create_policy, methods=["POST"]),
    Route("/api/v1/sla/policies/{id:int}", delete_policy, methods=["DELETE"]),
    Route("/api/v1/business-hours", list_hours, methods=["GET"]),
    Route("/api/v1/business-hours", create_hours, methods=["POST"]),
    Route("/api/v1/business-hours/{id:int}", delete_hours, methods=["DELETE"]),
    Route("/api/v1/reports/sla-breaches", breaches_report, methods=["GET"]),
    Route("/api/v1/contact-rules", list_contact_rules, methods=["GET"]),
    Route("/api/v1/contact-rules", create_contact_rule, methods=["POST"]),
    Route("/api/v1/contact-rules/{id:int}", delete_contact_rule, methods=["DELETE"]),
    Route("/api/v1/clients/due-for-contact", due_for_contact, methods=["GET"]),
]
