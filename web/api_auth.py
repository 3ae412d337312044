"""Login, logout, who am I, the team and the channels."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.channels import list_channels
from inbox.agents import authenticate, create_session, end_session, list_agents
from web.auth import COOKIE, SESSION_COOKIE_MAX_AGE, credentials, role
from web.http import HTTPError, agent_of, error, error_for, hub_of, json_body, page


async def login(request: Request) -> Response:
    try:
        body = await json_body(request, "email", "password")
    except HTTPError as e:
        return error_for(e)
    email, password = body["email"], body["password"]
    if not isinstance(email, str) or not isinstance(password, str):
        return error(400, "email and password must be strings")
    pool = hub_of(request).pool
    agent = await authenticate(pool, email, password)
    if agent is None:
        return error(401, "wrong e-mail or password")
    token = await create_session(pool, agent["id"])
    response = JSONResponse({"token": token, "agent": agent})
    response.set_cookie(
        COOKIE, token, max_age=SESSION_COOKIE_MAX_AGE, httponly=True, samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@role("agent")
async def logout(request: Request) -> Response:
    token, _ = credentials(request)
    if token:
        await end_session(hub_of(request).pool, token)
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE)
    return response


@role("agent")
async def me(request: Request) -> Response:
    return JSONResponse(agent_of(request))


@role("agent")
async def agents(request: Request) -> Response:
    return page(await list_agents(hub_of(request).pool), None)


@role("agent")
async def channels(request: Request) -> Response:
    return page(await list_channels(hub_of(request).pool), None)


routes = [
    Route("/api/v1/auth/login", login, methods=["POST"]),
    Route("/api/v1/auth/logout", logout, methods=["POST"]),
    Route("/api/v1/me", me),
    Route("/api/v1/agents", agents),
    Route("/api/v1/channels", channels),
]
