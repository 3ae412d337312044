"""The shared vocabulary: what connectors, the inbox and the web layer exchange.

A connector sees only these types. It turns channel traffic into an
`InboundMessage` and hands it to an `InboundSink`; it delivers an
`OutboundMessage` and answers with a `SendResult` or raises one of the typed
errors in `hub.errors`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

JSON = dict[str, Any]
Direction = Literal["in", "out"]
MessageStatus = Literal["received", "queued", "sent", "delivered", "failed"]
ConversationStatus = Literal["open", "pending", "resolved", "snoozed"]
Role = Literal["agent", "manager", "admin"]
ROLES: tuple[Role, ...] = ("agent", "manager", "admin")
CONVERSATION_STATUSES: tuple[ConversationStatus, ...] = ("open", "pending", "resolved", "snoozed")


@dataclass(frozen=True)
class Attachment:
    """A file stored in the blob store, referenced by its sha256."""

    sha256: str
    filename: str
    content_type: str
    size: int
    kind: str = "file"  # photo, document, voice, video, sticker, location, ...

    def as_json(self) -> JSON:
        return {
            "sha256": self.sha256,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Sender:
    """Who wrote, as the channel knows them."""

    external_id: str  # Telegram user id, VK peer id, e-mail address, widget visitor id
    display_name: str = ""
    username: str = ""
    email: str = ""
    phone: str = ""


@dataclass(frozen=True)
class Cursor:
    """A channel position that must advance in the same transaction as the message."""

    key: str  # e.g. "update_offset", "INBOX:uidvalidity=7", "ts"
    value: str


@dataclass(frozen=True)
class InboundMessage:
    channel_id: int
    external_id: str  # unique per channel; the dedupe key
    sender: Sender
    text: str = ""
    html: str = ""  # sanitized HTML (e-mail), shown instead of text when present
    # The whole text as received when `text` shows it folded (e-mail quotes and
    # signatures); "" when nothing was folded.
    original_text: str = ""
    subject: str = ""
    attachments: tuple[Attachment, ...] = ()
    sent_at: dt.datetime | None = None
    # External ids (same channel) this message answers: e-mail In-Reply-To and
    # References, a Telegram reply_to. The first one found in a conversation of
    # this sender's client decides the conversation.
    thread_refs: tuple[str, ...] = ()
    # True when the channel says this starts a new thread (an e-mail with a new
    # subject): never append to an existing open conversation.
    new_thread: bool = False
    # A conversation id the channel read from our own reply address (e-mail
    # `support+<token>@`): tried after thread_refs, and only within the sender's client.
    reply_token_conversation: int | None = None
    # Sent by the company from the channel's own interface (VK admin reply).
    direction: Direction = "in"
    flags: tuple[str, ...] = ()  # "auto_reply", "bounce", "malformed", "edited", ...
    cursor: Cursor | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    message_id: int
    conversation_id: int
    client_id: int
    created: bool  # False when the external id was already stored


@dataclass(frozen=True)
class OutboundMessage:
    message_id: int
    channel_id: int
    conversation_id: int
    recipient: str  # the identity's external id on the channel
    text: str
    attachments: tuple[Attachment, ...] = ()
    subject: str = ""
    # External ids of the conversation's messages, oldest first (e-mail threading).
    thread_refs: tuple[str, ...] = ()
    reply_to_external_id: str = ""
    attempt: int = 1


@dataclass(frozen=True)
class SendResult:
    external_id: str
    status: MessageStatus = "sent"


@dataclass(frozen=True)
class ChannelAccount:
    """A configured channel as a connector receives it (secrets included)."""

    id: int
    kind: str
    name: str
    settings: Mapping[str, Any]
    secrets: Mapping[str, Any]


class BlobStore(Protocol):
    async def put(self, data: bytes, *, filename: str, content_type: str, kind: str = "file") -> Attachment: ...

    async def get(self, sha256: str) -> bytes | None: ...


class InboundSink(Protocol):
    """What a connector's inbound loop talks to."""

    async def ingest(self, message: InboundMessage) -> IngestResult: ...

    async def cursor(self, key: str) -> str | None:
        """The last committed value of a channel cursor, or None."""
        ...

    async def set_cursor(self, cursor: Cursor) -> None:
        """Advance a cursor with no message (e.g. an update we skip on purpose)."""
        ...

    async def record_raw(self, *, kind: str, reason: str, payload: Mapping[str, Any], cursor: Cursor | None = None) -> None:
        """Keep input we could not turn into a message (unknown update, broken mail)."""
        ...

    async def record_event(self, *, external_id: str, type: str, data: Mapping[str, Any]) -> None:
        """A channel event about a sender (VK message_deny, Telegram bot blocked) for the client card."""
        ...

    @property
    def blobs(self) -> BlobStore: ...


class Connector(Protocol):
    """One channel account's protocol. See docs/connectors.md."""

    account: ChannelAccount

    async def run(self, sink: InboundSink) -> None:
        """The inbound loop; runs until cancelled. Raising means "restart me with backoff"."""
        ...

    async def send(self, message: OutboundMessage, blobs: BlobStore) -> SendResult:
        """Deliver one message, or raise a `hub.errors.DeliveryError`."""
        ...

    async def close(self) -> None: ...
