"""The Starlette application: REST API, websockets, the inbox and the widget script."""

from __future__ import annotations

import importlib
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hub.runtime import Hub
from web import (
    api_auth,
    api_card,
    api_clients,
    api_conversations,
    api_history,
    api_reports,
    api_routing,
    ws_agent,
    ws_widget,
)
from web.auth import TokenBackend
from web.http import error, hub_of
from web.openapi import openapi_document

STATIC = Path(__file__).resolve().parent / "static"

# The inbox renders customer text; it must never run it.
INBOX_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:;"
    " connect-src 'self' ws: wss:; frame-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


async def inbox_page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": INBOX_CSP})


async def widget_script(request: Request) -> Response:
    return FileResponse(STATIC / "widget.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"})


async def demo_page(request: Request) -> Response:
    channel_id = request.app.state.demo_channel_id
    if channel_id is None:
        return error(404, "the demo page is served by `omnihub serve --demo`")
    html = (STATIC / "demo.html").read_text(encoding="utf-8").replace("{{CHANNEL_ID}}", str(int(channel_id)))
    return HTMLResponse(html)


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


async def health(request: Request) -> Response:
    hub = hub_of(request)
    await hub.pool.fetchval("SELECT 1")
    return JSONResponse({"ok": True, "event_high_water": hub.fanout.high_water, "polling": sorted(hub.supervisor.running)})


def _webhook_routes() -> list[BaseRoute]:
    try:
        webhooks = importlib.import_module("web.webhooks")  # channel webhooks (Telegram), when present
    except ModuleNotFoundError:
        return []
    routes: list[BaseRoute] = webhooks.routes
    return routes


def create_app(hub: Hub, *, demo_channel_id: int | None = None) -> Starlette:
    routes: list[BaseRoute] = [
        Route("/", inbox_page),
        Route("/widget.js", widget_script),
        Route("/demo", demo_page),
        Route("/healthz", health),
        Route("/api/v1/openapi.json", openapi),
        *api_auth.routes,
        *api_conversations.routes,
        *api_clients.routes,
        *api_reports.routes,
        *api_history.routes,
        *api_card.routes,
        *api_routing.routes,
        *ws_agent.routes,
        *ws_widget.routes,
        *_webhook_routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(AuthenticationMiddleware, backend=TokenBackend())])
    app.state.hub = hub
    app.state.demo_channel_id = demo_channel_id
    app.state.widget_limits = ws_widget.WidgetLimits()
    return app
