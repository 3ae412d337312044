"""Channel webhooks: Telegram POSTs each update to /hooks/telegram/{channel_id}.

The update is stored before we answer 200, so a crash in between makes
Telegram deliver it again, and the (channel, external id) key drops the
repeat. A request without the channel's secret token stores nothing.
"""

from __future__ import annotations

import hmac
import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.registry import CONNECTORS
from connectors.telegram_webhook import webhook_secret
from hub import channels
from inbox.sink import ChannelSink
from web.http import error, hub_of

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def telegram_update(request: Request) -> Response:
    hub = hub_of(request)
    channel_id: int = request.path_params["channel_id"]
    account = await channels.get_account(hub.pool, channel_id)
    if account is None or account.kind != "telegram":
        return error(404, "no Telegram channel with this id")
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), webhook_secret(account).encode()):
        log.warning("telegram channel %s: webhook call with a wrong secret token from %s", channel_id, request.client)
        return error(401, f"wrong or missing {SECRET_HEADER}")
    try:
        update = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error(400, "the update must be JSON")
    if not isinstance(update, dict):
        return error(400, "the update must be a JSON object")
    await CONNECTORS.load("telegram")  # aiogram is imported on first use (connectors/registry.py)
    from connectors.telegram import TelegramConnector

    connector = TelegramConnector(account)
    try:
        await connector.handle_update(update, ChannelSink(hub.pool, channel_id, hub.blobs), cursor=None)
    finally:
        await connector.close()
    return JSONResponse({})


routes: list[BaseRoute] = [
    Route("/hooks/telegram/{channel_id:int}", telegram_update, methods=["POST"]),
]
