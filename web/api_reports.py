"""Tabular reports for managers, as JSON or CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.types import JSON
from web.auth import role
from web.http import HTTPError, hub_of


def _period(request: Request) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    try:
        start = dt.datetime.fromisoformat(request.query_params.get("from") or (now - dt.timedelta(days=7)).isoformat())
        end = dt.datetime.fromisoformat(request.query_params.get("to") or now.isoformat())
    except ValueError:
        raise HTTPError(400, "from and to must be ISO 8601 dates, e.g. 2026-11-01") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=dt.UTC)
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
    """Inbound and outbound messages and new conversations per day and channel."""
    start, end = _period(request)
    rows = await hub_of(request).pool.fetch(
        "SELECT to_char(date_trunc('day', m.created_at), 'YYYY-MM-DD') AS day, ch.name AS channel,"
        " count(*) FILTER (WHERE m.direction = 'in') AS inbound,"
        " count(*) FILTER (WHERE m.direction = 'out') AS outbound,"
        " count(DISTINCT m.conversation_id) AS conversations"
        " FROM messages m JOIN channels ch ON ch.id = m.channel_id"
        " WHERE m.created_at >= $1 AND m.created_at < $2 GROUP BY 1, 2 ORDER BY 1, 2",
        start,
        end,
    )
    return _answer(request, ["day", "channel", "inbound", "outbound", "conversations"], [dict(r) for r in rows])


@role("manager")
async def agents(request: Request) -> Response:
    """Per agent: replies sent, conversations handled, median and p90 first-response minutes."""
    start, end = _period(request)
    rows = await hub_of(request).pool.fetch(
        "WITH first_reply AS ("
        "  SELECT DISTINCT ON (m.conversation_id) m.conversation_id, m.author_agent_id,"
        "         extract(epoch FROM m.created_at - c.created_at) / 60 AS minutes"
        "  FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        "  WHERE m.direction = 'out' AND m.author_agent_id IS NOT NULL AND c.created_at >= $1 AND c.created_at < $2"
        "  ORDER BY m.conversation_id, m.id)"
        " SELECT a.name AS agent,"
        "  (SELECT count(*) FROM messages m WHERE m.author_agent_id = a.id AND m.created_at >= $1"
        "     AND m.created_at < $2) AS replies,"
        "  count(f.conversation_id) AS first_responses,"
        "  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY f.minutes)::numeric, 1) AS median_first_response_min,"
        "  round(percentile_cont(0.9) WITHIN GROUP (ORDER BY f.minutes)::numeric, 1) AS p90_first_response_min"
        " FROM agents a LEFT JOIN first_reply f ON f.author_agent_id = a.id"
        " GROUP BY a.id, a.name ORDER BY a.name",
        start,
        end,
    )
    items = [
        {k: (float(v) if v is not None and k.endswith("_min") else v) for k, v in dict(r).items()} for r in rows
    ]
    return _answer(
        request, ["agent", "replies", "first_responses", "median_first_response_min", "p90_first_response_min"], items
    )


routes = [
    Route("/api/v1/reports/volume", volume),
    Route("/api/v1/reports/agents", agents),
]
