"""History review for managers: search, transcripts and exports, the audit log."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.types import JSON
from inbox import audit, transcripts
from inbox.audit_log import list_entries
from inbox.search import EXPORT_LIMIT, SearchFilters, search
from web.auth import role
from web.http import HTTPError, agent_of, hub_of, page, paging, path_id, query_time


def _agent_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    if raw == "me":
        agent_id: int = agent_of(request)["id"]
        return agent_id
    if not raw.isdigit():
        raise HTTPError(400, f"{name} must be an agent id or 'me'")
    return int(raw)


def _id_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    if not raw.isdigit():
        raise HTTPError(400, f"{name} must be an id")
    return int(raw)


def _format(request: Request) -> str:
    fmt = request.query_params.get("format", "json")
    if fmt not in transcripts.FORMATS:
        raise HTTPError(400, f"format must be one of {', '.join(transcripts.FORMATS)}")
    return fmt


def _filters(request: Request) -> SearchFilters:
    qp = request.query_params
    return SearchFilters(
        q=qp.get("q", ""), channel=qp.get("channel") or None, agent_id=_agent_param(request, "agent"),
        tag=qp.get("tag") or None, start=query_time(request, "from"), end=query_time(request, "to"),
        status=qp.get("status") or None,
    )


def _file(body: str, fmt: str, name: str) -> Response:
    media = {"csv": "text/csv; charset=utf-8", "txt": "text/plain; charset=utf-8"}[fmt]
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


@role("manager")
async def search_history(request: Request) -> Response:
    limit, cursor = paging(request)
    filters = _filters(request)
    items, next_cursor = await search(hub_of(request).pool, filters, limit=limit, cursor=cursor)
    if cursor is None:
        await audit.record(hub_of(request).pool, agent=agent_of(request), action=audit.SEARCH, details=filters.as_json())
    return page(items, next_cursor)


@role("manager")
async def export_search(request: Request) -> Response:
    fmt = _format(request)
    filters = _filters(request)
    pool = hub_of(request).pool
    hits, more = await search(pool, filters, limit=EXPORT_LIMIT, export=True)
    await audit.record(
        pool, agent=agent_of(request), action=audit.EXPORT,
        details={"what": "search", "format": fmt, "filters": filters.as_json(), "rows": len(hits)},
    )
    if fmt == "csv":
        return _file(transcripts.to_csv(transcripts.SEARCH_COLUMNS, transcripts.search_rows(hits)), fmt, "search")
    if fmt == "txt":
        return _file(transcripts.search_text(hits), fmt, "search")
    return JSONResponse({"query": filters.as_json(), "items": hits, "truncated": more is not None})


@role("manager")
async def conversation_transcript(request: Request) -> Response:
    fmt = _format(request)
    pool = hub_of(request).pool
    doc = await transcripts.conversation_transcript(pool, path_id(request))
    conv: JSON = doc["conversation"]
    await audit.record(
        pool, agent=agent_of(request), action=audit.EXPORT, conversation_id=conv["id"], client_id=conv["client_id"],
        details={"what": "conversation", "format": fmt},
    )
    name = f"conversation-{conv['id']}"
    if fmt == "csv":
        return _file(transcripts.to_csv(transcripts.CONVERSATION_COLUMNS, transcripts.conversation_rows([doc])), fmt, name)
    if fmt == "txt":
        return _file(transcripts.conversation_text(doc), fmt, name)
    return JSONResponse(doc)


@role("manager")
async def client_transcript(request: Request) -> Response:
    fmt = _format(request)
    pool = hub_of(request).pool
    doc = await transcripts.client_transcript(pool, path_id(request))
    client_id = doc["client"]["id"]
    await audit.record(
        pool, agent=agent_of(request), action=audit.EXPORT, client_id=client_id,
        details={"what": "client", "format": fmt, "conversations": len(doc["conversations"])},
    )
    name = f"client-{client_id}"
    if fmt == "csv":
        rows = transcripts.conversation_rows(doc["conversations"])
        return _file(transcripts.to_csv(transcripts.CONVERSATION_COLUMNS, rows), fmt, name)
    if fmt == "txt":
        return _file(transcripts.client_text(doc), fmt, name)
    return JSONResponse(doc)


@role("manager")
async def audit_log(request: Request) -> Response:
    limit, cursor = paging(request)
    qp = request.query_params
    action = qp.get("action") or None
    if action and action not in audit.ACTIONS:
        raise HTTPError(400, f"action must be one of {', '.join(audit.ACTIONS)}")
    items, next_cursor = await list_entries(
        hub_of(request).pool, agent_id=_agent_param(request, "agent"), action=action,
        conversation_id=_id_param(request, "conversation"), client_id=_id_param(request, "client"),
        start=query_time(request, "from"), end=query_time(request, "to"), limit=limit, cursor=cursor,
    )
    return page(items, next_cursor)


routes = [
    Route("/api/v1/search", search_history),
    Route("/api/v1/search/export", export_search),
    Route("/api/v1/conversations/{id:int}/transcript", conversation_transcript),
    Route("/api/v1/clients/{id:int}/transcript", client_transcript),
    Route("/api/v1/audit", audit_log),
]
