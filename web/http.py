"""Small helpers every endpoint uses: JSON errors, bodies, paging, the hub."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse

from hub.errors import Conflict, NotFound, OmnihubError
from hub.runtime import Hub
from hub.types import JSON

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def hub_of(conn: HTTPConnection) -> Hub:
    hub: Hub = conn.app.state.hub
    return hub


def agent_of(conn: HTTPConnection) -> JSON:
    agent: JSON = conn.user.agent
    return agent


async def json_body(request: Request, *required: str) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPError(400, "the request body must be JSON") from None
    if not isinstance(body, dict):
        raise HTTPError(400, "the request body must be a JSON object")
    missing = [k for k in required if k not in body]
    if missing:
        raise HTTPError(400, f"missing field: {', '.join(missing)}")
    return body


def text_field(body: dict[str, Any], name: str, *, max_length: int = 100_000) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise HTTPError(400, f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise HTTPError(413, f"{name} is longer than {max_length} characters")
    return value


def path_id(request: Request, name: str = "id") -> int:
    value: int = request.path_params[name]
    return value


def paging(request: Request) -> tuple[int, str | None]:
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        raise HTTPError(400, f"limit must be a number from 1 to {MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise HTTPError(400, f"limit must be a number from 1 to {MAX_LIMIT}")
    return limit, request.query_params.get("cursor") or None


def page(items: list[JSON], next_cursor: str | None) -> JSONResponse:
    return JSONResponse({"items": items, "next_cursor": next_cursor})


def error_for(exc: Exception) -> JSONResponse:
    if isinstance(exc, HTTPError):
        return error(exc.status, exc.message)
    if isinstance(exc, NotFound):
        return error(404, str(exc))
    if isinstance(exc, Conflict):
        return error(409, str(exc))
    if isinstance(exc, OmnihubError):
        return error(400, str(exc))
    raise exc


def query_time(request: Request, name: str) -> dt.datetime | None:
    """An ISO 8601 date or time query parameter (UTC when it names no zone); None when absent."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise HTTPError(400, f"{name} must be an ISO 8601 date or time, e.g. 2026-11-01") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
