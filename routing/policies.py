"""SLA policies and the business hours they count in: storing them and picking one for a conversation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.errors import Conflict, NotFound, OmnihubError
from hub.types import JSON
from routing.business_hours import (
    AlwaysOpen,
    BadSchedule,
    BusinessHours,
    Hours,
    Pause,
    add_outside,
    business_hours,
    schedule_json,
)

METRICS = ("first_response", "next_response", "resolution")


@dataclass(frozen=True)
class Policy:
    id: int
    name: str
    team_id: int | None
    segment: str
    targets: dict[str, int]  # metric → seconds of business time (only the metrics it sets)
    hours: Hours

    def specificity(self) -> int:
        return (2 if self.segment else 0) + (1 if self.team_id is not None else 0)

    def due(self, metric: str, started: dt.datetime, pauses: Sequence[Pause] = ()) -> dt.datetime | None:
        """When the metric's clock, started then and stopped during the pauses, falls due;
        None: the policy sets no target (or can't meet one)."""
        seconds = self.targets.get(metric)
        if seconds is None:
            return None
        try:
            return add_outside(self.hours, started, dt.timedelta(seconds=seconds), pauses)
        except BadSchedule:
            return None  # holidays fill the next years: no promise to keep


def pick(policies: list[Policy], *, team_id: int | None, segment: str, tags: list[str]) -> Policy | None:
    """The most specific policy that applies: team and segment, then segment, then team, then the default.

    A policy's segment matches the client's segment or one of their tags.
    """
    marks = {segment.lower(), *(t.lower() for t in tags)} - {""}
    fitting = [
        p for p in policies
        if (p.team_id is None or p.team_id == team_id) and (not p.segment or p.segment.lower() in marks)
    ]
    if not fitting:
        return None
    return min(fitting, key=lambda p: (-p.specificity(), p.id))


# --- business hours -------------------------------------------------------------------------------

def hours_json(r: asyncpg.Record) -> JSON:
    return {
        "id": r["id"], "name": r["name"], "time_zone": r["time_zone"], "schedule": r["schedule"],
        "holidays": [d.isoformat() for d in r["holidays"]], "created_at": r["created_at"].isoformat(),
    }


def hours_of(r: asyncpg.Record | dict[str, Any]) -> BusinessHours:
    return business_hours(time_zone=r["time_zone"], schedule=r["schedule"], holidays=r["holidays"])


async def list_hours(pool: asyncpg.Pool) -> list[JSON]:
    return [hours_json(r) for r in await pool.fetch("SELECT * FROM business_hours ORDER BY name, id")]


async def create_hours(pool: asyncpg.Pool, body: dict[str, Any]) -> JSON:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise OmnihubError("name must be a non-empty string")
    bh = business_hours(time_zone=body.get("time_zone"), schedule=body.get("schedule"), holidays=body.get("holidays", []))
    if not any(bh.week):
        raise OmnihubError("the schedule has no open hours: a clock counting in it would never run")
    try:
        row = await pool.fetchrow(
            "INSERT INTO business_hours (name, time_zone, schedule, holidays) VALUES ($1, $2, $3, $4) RETURNING *",
            name.strip(), bh.tz.key, schedule_json(bh.week), sorted(bh.holidays),
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"business hours named {name!r} exist already") from None
    return hours_json(row)


async def delete_hours(pool: asyncpg.Pool, hours_id: int) -> None:
    if await pool.fetchval("DELETE FROM business_hours WHERE id = $1 RETURNING id", hours_id) is None:
        raise NotFound(f"business hours {hours_id} do not exist")


# --- policies -------------------------------------------------------------------------------------

_POLICY_SELECT = (
    "SELECT p.*, bh.time_zone, bh.schedule, bh.holidays FROM sla_policies p"
    " LEFT JOIN business_hours bh ON bh.id = p.business_hours_id"
)


def policy_json(r: asyncpg.Record) -> JSON:
    return {
        "id": r["id"], "name": r["name"], "team_id": r["team_id"], "segment": r["segment"],
        "first_response_seconds": r["first_response_seconds"], "next_response_seconds": r["next_response_seconds"],
        "resolution_seconds": r["resolution_seconds"], "business_hours_id": r["business_hours_id"],
        "created_at": r["created_at"].isoformat(),
    }


def _policy(r: asyncpg.Record) -> Policy:
    targets = {m: r[f"{m}_seconds"] for m in METRICS if r[f"{m}_seconds"] is not None}
    hours: Hours = hours_of(r) if r["business_hours_id"] is not None else AlwaysOpen()
    return Policy(r["id"], r["name"], r["team_id"], r["segment"], targets, hours)


async def load_policies(conn: asyncpg.Pool | asyncpg.Connection) -> list[Policy]:
    return [_policy(r) for r in await conn.fetch(_POLICY_SELECT + " ORDER BY p.id")]


async def list_policies(pool: asyncpg.Pool) -> list[JSON]:
    return [policy_json(r) for r in await pool.fetch(_POLICY_SELECT + " ORDER BY p.name, p.id")]


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise OmnihubError(f"{name} must be a positive whole number of seconds, or null")
    return value


async def create_policy(pool: asyncpg.Pool, body: dict[str, Any]) -> JSON:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise OmnihubError("name must be a non-empty string")
    segment = body.get("segment") or ""
    if not isinstance(segment, str):
        raise OmnihubError("segment must be a string ('' for any client)")
    targets = {m: _optional_int(body, f"{m}_seconds") for m in METRICS}
    if all(v is None for v in targets.values()):
        raise OmnihubError("set at least one of first_response_seconds, next_response_seconds, resolution_seconds")
    team_id = _optional_int(body, "team_id")
    hours_id = _optional_int(body, "business_hours_id")
    if team_id is not None and not await pool.fetchval("SELECT 1 FROM teams WHERE id = $1", team_id):
        raise NotFound(f"team {team_id} does not exist")
    if hours_id is not None and not await pool.fetchval("SELECT 1 FROM business_hours WHERE id = $1", hours_id):
        raise NotFound(f"business hours {hours_id} do not exist")
    try:
        policy_id = await pool.fetchval(
            "INSERT INTO sla_policies (name, team_id, segment, first_response_seconds, next_response_seconds,"
            " resolution_seconds, business_hours_id) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            name.strip(), team_id, segment.strip(), targets["first_response"], targets["next_response"],
            targets["resolution"], hours_id,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"an SLA policy named {name!r} exists already") from None
    row = await pool.fetchrow(_POLICY_SELECT + " WHERE p.id = $1", policy_id)
    return policy_json(row)


async def delete_policy(pool: asyncpg.Pool, policy_id: int) -> None:
    if await pool.fetchval("DELETE FROM sla_policies WHERE id = $1 RETURNING id", policy_id) is None:
        raise NotFound(f"SLA policy {policy_id} does not exist")
