"""Conversations, their messages, notes, assignment and status."""

from __future__ import annotations

import datetime as dt

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.types import Attachment
from inbox import conversations as convs
from inbox.notes import add_note, list_notes
from inbox.reply import retry_message, send_reply
from routing.assign import assign
from web.auth import role
from web.http import HTTPError, agent_of, hub_of, json_body, page, paging, path_id, text_field


@role("agent")
async def list_conversations(request: Request) -> Response:
    limit, cursor = paging(request)
    qp = request.query_params
    assignee: int | str | None = None
    raw = qp.get("assignee")
    if raw == "me":
        assignee = agent_of(request)["id"]
    elif raw == "none":
        assignee = "none"
    elif raw:
        if not raw.isdigit():
            raise HTTPError(400, "assignee must be an agent id, 'me' or 'none'")
        assignee = int(raw)
    items, next_cursor = await convs.list_conversations(
        hub_of(request).pool, status=qp.get("status") or None, channel=qp.get("channel") or None,
        assignee=assignee, q=qp.get("q") or None, limit=limit, cursor=cursor,
    )
    return page(items, next_cursor)


@role("agent")
async def get_conversation(request: Request) -> Response:
    return JSONResponse(await convs.get_conversation(hub_of(request).pool, path_id(request)))


@role("agent")
async def list_messages(request: Request) -> Response:
    limit, cursor = paging(request)
    order = request.query_params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise HTTPError(400, "order must be asc (oldest first) or desc (newest first)")
    items, next_cursor = await convs.list_messages(
        hub_of(request).pool, path_id(request), limit=limit, cursor=cursor, agent=agent_of(request),
        newest_first=order == "desc",
    )
    return page(items, next_cursor)


@role("agent")
async def reply(request: Request) -> Response:
    """JSON `{text}`, or multipart/form-data with a `text` field and up to 10 `file` parts."""
    attachments: tuple[Attachment, ...] = ()
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        text, attachments = await _reply_form(request)
    else:
        text = text_field(await json_body(request, "text"), "text")
    message = await send_reply(
        hub_of(request).pool, conversation_id=path_id(request), agent=agent_of(request), text=text,
        attachments=attachments,
    )
    return JSONResponse(message, status_code=201)


MAX_FILES = 10
MAX_TEXT = 100_000


@role("agent")
async def reply_limits(request: Request) -> Response:
    """What a reply may carry, so the inbox can refuse a too-large file before uploading it."""
    return JSONResponse(
        {"max_file_bytes": hub_of(request).blobs.max_size, "max_files": MAX_FILES, "max_text_chars": MAX_TEXT}
    )


async def _reply_form(request: Request) -> tuple[str, tuple[Attachment, ...]]:
    blobs = hub_of(request).blobs
    async with request.form(max_files=MAX_FILES, max_fields=10, max_part_size=blobs.max_size + 1) as form:
        text = form.get("text")
        text = text if isinstance(text, str) else ""
        stored = []
        for part in form.getlist("file"):
            if not isinstance(part, UploadFile):
                raise HTTPError(400, "file parts must be files")
            data = await part.read()
            if len(data) > blobs.max_size:
                raise HTTPError(413, f"{part.filename} is over the {blobs.max_size} byte attachment limit")
            content_type = part.content_type or "application/octet-stream"
            kind = "photo" if content_type.startswith("image/") else "document"
            stored.append(await blobs.put(data, filename=part.filename or "file", content_type=content_type, kind=kind))
    if not text.strip() and not stored:
        raise HTTPError(400, "a reply needs text or at least one file")
    if len(text) > MAX_TEXT:
        raise HTTPError(413, f"text is longer than {MAX_TEXT} characters")
    return text, tuple(stored)


@role("agent")
async def retry(request: Request) -> Response:
    message = await retry_message(hub_of(request).pool, message_id=path_id(request), agent=agent_of(request))
    return JSONResponse(message)


@role("agent")
async def notes(request: Request) -> Response:
    return page(await list_notes(hub_of(request).pool, path_id(request)), None)


@role("agent")
async def create_note(request: Request) -> Response:
    body = await json_body(request, "text")
    note = await add_note(
        hub_of(request).pool, conversation_id=path_id(request), agent=agent_of(request), text=text_field(body, "text")
    )
    return JSONResponse(note, status_code=201)


@role("agent")
async def assign_conversation(request: Request) -> Response:
    body = await json_body(request, "agent_id")
    agent_id = body["agent_id"]
    if agent_id is not None and (not isinstance(agent_id, int) or isinstance(agent_id, bool)):
        raise HTTPError(400, "agent_id must be an agent's id or null")
    conv = await assign(hub_of(request).pool, conversation_id=path_id(request), agent_id=agent_id, actor=agent_of(request))
    return JSONResponse(conv)


@role("agent")
async def set_status(request: Request) -> Response:
    body = await json_body(request, "status")
    status = body["status"]
    if not isinstance(status, str):
        raise HTTPError(400, "status must be a string")
    until = None
    if body.get("snoozed_until"):
        try:
            until = dt.datetime.fromisoformat(str(body["snoozed_until"]))
        except ValueError:
            raise HTTPError(400, "snoozed_until must be an ISO 8601 time, e.g. 2026-12-01T09:00:00+00:00") from None
        if until.tzinfo is None:
            raise HTTPError(400, "snoozed_until needs a time zone, e.g. 2026-12-01T09:00:00+00:00")
    conv = await convs.set_status(
        hub_of(request).pool, conversation_id=path_id(request), status=status, agent=agent_of(request),
        snoozed_until=until,
    )
    return JSONResponse(conv)


@role("agent")
async def mark_read(request: Request) -> Response:
    return JSONResponse(await convs.mark_read(hub_of(request).pool, conversation_id=path_id(request)))


routes = [
    Route("/api/v1/conversations", list_conversations),
    Route("/api/v1/conversations/{id:int}", get_conversation),
    Route("/api/v1/conversations/{id:int}/messages", list_messages, methods=["GET"]),
    Route("/api/v1/conversations/{id:int}/messages", reply, methods=["POST"]),
    Route("/api/v1/conversations/{id:int}/notes", notes, methods=["GET"]),
    Route("/api/v1/conversations/{id:int}/notes", create_note, methods=["POST"]),
    Route("/api/v1/conversations/{id:int}/assign", assign_conversation, methods=["POST"]),
    Route("/api/v1/conversations/{id:int}/status", set_status, methods=["POST"]),
    Route("/api/v1/conversations/{id:int}/read", mark_read, methods=["POST"]),
    Route("/api/v1/messages/{id:int}/retry", retry, methods=["POST"]),
    Route("/api/v1/reply-limits", reply_limits),
]
