"""The site chat widget as a channel.

Inbound arrives over `/ws/widget` (web/ws_widget.py), not from a loop we run;
outbound needs no network call: the reply is already stored, and the event
fan-out carries it to the visitor's open websocket (or their next visit loads
it). Visitors are identified by a signed token kept in their browser.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import uuid
from typing import Any, ClassVar

from hub.types import BlobStore, ChannelAccount, InboundSink, OutboundMessage, SendResult


class WidgetConnector:
    kind: ClassVar[str] = "widget"

    def __init__(self, account: ChannelAccount) -> None:
        self.account = account

    @classmethod
    async def check(cls, account: ChannelAccount) -> dict[str, Any]:
        return {}

    async def run(self, sink: InboundSink) -> None:
        await asyncio.Event().wait()  # nothing to poll: visitors come to us

    async def send(self, message: OutboundMessage, blobs: BlobStore) -> SendResult:
        return SendResult(external_id=f"out:{message.message_id}", status="sent")

    async def close(self) -> None:
        return None



def new_signing_key() -> str:
    return secrets.token_urlsafe(32)


def _mac(key: str, visitor_id: str) -> str:
    digest = hmac.new(key.encode(), visitor_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_visitor_token(key: str) -> tuple[str, str]:
    """A new visitor id and the token that proves it."""
    visitor_id = uuid.uuid4().hex
    return visitor_id, f"{visitor_id}.{_mac(key, visitor_id)}"


def verify_visitor_token(key: str, token: str) -> str | None:
    visitor_id, _, mac = token.partition(".")
    if not visitor_id or not mac or not hmac.compare_digest(mac, _mac(key, visitor_id)):
        return None
    return visitor_id


def file_signature(key: str, visitor_id: str, sha256: str, filename: str) -> str:
    """Lets one visitor fetch one file of their conversation (a capability URL: no cookie on a third-party site)."""
    return _mac(key, f"file\n{visitor_id}\n{sha256}\n{filename}")


def verify_file_signature(key: str, visitor_id: str, sha256: str, filename: str, signature: str) -> bool:
    return hmac.compare_digest(signature, file_signature(key, visitor_id, sha256, filename))


def verify_user_hash(key: str, user_id: str, user_hash: str) -> bool:
    """Identity verification: the site signs its own user id with the channel's key (HMAC-SHA256, hex)."""
    expected = hmac.new(key.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, user_hash)
