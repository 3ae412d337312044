"""Who is calling, and may they: sessions, roles, the Origin check.

An agent authenticates with `Authorization: Bearer <token>` (API clients) or
the `omnihub_session` cookie (the inbox). Roles nest: admin ⊃ manager ⊃ agent.
A state-changing request authenticated by cookie must come from our own
origin, so another site can't make an agent's browser act for them.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from hub.types import JSON
from inbox.agents import agent_for_token
from web.http import error, error_for, hub_of

COOKIE = "omnihub_session"
SESSION_COOKIE_MAX_AGE = 30 * 24 * 3600
RANK = {"agent": 1, "manager": 2, "admin": 3}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class AgentUser(BaseUser):
    def __init__(self, agent: JSON, via_cookie: bool) -> None:
        self.agent = agent
        self.via_cookie = via_cookie

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        name: str = self.agent["name"]
        return name


class TokenBackend(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        token, via_cookie = credentials(conn)
        if not token:
            return None
        agent = await agent_for_token(hub_of(conn).pool, token)
        if agent is None:
            return None
        return AuthCredentials(["authenticated", agent["role"]]), AgentUser(agent, via_cookie)


def credentials(conn: HTTPConnection) -> tuple[str | None, bool]:
    header = conn.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), False
    if conn.scope["type"] == "websocket" and conn.query_params.get("token"):
        return conn.query_params["token"], False
    cookie = conn.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


def same_origin(conn: HTTPConnection) -> bool:
    origin = conn.headers.get("origin")
    if not origin:
        return False
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    allowed = {f"{scheme}://{conn.url.netloc}"}
    public = hub_of(conn).config.public_url
    if public:
        parts = urlsplit(public)
        allowed.add(f"{parts.scheme}://{parts.netloc}")
    return origin in allowed


Endpoint = Callable[[Request], Awaitable[Response]]


def role(minimum: str) -> Callable[[Endpoint], Endpoint]:
    """Require an authenticated agent of at least this role (and our Origin for cookie writes)."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            user: Any = request.user
            if not isinstance(user, AgentUser):
                return error(401, "log in first: POST /api/v1/auth/login")
            if RANK[user.agent["role"]] < RANK[minimum]:
                return error(403, f"this needs the {minimum} role; you are {user.agent['role']}")
            if user.via_cookie and request.method not in SAFE_METHODS and not same_origin(request):
                return error(403, "cross-origin request refused: the Origin header must be this server's")
            try:
                return await endpoint(request)
            except Exception as e:
                return error_for(e)

        guarded.required_role = minimum  # type: ignore[attr-defined]
        return guarded

    return wrap
