"""Client cards and attachments."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inbox import clients
from web.auth import role
from web.http import HTTPError, agent_of, error, hub_of, json_body, page, paging, path_id


@role("agent")
async def list_clients(request: Request) -> Response:
    limit, cursor = paging(request)
    items, next_cursor = await clients.list_clients(
        hub_of(request).pool, q=request.query_params.get("q") or None, limit=limit, cursor=cursor
    )
    return page(items, next_cursor)


@role("agent")
async def get_client(request: Request) -> Response:
    return JSONResponse(await clients.client_card(hub_of(request).pool, path_id(request)))


@role("agent")
async def client_conversations(request: Request) -> Response:
    limit, cursor = paging(request)
    items, next_cursor = await clients.client_conversations(
        hub_of(request).pool, path_id(request), limit=limit, cursor=cursor
    )
    return page(items, next_cursor)


@role("agent")
async def client_identities(request: Request) -> Response:
    limit, cursor = paging(request)
    items, next_cursor = await clients.client_identities(hub_of(request).pool, path_id(request), limit=limit, cursor=cursor)
    return page(items, next_cursor)


@role("agent")
async def client_timeline(request: Request) -> Response:
    limit, cursor = paging(request)
    items, next_cursor = await clients.client_timeline(hub_of(request).pool, path_id(request), limit=limit, cursor=cursor)
    return page(items, next_cursor)


@role("agent")
async def update_client(request: Request) -> Response:
    body = await json_body(request)
    card = await clients.update_client(
        hub_of(request).pool, client_id=path_id(request), changes=body, agent=agent_of(request)
    )
    return JSONResponse(card)


@role("agent")
async def merge_client(request: Request) -> Response:
    body = await json_body(request, "other_id")
    other = body["other_id"]
    if not isinstance(other, int) or isinstance(other, bool):
        raise HTTPError(400, "other_id must be a client id")
    card = await clients.merge_clients(
        hub_of(request).pool, client_id=path_id(request), other_id=other, agent=agent_of(request)
    )
    return JSONResponse(card)


@role("agent")
async def blob(request: Request) -> Response:
    sha = request.path_params["sha256"]
    store = hub_of(request).blobs
    data = await store.get(sha)
    if data is None:
        return error(404, f"no file {sha}")
    content_type = await store.content_type(sha) or "application/octet-stream"
    # Never let an uploaded file run as a page of ours.
    headers = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
    if not content_type.startswith(("image/", "audio/", "video/")):
        headers["Content-Disposition"] = "attachment"
    return Response(data, media_type=content_type, headers=headers)


routes = [
    Route("/api/v1/clients", list_clients),
    Route("/api/v1/clients/{id:int}", get_client, methods=["GET"]),
    Route("/api/v1/clients/{id:int}", update_client, methods=["PATCH"]),
    Route("/api/v1/clients/{id:int}/conversations", client_conversations),
    Route("/api/v1/clients/{id:int}/identities", client_identities),
    Route("/api/v1/clients/{id:int}/timeline", client_timeline),
    Route("/api/v1/clients/{id:int}/merge", merge_client, methods=["POST"]),
    Route("/api/v1/blobs/{sha256:str}", blob),
]
