"""Tabular reports for managers, as JSON or CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.types import JSON
from routing.business_hours import zone
from routing.sla import BY_AGENT, BY_CUSTOMER
from web.auth import role
from web.http import HTTPError, hub_of, query_time


def _period(request: Request) -> tuple[dt.datetime, dt.datetime]:
    """from/to query parameters; the last 7 days when absent."""
    now = dt.datetime.now(dt.UTC)
    start = query_time(request, "from") or now - dt.timedelta(days=7)
    end = query_time(request, "to") or now
    if end <= start:
        raise HTTPError(400, "to must be later than from")
    return start, end


def _answer(request: Request, columns: list[str], rows: list[JSON]) -> Response:
    fmt = request.query_params.get("format", "json")
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8")
    if fmt != "json":
        raise HTTPError(400, "format must be json or csv")
    return JSONResponse({"columns": columns, "items": rows, "next_cursor": None})


@role("manager")
async def volume(request: Request) -> Response:
    """Inbound and outbound messages and conversations per day and channel; days in `tz` (default UTC)."""
    start, end = _period(request)
    tz = zone(request.query_params.get("tz") or "UTC").key
    try:
        rows = await hub_of(request).pool.fetch(
            "SELECT to_char(date_trunc('day', m.created_at AT TIME ZONE $3), 'YYYY-MM-DD') AS day, ch.name AS channel,"
            " count(*) FILTER (WHERE m.direction = 'in') AS inbound,"
            " count(*) FILTER (WHERE m.direction = 'out') AS outbound,"
            " count(DISTINCT m.conversation_id) AS conversations"
            " FROM messages m JOIN channels ch ON ch.id = m.channel_id"
            " WHERE m.created_at >= $1 AND m.created_at < $2 GROUP BY 1, 2 ORDER BY 1, 2",
            start,
            end,
            tz,
        )
    except asyncpg.InvalidParameterValueError:  # a zone Python knows and this PostgreSQL's tz database doesn't
        raise HTTPError(400, f"the database does not know the time zone {tz!r}") from None
    return _answer(request, ["day", "channel", "inbound", "outbound", "conversations"], [dict(r) for r in rows])


# First responses given in the period: per conversation the customer's first message (machine
# mail aside) and the first agent reply after it, as routing/sla.py counts them. Minutes are
# wall-clock (what the customer waited); `late` is the SLA clock's verdict (business hours,
# pauses), so it agrees with the breach list.
_FIRSTS = f"""
WITH replies AS (
    SELECT m.conversation_id, m.author_agent_id FROM messages m
    WHERE {BY_AGENT} AND m.created_at >= $1 AND m.created_at < $2
), firsts AS (
    SELECT rc.conversation_id, fi.at AS customer_at, fr.at AS replied_at, fr.author_agent_id,
           extract(epoch FROM fr.at - fi.at) / 60 AS minutes, k.due_at, coalesce(fr.at > k.due_at, false) AS late
    FROM (SELECT DISTINCT conversation_id FROM replies) rc
    CROSS JOIN LATERAL (
        SELECT min(m.created_at) AS at FROM messages m WHERE m.conversation_id = rc.conversation_id AND {BY_CUSTOMER}
    ) fi
    CROSS JOIN LATERAL (
        SELECT m.created_at AS at, m.author_agent_id FROM messages m
        WHERE m.conversation_id = rc.conversation_id AND {BY_AGENT} AND m.created_at >= fi.at
        ORDER BY m.created_at, m.id LIMIT 1
    ) fr
    LEFT JOIN sla_clocks k ON k.conversation_id = rc.conversation_id AND k.metric = 'first_response'
                          AND k.started_at = fi.at
    WHERE fr.at >= $1 AND fr.at < $2
)
"""
_AGENTS = _FIRSTS + """
SELECT a.id AS agent_id, a.name AS agent, coalesce(r.conversations, 0) AS conversations,
       coalesce(r.replies, 0) AS replies, coalesce(f.first_responses, 0) AS first_responses,
       round(f.median::numeric, 1) AS median_first_response_min, round(f.p90::numeric, 1) AS p90_first_response_min,
       coalesce(f.late, 0) AS late_first_responses, coalesce(b.breaches, 0) AS sla_breaches
FROM agents a
LEFT JOIN (
    SELECT author_agent_id, count(*) AS replies, count(DISTINCT conversation_id) AS conversations
    FROM replies GROUP BY 1
) r ON r.author_agent_id = a.id
LEFT JOIN (
    SELECT author_agent_id, count(*) AS first_responses, count(*) FILTER (WHERE late) AS late,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY minutes) AS median,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY minutes) AS p90
    FROM firsts GROUP BY 1
) f ON f.author_agent_id = a.id
LEFT JOIN (
    SELECT assignee_id, count(*) AS breaches FROM sla_breaches
    WHERE breached_at >= $1 AND breached_at < $2 GROUP BY 1
) b ON b.assignee_id = a.id
WHERE (a.role = 'agent' AND NOT a.disabled) OR r.replies IS NOT NULL OR b.breaches IS NOT NULL
ORDER BY a.name, a.id
"""
AGENT_COLUMNS = ["agent_id", "agent", "conversations", "replies", "first_responses", "median_first_response_min",
                 "p90_first_response_min", "late_first_responses", "sla_breaches"]


_FIRST_RESPONSES = _FIRSTS + """
SELECT f.conversation_id, cl.name AS client, f.author_agent_id AS agent_id, a.name AS agent, f.customer_at,
       f.replied_at, round(f.minutes::numeric, 1) AS minutes, f.due_at, f.late
FROM firsts f
JOIN conversations c ON c.id = f.conversation_id
JOIN clients cl ON cl.id = c.client_id
JOIN agents a ON a.id = f.author_agent_id
WHERE ($3::bigint IS NULL OR f.author_agent_id = $3) AND (NOT $4 OR f.late)
ORDER BY f.replied_at, f.conversation_id
"""
FIRST_RESPONSE_COLUMNS = ["conversation_id", "client", "agent_id", "agent", "customer_at", "replied_at", "minutes",
                          "due_at", "late"]


@role("manager")
async def first_responses(request: Request) -> Response:
    """Each first response given in the period (the rows behind the agents report), `?agent=` `?late=1`."""
    start, end = _period(request)
    agent = request.query_params.get("agent") or None
    if agent is not None and not agent.isdigit():
        raise HTTPError(400, "agent must be an agent id")
    late = request.query_params.get("late", "") in ("1", "true")
    rows = await hub_of(request).pool.fetch(_FIRST_RESPONSES, start, end, int(agent) if agent else None, late)
    items = [
        {**dict(r), "minutes": float(r["minutes"]),
         **{k: r[k].isoformat() if r[k] is not None else None for k in ("customer_at", "replied_at", "due_at")}}
        for r in rows
    ]
    return _answer(request, FIRST_RESPONSE_COLUMNS, items)


@role("manager")
async def agents(request: Request) -> Response:
    """Per agent: conversations replied in, replies, first responses (median, p90, late), SLA breaches."""
    start, end = _period(request)
    rows = await hub_of(request).pool.fetch(_AGENTS, start, end)
    items = [
        {k: (float(v) if v is not None and k.endswith("_min") else v) for k, v in dict(r).items()} for r in rows
    ]
    return _answer(request, AGENT_COLUMNS, items)


routes = [
    Route("/api/v1/reports/volume", volume),
    Route("/api/v1/reports/agents", agents),
    Route("/api/v1/reports/first-responses", first_responses),
]
