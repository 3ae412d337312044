"""The Bot API side of a Telegram channel (aiogram): the bot, raw getUpdates, files in, replies out.

Everything that speaks HTTP to Telegram lives here; aiogram's typed errors are
turned into the outbox's failure kinds by `delivery_failure`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

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
from aiogram.types import BufferedInputFile, ReplyParameters
from aiogram.utils.token import TokenValidationError

from connectors.telegram_update import FileRef
from hub.blobs import BlobTooLarge
from hub.errors import ConfigError, DeliveryError, PermanentFailure, TemporaryFailure
from hub.types import Attachment, BlobStore, ChannelAccount, OutboundMessage

DEFAULT_API_BASE = "https://api.telegram.org"
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files
PHOTO_UPLOAD_LIMIT = 10 * 1024 * 1024
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

# One call of a reply: ("text", str), ("photo" | "document", file) or ("photo+caption" | …, (file, text)).
Part = tuple[str, Any]


class GetRawUpdates(TelegramMethod[list[dict[str, Any]]]):
    """getUpdates answering plain dicts, so each update is validated on its own."""

    __returning__ = list[dict[str, Any]]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


def api_base(account: ChannelAccount) -> str:
    return str(account.settings.get("api_base") or DEFAULT_API_BASE)


def make_bot(account: ChannelAccount) -> Bot:
    token = str(account.secrets.get("token") or "")
    try:
        return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_base(account))))
    except TokenValidationError:
        raise ConfigError(
            "the Telegram token does not look like a bot token (digits:letters, from @BotFather)"
        ) from None


# -- files in ------------------------------------------------------------------------


async def download(bot: Bot, ref: FileRef, blobs: BlobStore, max_file_size: int) -> tuple[Attachment | None, str]:
    """The stored attachment, or None and a note saying why it is missing."""
    too_large = f"{ref.kind} {ref.filename} not downloaded: larger than the {human_size(max_file_size)} limit"
    over_telegram = f"{ref.kind} {ref.filename} not downloaded: Telegram lets bots download at most 20 MB"
    if ref.file_size is not None and ref.file_size > TELEGRAM_DOWNLOAD_LIMIT:
        return None, over_telegram
    if ref.file_size is not None and ref.file_size > max_file_size:
        return None, too_large
    error = ""
    for attempt in range(3):
        try:
            file = await bot.get_file(ref.file_id)
            if file.file_path is None:
                return None, over_telegram
            if (file.file_size or 0) > max_file_size:
                return None, too_large
            data = await _fetch(bot, file.file_path, max_file_size)
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


async def _fetch(bot: Bot, file_path: str, max_file_size: int) -> bytes | None:
    """The file's bytes, or None once it grows past our limit (whatever getFile said)."""
    url = bot.session.api.file_url(bot.token, file_path)
    chunks: list[bytes] = []
    size = 0
    stream = bot.session.stream_content(url, timeout=120, chunk_size=256 * 1024, raise_for_status=True)
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            size += len(chunk)
            if size > max_file_size:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


# -- replies out ---------------------------------------------------------------------


async def reply_parts(message: OutboundMessage, blobs: BlobStore) -> list[Part]:
    """The calls one reply needs: text chunks and files, the text as caption when it fits."""
    files: list[Part] = []
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
    chunks: list[Part] = [("text", text[i : i + TEXT_LIMIT]) for i in range(0, len(text), TEXT_LIMIT)]
    parts = chunks + files
    if not parts:
        raise PermanentFailure("empty message: no text and no attachments")
    return parts


async def send_part(bot: Bot, chat_id: int, part: Part, reply_to: int | None) -> int:
    """Send one part; Telegram's message id. No parse_mode: the text arrives exactly as typed."""
    kind, value = part
    caption: str | None = None
    reply = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True) if reply_to else None
    if kind.endswith("+caption"):
        kind = kind.removesuffix("+caption")
        value, caption = value
    if kind == "text":
        sent = await bot.send_message(chat_id, value, parse_mode=None, reply_parameters=reply)
    elif kind == "photo":
        sent = await bot.send_photo(chat_id, value, caption=caption, parse_mode=None, reply_parameters=reply)
    else:
        sent = await bot.send_document(chat_id, value, caption=caption, parse_mode=None, reply_parameters=reply)
    return sent.message_id


def reply_to_id(external_id: str, chat_id: int) -> int | None:
    """The Telegram message id to reply to, when the replied-to message is in this chat."""
    chat, _, msg = external_id.partition(":")
    if chat == str(chat_id) and msg.isdigit():
        return int(msg)
    return None


def delivery_failure(e: TelegramAPIError | AiogramError) -> DeliveryError:
    """What the outbox should do about a failed send (429 is the caller's: it also pauses the chat)."""
    if isinstance(e, TelegramForbiddenError):
        return PermanentFailure("user blocked the bot" if "blocked" in e.message else f"Telegram refused: {e.message}")
    if isinstance(e, TelegramMigrateToChat):
        return PermanentFailure(f"the group became a supergroup with id {e.migrate_to_chat_id}")
    if isinstance(e, TelegramBadRequest | TelegramNotFound | TelegramEntityTooLarge | TelegramUnauthorizedError):
        return PermanentFailure(f"Telegram refused the message: {e.message}")
    if isinstance(e, TelegramNetworkError | TelegramServerError | TelegramConflictError):
        return TemporaryFailure(f"Telegram unavailable: {e.message}")
    return TemporaryFailure(f"Telegram error: {e}")


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):g} MB"
    if n >= 1024:
        return f"{n / 1024:g} KB"
    return f"{n} bytes"
