"""One card per person: merge suggestions, merges and their undo, notes on the card."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inbox import clients, merge, suggestions
from inbox.notes import add_client_note, list_client_notes
from web.auth import role
from web.http import HTTPError, agent_of, hub_of, json_body, page, paging, path_id, text_field


@role("agent")
async def list_suggestions(request: Request) -> Response:
    limit, cursor = paging(request)
    items, next_cursor = await suggestions.list_suggestions(hub_of(request).pool, limit=limit, cursor=cursor)
    return page(items, next_cursor)


@role("agent")
async def client_suggestions(request: Request) -> Response:
    limit, cursor = paging(request)
    pool = hub_of(request).pool
    client_id = await clients.survivor_id(pool, path_id(request))  # 404 for an unknown id; a merged id leads on
    items, next_cursor = await suggestions.list_suggestions(pool, client_id=client_id, limit=limit, cursor=cursor)
    return page(items, next_cursor)


@role("agent")
async def confirm_suggestion(request: Request) -> Response:
    body = await json_body(request)
    survivor = body.get("survivor_id")
    if survivor is not None and (not isinstance(survivor, int) or isinstance(survivor, bool)):
        raise HTTPError(400, "survivor_id must be a client id (or left out: the older card survives)")
    pool = hub_of(request).pool
    survivor_id = await suggestions.confirm(
        pool, suggestion_id=path_id(request), survivor_id=survivor, agent=agent_of(request)
    )
    return JSONResponse(await clients.client_card(pool, survivor_id))


@role("agent")
async def dismiss_suggestion(request: Request) -> Response:
    return JSONResponse(
        await suggestions.dismiss(hub_of(request).pool, suggestion_id=path_id(request), agent=agent_of(request))
    )


@role("agent")
async def client_merges(request: Request) -> Response:
    pool = hub_of(request).pool
    return page(await merge.merges_of(pool, await clients.survivor_id(pool, path_id(request))), None)


@role("agent")
async def undo_merge(request: Request) -> Response:
    return JSONResponse(await merge.undo_merge(hub_of(request).pool, merge_id=path_id(request), agent=agent_of(request)))


@role("agent")
async def client_notes(request: Request) -> Response:
    return page(await list_client_notes(hub_of(request).pool, path_id(request)), None)


@role("agent")
async def add_note(request: Request) -> Response:
    body = await json_body(request, "text")
    note = await add_client_note(
        hub_of(request).pool, client_id=path_id(request), agent=agent_of(request), text=text_field(body, "text")
    )
    return JSONResponse(note, status_code=201)


routes = [
    Route("/api/v1/merge-suggestions", list_suggestions),
    Route("/api/v1/merge-suggestions/{id:int}/confirm", confirm_suggestion, methods=["POST"]),
    Route("/api/v1/merge-suggestions/{id:int}/dismiss", dismiss_suggestion, methods=["POST"]),
    Route("/api/v1/clients/{id:int}/merge-suggestions", client_suggestions),
    Route("/api/v1/clients/{id:int}/merges", client_merges),
    Route("/api/v1/merges/{id:int}/undo", undo_merge, methods=["POST"]),
    Route("/api/v1/clients/{id:int}/notes", client_notes, methods=["GET"]),
    Route("/api/v1/clients/{id:int}/notes", add_note, methods=["POST"]),
]
