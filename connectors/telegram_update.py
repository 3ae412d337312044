"""Reading Telegram updates: a message → `InboundMessage` (kinds, files, contacts, places).

No network here: files are fetched through the `download` callable the
connector passes in, so this module only decides what a message means.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiogram.types import ChatMemberUpdated, Message

from hub.types import Attachment, Cursor, InboundMessage, Sender

# Message kinds we store as "[unsupported message: …]" in a private chat.
UNSUPPORTED_KINDS = ("poll", "dice", "game", "invoice", "story", "paid_media")
# The bot's new status in a private chat → the client card event it means.
MEMBER_EVENTS = {"kicked": "telegram.bot_blocked", "member": "telegram.bot_unblocked"}


@dataclass(frozen=True)
class FileRef:
    kind: str
    file_id: str
    file_size: int | None
    filename: str
    content_type: str


# The stored attachment, or None and a note saying why it is missing.
Download = Callable[[FileRef], Awaitable[tuple[Attachment | None, str]]]


async def to_inbound(
    message: Message,
    payload: dict[str, Any],
    *,
    channel_id: int,
    edited: bool,
    cursor: Cursor | None,
    download: Download,
) -> InboundMessage | None:
    """The message as we store it; None for a group service message with nothing to show."""
    chat_id = message.chat.id
    external_id = f"{chat_id}:{message.message_id}"
    flags: list[str] = []
    refs: list[str] = []
    notes: list[str] = []
    raw: dict[str, Any] = {"update": payload}
    user = message.from_user
    name = " ".join(p for p in (user.first_name, user.last_name) if p) if user else ""
    text = message.text or message.caption or ""
    if edited:  # same external id: ingest updates the stored message and keeps the old text
        flags.append("edited")
    if message.reply_to_message is not None:
        refs.append(f"{chat_id}:{message.reply_to_message.message_id}")
    if message.text and message.text.startswith("/start"):
        flags.append("start")
        start_payload = message.text.removeprefix("/start").strip()
        if start_payload:
            raw["start_payload"] = start_payload
    phone = ""
    if message.contact is not None:
        c = message.contact
        contact_name = " ".join(p for p in (c.first_name, c.last_name) if p)
        text = f"Shared contact: {contact_name} {c.phone_number}".strip()
        flags.append("contact")
        if user is not None and c.user_id == user.id:
            phone = c.phone_number
    if message.venue is not None:
        v = message.venue
        text = _join(text, f"Venue: {v.title}, {v.address} ({v.location.latitude}, {v.location.longitude})")
        flags.append("location")
    elif message.location is not None:
        loc = message.location
        text = _join(text, f"Location: {loc.latitude}, {loc.longitude}")
        flags.append("location")
    attachments: list[Attachment] = []
    for ref in file_refs(message):
        att, note = await download(ref)
        if att is not None:
            attachments.append(att)
        else:
            notes.append(note)
            flags.append("attachment_missing")
    if notes:
        text = _join(text, "\n".join(f"[{n}]" for n in notes))
    if not text and not attachments:
        if message.chat.type != "private":
            return None
        kinds = [k for k in UNSUPPORTED_KINDS if _has(message, k)]
        text = f"[unsupported message: {', '.join(kinds) or 'unknown content'}]"
        flags.append("unsupported")
    if message.chat.type == "private":
        sender = Sender(
            external_id=str(chat_id), display_name=name, username=(user.username or "") if user else "", phone=phone
        )
    else:
        # A group is one conversation: replies go to the group, so the group is the sender.
        sender = Sender(external_id=str(chat_id), display_name=message.chat.title or str(chat_id))
        text = f"{name or 'someone'}: {text}"
        flags.append("group")
    return InboundMessage(
        channel_id=channel_id,
        external_id=external_id,
        sender=sender,
        text=text,
        attachments=tuple(attachments),
        sent_at=dt.datetime.fromtimestamp(message.edit_date, dt.UTC) if edited and message.edit_date else message.date,
        thread_refs=tuple(dict.fromkeys(refs)),
        flags=tuple(dict.fromkeys(flags)),
        cursor=cursor,
        raw=raw,
    )


def member_event(member: ChatMemberUpdated) -> str | None:
    """`telegram.bot_blocked` / `telegram.bot_unblocked` when the user blocks or unblocks the bot."""
    return MEMBER_EVENTS.get(str(member.new_chat_member.status))


def update_kinds(payload: Mapping[str, Any]) -> str:
    """What an update we do not handle carries, for the raw record's reason."""
    kinds = sorted(k for k, v in payload.items() if k != "update_id" and v is not None)
    return ", ".join(kinds) or "(empty)"


def file_refs(message: Message) -> list[FileRef]:
    refs: list[FileRef] = []
    if message.photo:
        p = message.photo[-1]  # the largest size
        refs.append(FileRef("photo", p.file_id, p.file_size, f"photo_{p.file_unique_id}.jpg", "image/jpeg"))
    if message.animation is not None:
        a = message.animation
        refs.append(
            FileRef("animation", a.file_id, a.file_size, a.file_name or "animation.mp4", a.mime_type or "video/mp4")
        )
    elif message.document is not None:
        d = message.document
        ctype = d.mime_type or "application/octet-stream"
        refs.append(FileRef("document", d.file_id, d.file_size, d.file_name or "document", ctype))
    if message.audio is not None:
        au = message.audio
        refs.append(
            FileRef("audio", au.file_id, au.file_size, au.file_name or "audio.mp3", au.mime_type or "audio/mpeg")
        )
    if message.voice is not None:
        vo = message.voice
        refs.append(FileRef("voice", vo.file_id, vo.file_size, "voice.ogg", vo.mime_type or "audio/ogg"))
    if message.video is not None:
        vi = message.video
        refs.append(
            FileRef("video", vi.file_id, vi.file_size, vi.file_name or "video.mp4", vi.mime_type or "video/mp4")
        )
    if message.video_note is not None:
        vn = message.video_note
        refs.append(FileRef("video_note", vn.file_id, vn.file_size, "video_note.mp4", "video/mp4"))
    if message.sticker is not None:
        s = message.sticker
        if s.is_video:
            name, ctype = "sticker.webm", "video/webm"
        elif s.is_animated:
            name, ctype = "sticker.tgs", "application/x-tgsticker"
        else:
            name, ctype = "sticker.webp", "image/webp"
        refs.append(FileRef("sticker", s.file_id, s.file_size, name, ctype))
    return refs


def _join(text: str, extra: str) -> str:
    return f"{text}\n{extra}" if text else extra


def _has(message: Message, field: str) -> bool:
    return getattr(message, field, None) is not None or field in (message.model_extra or {})
