"""Where Telegram delivers a channel's updates in webhook mode, and the secret it must send.

Free of aiogram, so web/webhooks.py can route and authenticate a call without
loading the Bot API client until a Telegram channel really has an update.
"""

from __future__ import annotations

import hashlib

from hub.types import ChannelAccount


def webhook_path(channel_id: int) -> str:
    return f"/hooks/telegram/{channel_id}"


def webhook_secret(account: ChannelAccount) -> str:
    """The secret Telegram sends back in X-Telegram-Bot-Api-Secret-Token.

    Derived from the token unless one is stored, so it needs no extra setup and
    changes when the token is revoked.
    """
    stored = account.secrets.get("webhook_secret")
    if stored:
        return str(stored)
    token = str(account.secrets.get("token", ""))
    return hashlib.sha256(f"omnihub-telegram-webhook:{token}".encode()).hexdigest()
