"""Telegram bots through the Bot API (aiogram): long polling or webhook, replies out.

Exactly once: we run our own getUpdates loop and hand every update to the sink
with the next offset as its cursor, so the offset commits in the same
transaction as the message (aiogram's `start_polling` keeps it in memory only).
Updates are fetched as plain JSON and validated one by one, so one update that
does not parse is kept raw instead of failing its whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    AiogramError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import BufferedInputFile, Message, ReplyParameters, Update
from aiogram.utils.token import TokenValidationError
from pydantic import ValidationError

from connectors.ratelimit import KeyedRateLimiter, RateLimited, TokenBucket, acquire_all
from hub.blobs import BlobTooLarge
from hub.errors import (
    ChannelCheckError,
    ConfigError,
    PermanentFailure,
    RetryAfter,
    TemporaryFailure,
)
from hub.types import (
    Attachment,
    BlobStore,
    ChannelAccount,
    Cursor,
    InboundMessage,
    InboundSink,
    OutboundMessage,
    Sender,
    SendResult,
)

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.telegram.org"
OFFSET_KEY = "update_offset"
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files
PHOTO_UPLOAD_LIMIT = 10 * 1024 * 1024
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
# Telegram: about 1 message/s per chat (short bursts are fine), about 30/s per bot.
PER_CHAT_RATE, PER_CHAT_BURST = 1.0, 3.0
PER_BOT_RATE, PER_BOT_BURST = 30.0, 30.0
# Longer than this in our own limiter: give the message back to the outbox.
MAX_LOCAL_WAIT = 5.0


class _GetRawUpdates(TelegramMethod[list[dict[str, Any]]]):
    """getUpdates answering plain dicts, so each update is validated on its own."""

    __returning__ = list[dict[str, Any]]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


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


def _make_bot(account: ChannelAccount) -> Bot:
    token = str(account.secrets.get("token") or "")
    api_base = str(account.settings.get("api_base") or DEFAULT_API_BASE)
    try:
        return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_base)))
    except TokenValidationError:
        raise ConfigError(
            "the Telegram token does not look like a bot token (digits:letters, from @BotFather)"
        ) from None


@dataclass(frozen=True)
class _FileRef:
    kind: str
    file_id: str
    file_size: int | None
    filename: str
    content_type: str


class TelegramConnector:
    kind: ClassVar[str] = "telegram"

    def __init__(self, account: ChannelAccount) -> None:
        self.account = account
        self.bot = _make_bot(account)
        settings = account.settings
        self.api_base = str(settings.get("api_base") or DEFAULT_API_BASE)
        self.mode = str(settings.get("mode") or "polling")
        self.allow_groups = bool(settings.get("allow_groups", False))
        self.poll_timeout = int(settings.get("poll_timeout", 25))
        self.max_file_size = min(int(settings.get("max_file_size", TELEGRAM_DOWNLOAD_LIMIT)), TELEGRAM_DOWNLOAD_LIMIT)
        self._chat_limiter = KeyedRateLimiter(PER_CHAT_RATE, PER_CHAT_BURST)
        self._bot_limiter = TokenBucket(PER_BOT_RATE, PER_BOT_BURST)
        # Parts of a reply already delivered (message id → part → Telegram message id),
        # so a retry after a 429 on the second part does not send the first twice.
        self._sent_parts: OrderedDict[int, dict[int, int]] = OrderedDict()

    # -- checking an account on `channel add` --------------------------------

    @classmethod
    async def check(cls, account: ChannelAccount) -> dict[str, Any]:
        if not account.secrets.get("token"):
            raise ChannelCheckError("a Telegram bot token is required (--token, from @BotFather)")
        try:
            connector = cls(account)
        except ConfigError as e:
            raise ChannelCheckError(str(e)) from None
        try:
            return await connector._check()
        finally:
            await connector.close()

    async def _check(self) -> dict[str, Any]:
        base = self.api_base
        try:
            me = await self.bot.get_me(request_timeout=15)
            info = await self.bot.get_webhook_info(request_timeout=15)
        except TelegramUnauthorizedError:
            raise ChannelCheckError("Telegram refused the bot token (401): copy it again from @BotFather") from None
        except TelegramNotFound:
            raise ChannelCheckError(f"{base} answered 404 for getMe: check --api-base and the token") from None
        except TelegramNetworkError as e:
            raise ChannelCheckError(
                f"cannot reach the Bot API at {base} ({e.message}): check --api-base and the network"
            ) from None
        except (TelegramAPIError, AiogramError) as e:
            raise ChannelCheckError(f"{base} did not answer like the Bot API ({e}): check --api-base") from None
        ours = (
            self.mode == "webhook"
            and self._webhook_url() is not None
            and info.url.startswith(self._webhook_url_prefix())
        )
        if info.url and not ours:
            fix = "use --mode webhook with this hub's --public-url" if self.mode == "polling" else "check --public-url"
            raise ChannelCheckError(
                f"bot @{me.username} already has a webhook set to {info.url} (another program?): remove it (deleteWebhook) or {fix}"
            )
        if self.mode == "webhook":
            if not self.account.settings.get("public_url"):
                raise ChannelCheckError("webhook mode needs --public-url, the address Telegram can reach this hub at")
            if self.account.id:
                await self._set_webhook()
        elif self.mode != "polling":
            raise ChannelCheckError(f"unknown Telegram mode {self.mode!r}: use polling or webhook")
        return {"bot_username": me.username or "", "bot_id": me.id}

    def _webhook_url_prefix(self) -> str:
        return str(self.account.settings.get("public_url", "")).rstrip("/") + "/hooks/telegram/"

    def _webhook_url(self) -> str | None:
        if not self.account.settings.get("public_url"):
            return None
        return self._webhook_url_prefix() + str(self.account.id)

    async def _set_webhook(self) -> None:
        url = self._webhook_url()
        if url is None:
            raise ConfigError("Telegram webhook mode needs the public_url setting")
        try:
            await self.bot.set_webhook(url, secret_token=webhook_secret(self.account), allowed_updates=[])
        except TelegramBadRequest as e:
            raise ChannelCheckError(f"Telegram refused the webhook {url}: {e.message}") from None

    # -- inbound ---------------------------------------------------------------

    async def run(self, sink: InboundSink) -> None:
        if self.mode == "webhook":
            # Updates arrive at web/webhooks.py; this task only keeps the webhook registered.
            await self._set_webhook()
            await asyncio.Event().wait()
            return
        await self._drop_own_webhook()
        stored = await sink.cursor(OFFSET_KEY)
        offset = int(stored) if stored else None
        failures = 0
        while True:
            try:
                batch = await self.bot(
                    _GetRawUpdates(offset=offset, timeout=self.poll_timeout, allowed_updates=[]),
                    request_timeout=self.poll_timeout + 15,
                )
            except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter) as e:
                failures += 1
                delay = e.retry_after if isinstance(e, TelegramRetryAfter) else min(30.0, 2.0 ** min(failures, 5))
                log.warning("telegram channel %s: getUpdates failed (%s), retrying in %.0fs", self.account.id, e, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            for raw in batch:
                update_id = raw.get("update_id")
                if not isinstance(update_id, int):
                    await sink.record_raw(
                        kind="telegram.update", reason="update without an integer update_id", payload=raw
                    )
                    continue
                if offset is not None and update_id < offset:
                    continue
                await self.handle_update(raw, sink, cursor=Cursor(OFFSET_KEY, str(update_id + 1)))
                offset = update_id + 1

    async def _drop_own_webhook(self) -> None:
        """Switching from webhook to polling: remove our webhook; leave anyone else's and fail clearly."""
        info = await self.bot.get_webhook_info()
        if not info.url:
            return
        if info.url.endswith(webhook_path(self.account.id)):
            await self.bot.delete_webhook()
            return
        raise ConfigError(
            f"a webhook is set to {info.url} by another program; getUpdates cannot work until it is removed"
        )

    async def handle_update(self, raw: Mapping[str, Any], sink: InboundSink, *, cursor: Cursor | None) -> None:
        """Store one update. Errors of the store propagate; anything we cannot read is kept raw."""
        payload = dict(raw)
        try:
            update = Update.model_validate(payload, context={"bot": self.bot})
        except ValidationError as e:
            reason = f"update does not parse: {e.error_count()} error(s), first: {e.errors()[0]['msg']}"
            await sink.record_raw(kind="telegram.update", reason=reason, payload=payload, cursor=cursor)
            return
        if update.message is not None or update.edited_message is not None:
            message = update.message or update.edited_message
            assert message is not None
            private = message.chat.type == "private"
            if not private and not self.allow_groups:
                log.info(
                    "telegram channel %s: ignoring a message in %s chat %s",
                    self.account.id,
                    message.chat.type,
                    message.chat.id,
                )
                await self._skip(sink, cursor)
                return
            try:
                inbound = await self._to_inbound(
                    message, payload, sink.blobs, edited=update.message is None, cursor=cursor
                )
            except (ValueError, TypeError, AttributeError, KeyError) as e:
                await sink.record_raw(
                    kind="telegram.update", reason=f"could not read message: {e!r}", payload=payload, cursor=cursor
                )
                return
            if inbound is None:
                await sink.record_raw(kind="telegram.update", reason="service message", payload=payload, cursor=cursor)
                return
            result = await sink.ingest(inbound)
            if result.created:
                await self._card_events(inbound, sink)
            return
        member = update.my_chat_member
        if member is not None and member.chat.type == "private":
            status = member.new_chat_member.status
            event = {"kicked": "telegram.bot_blocked", "member": "telegram.bot_unblocked"}.get(str(status))
            if event:
                await sink.record_event(
                    external_id=str(member.chat.id), type=event, data={"date": member.date.isoformat()}
                )
            await self._skip(sink, cursor)
            return
        kinds = sorted(k for k, v in payload.items() if k != "update_id" and v is not None)
        await sink.record_raw(
            kind="telegram.update",
            reason=f"unhandled update type {', '.join(kinds) or '(empty)'}",
            payload=payload,
            cursor=cursor,
        )

    @staticmethod
    async def _card_events(inbound: InboundMessage, sink: InboundSink) -> None:
        """What the client card should show besides the message: where they came from, their phone."""
        who = inbound.sender.external_id
        if "start_payload" in inbound.raw:
            await sink.record_event(
                external_id=who, type="telegram.start", data={"payload": inbound.raw["start_payload"]}
            )
        if inbound.sender.phone:
            await sink.record_event(
                external_id=who, type="telegram.contact_shared", data={"phone": inbound.sender.phone}
            )

    @staticmethod
    async def _skip(sink: InboundSink, cursor: Cursor | None) -> None:
        if cursor is not None:
            await sink.set_cursor(cursor)

    async def _to_inbound(
        self, message: Message, payload: dict[str, Any], blobs: BlobStore, *, edited: bool, cursor: Cursor | None
    ) -> InboundMessage | None:
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
        for ref in _file_refs(message):
            att, note = await self._download(ref, blobs)
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
            kinds = [k for k in ("poll", "dice", "game", "invoice", "story", "paid_media") if _has(message, k)]
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
            channel_id=self.account.id,
            external_id=external_id,
            sender=sender,
            text=text,
            attachments=tuple(attachments),
            sent_at=dt.datetime.fromtimestamp(message.edit_date, dt.UTC)
            if edited and message.edit_date
            else message.date,
            thread_refs=tuple(dict.fromkeys(refs)),
            flags=tuple(dict.fromkeys(flags)),
            cursor=cursor,
            raw=raw,
        )

    async def _download(self, ref: _FileRef, blobs: BlobStore) -> tuple[Attachment | None, str]:
        """The stored attachment, or None and a note saying why it is missing."""
        too_large = f"{ref.kind} {ref.filename} not downloaded: larger than the {_human_size(self.max_file_size)} limit"
        over_telegram = f"{ref.kind} {ref.filename} not downloaded: Telegram lets bots download at most 20 MB"
        if ref.file_size is not None and ref.file_size > TELEGRAM_DOWNLOAD_LIMIT:
            return None, over_telegram
        if ref.file_size is not None and ref.file_size > self.max_file_size:
            return None, too_large
        error = ""
        for attempt in range(3):
            try:
                file = await self.bot.get_file(ref.file_id)
                if file.file_path is None:
                    return None, over_telegram
                if (file.file_size or 0) > self.max_file_size:
                    return None, too_large
                data = await self._fetch(file.file_path)
                if data is None:
                    return None, too_large
                att = await blobs.put(data, filename=ref.filename, content_type=ref.content_type, kind=ref.kind)
                return att, ""
            except BlobTooLarge as e:
                return None, f"{ref.kind} {ref.filename} not stored: {e}"
            except TelegramRetryAfter as e:
                error = str(e)
                await asyncio.sleep(min(e.retry_after, 30))
            except TelegramBadRequest as e:
                if "too big" in e.message.lower():
                    return None, over_telegram
                return None, f"{ref.kind} {ref.filename} not downloaded: {e.message}"
            except (TelegramNetworkError, TelegramServerError, aiohttp.ClientError, TimeoutError) as e:
                error = str(e) or type(e).__name__
                await asyncio.sleep(0.5 * (attempt + 1))
            except (TelegramAPIError, AiogramError) as e:
                return None, f"{ref.kind} {ref.filename} not downloaded: {e}"
        return None, f"{ref.kind} {ref.filename} not downloaded: {error}"

    async def _fetch(self, file_path: str) -> bytes | None:
        """The file's bytes, or None once it grows past our limit (whatever getFile said)."""
        url = self.bot.session.api.file_url(self.bot.token, file_path)
        chunks: list[bytes] = []
        size = 0
        stream = self.bot.session.stream_content(url, timeout=120, chunk_size=256 * 1024, raise_for_status=True)
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                size += len(chunk)
                if size > self.max_file_size:
                    return None
                chunks.append(chunk)
        return b"".join(chunks)

    # -- outbound --------------------------------------------------------------

    async def send(self, message: OutboundMessage, blobs: BlobStore) -> SendResult:
        try:
            chat_id = int(message.recipient)
        except ValueError:
            raise PermanentFailure(f"{message.recipient!r} is not a Telegram chat id") from None
        parts = await self._parts(message, blobs)
        done = self._sent_parts.setdefault(message.message_id, {})
        self._sent_parts.move_to_end(message.message_id)
        while len(self._sent_parts) > 1000:
            self._sent_parts.popitem(last=False)
        reply_to = _reply_to_id(message.reply_to_external_id, chat_id)
        try:
            for index, part in enumerate(parts):
                if index in done:
                    continue
                await acquire_all([self._chat_limiter.bucket(chat_id), self._bot_limiter], max_wait=MAX_LOCAL_WAIT)
                done[index] = await self._send_part(chat_id, part, reply_to if index == 0 else None)
        except RateLimited as e:
            raise RetryAfter("Telegram rate limit (held back by omnihub)", e.delay) from None
        except TelegramRetryAfter as e:
            self._chat_limiter.bucket(chat_id).pause(e.retry_after)
            raise RetryAfter(f"Telegram asked to wait {e.retry_after}s (429)", e.retry_after) from None
        except TelegramForbiddenError as e:
            reason = "user blocked the bot" if "blocked" in e.message else f"Telegram refused: {e.message}"
            raise PermanentFailure(reason) from None
        except TelegramMigrateToChat as e:
            raise PermanentFailure(f"the group became a supergroup with id {e.migrate_to_chat_id}") from None
        except (TelegramBadRequest, TelegramNotFound, TelegramEntityTooLarge, TelegramUnauthorizedError) as e:
            raise PermanentFailure(f"Telegram refused the message: {e.message}") from None
        except (TelegramNetworkError, TelegramServerError, TelegramConflictError) as e:
            raise TemporaryFailure(f"Telegram unavailable: {e.message}") from None
        except (TelegramAPIError, AiogramError) as e:
            raise TemporaryFailure(f"Telegram error: {e}") from None
        self._sent_parts.pop(message.message_id, None)
        return SendResult(external_id=f"{chat_id}:{done[0]}")

    async def _parts(self, message: OutboundMessage, blobs: BlobStore) -> list[tuple[str, Any]]:
        """The calls one reply needs: text chunks and files, the text as caption when it fits."""
        files: list[tuple[str, Any]] = []
        for att in message.attachments:
            data = await blobs.get(att.sha256)
            if data is None:
                raise PermanentFailure(f"attachment {att.filename} is missing from storage")
            photo = att.content_type in ("image/jpeg", "image/png") and len(data) <= PHOTO_UPLOAD_LIMIT
            files.append(("photo" if photo else "document", BufferedInputFile(data, filename=att.filename or "file")))
        text = message.text
        if files and text and len(text) <= CAPTION_LIMIT:
            kind, file = files[0]
            return [(f"{kind}+caption", (file, text)), *files[1:]]
        chunks = [("text", text[i : i + TEXT_LIMIT]) for i in range(0, len(text), TEXT_LIMIT)]
        parts = chunks + files
        if not parts:
            raise PermanentFailure("empty message: no text and no attachments")
        return parts

    async def _send_part(self, chat_id: int, part: tuple[str, Any], reply_to: int | None) -> int:
        kind, value = part
        caption: str | None = None
        reply = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True) if reply_to else None
        if kind.endswith("+caption"):
            kind = kind.removesuffix("+caption")
            value, caption = value
        if kind == "text":
            sent = await self.bot.send_message(chat_id, value, parse_mode=None, reply_parameters=reply)
        elif kind == "photo":
            sent = await self.bot.send_photo(chat_id, value, caption=caption, parse_mode=None, reply_parameters=reply)
        else:
            sent = await self.bot.send_document(
                chat_id, value, caption=caption, parse_mode=None, reply_parameters=reply
            )
        return sent.message_id

    async def close(self) -> None:
        await self.bot.session.close()


def _human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):g} MB"
    if n >= 1024:
        return f"{n / 1024:g} KB"
    return f"{n} bytes"


def _join(text: str, extra: str) -> str:
    return f"{text}\n{extra}" if text else extra


def _has(message: Message, field: str) -> bool:
    return getattr(message, field, None) is not None or field in (message.model_extra or {})


def _reply_to_id(external_id: str, chat_id: int) -> int | None:
    chat, _, msg = external_id.partition(":")
    if chat == str(chat_id) and msg.isdigit():
        return int(msg)
    return None


def _file_refs(message: Message) -> list[_FileRef]:
    refs: list[_FileRef] = []
    if message.photo:
        p = message.photo[-1]  # the largest size
        refs.append(_FileRef("photo", p.file_id, p.file_size, f"photo_{p.file_unique_id}.jpg", "image/jpeg"))
    if message.animation is not None:
        a = message.animation
        refs.append(
            _FileRef("animation", a.file_id, a.file_size, a.file_name or "animation.mp4", a.mime_type or "video/mp4")
        )
    elif message.document is not None:
        d = message.document
        ctype = d.mime_type or "application/octet-stream"
        refs.append(_FileRef("document", d.file_id, d.file_size, d.file_name or "document", ctype))
    if message.audio is not None:
        au = message.audio
        refs.append(
            _FileRef("audio", au.file_id, au.file_size, au.file_name or "audio.mp3", au.mime_type or "audio/mpeg")
        )
    if message.voice is not None:
        vo = message.voice
        refs.append(_FileRef("voice", vo.file_id, vo.file_size, "voice.ogg", vo.mime_type or "audio/ogg"))
    if message.video is not None:
        vi = message.video
        refs.append(
            _FileRef("video", vi.file_id, vi.file_size, vi.file_name or "video.mp4", vi.mime_type or "video/mp4")
        )
    if message.video_note is not None:
        vn = message.video_note
        refs.append(_FileRef("video_note", vn.file_id, vn.file_size, "video_note.mp4", "video/mp4"))
    if message.sticker is not None:
        s = message.sticker
        if s.is_video:
            name, ctype = "sticker.webm", "video/webm"
        elif s.is_animated:
            name, ctype = "sticker.tgs", "application/x-tgsticker"
        else:
            name, ctype = "sticker.webp", "image/webp"
        refs.append(_FileRef("sticker", s.file_id, s.file_size, name, ctype))
    return refs
