"""Telegram bots through the Bot API (aiogram): long polling or webhook, replies out.

Exactly once: we run our own getUpdates loop and hand every update to the sink
with the next offset as its cursor, so the offset commits in the same
transaction as the message (aiogram's `start_polling` keeps it in memory only).
Updates are fetched as plain JSON and validated one by one, so one update that
does not parse is kept raw instead of failing its whole batch.

What a message means: connectors/telegram_update.py; the Bot API calls (files,
replies, error kinds): connectors/telegram_api.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar

from aiogram.exceptions import (
    AiogramError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import Update
from pydantic import ValidationError

from connectors.ratelimit import KeyedRateLimiter, RateLimited, TokenBucket, acquire_all
from connectors.telegram_api import (
    TELEGRAM_DOWNLOAD_LIMIT,
    GetRawUpdates,
    api_base,
    delivery_failure,
    download,
    make_bot,
    reply_parts,
    reply_to_id,
    send_part,
)
from connectors.telegram_update import member_event, to_inbound, update_kinds
from connectors.telegram_webhook import webhook_path, webhook_secret
from hub.errors import ChannelCheckError, ConfigError, PermanentFailure, RetryAfter
from hub.types import (
    BlobStore,
    ChannelAccount,
    Cursor,
    InboundMessage,
    InboundSink,
    OutboundMessage,
    SendResult,
)

__all__ = ["OFFSET_KEY", "TelegramConnector", "webhook_path", "webhook_secret"]

log = logging.getLogger(__name__)

OFFSET_KEY = "update_offset"
# Telegram: about 1 message/s per chat (short bursts are fine), about 30/s per bot.
PER_CHAT_RATE, PER_CHAT_BURST = 1.0, 3.0
PER_BOT_RATE, PER_BOT_BURST = 30.0, 30.0
# Longer than this in our own limiter: give the message back to the outbox.
MAX_LOCAL_WAIT = 5.0


class TelegramConnector:
    kind: ClassVar[str] = "telegram"

    def __init__(self, account: ChannelAccount) -> None:
        self.account = account
        self.bot = make_bot(account)
        settings = account.settings
        self.api_base = api_base(account)
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
                    GetRawUpdates(offset=offset, timeout=self.poll_timeout, allowed_updates=[]),
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
                inbound = await to_inbound(
                    message,
                    payload,
                    channel_id=self.account.id,
                    edited=update.message is None,
                    cursor=cursor,
                    download=lambda ref: download(self.bot, ref, sink.blobs, self.max_file_size),
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
            event = member_event(member)
            if event:
                await sink.record_event(
                    external_id=str(member.chat.id), type=event, data={"date": member.date.isoformat()}
                )
            await self._skip(sink, cursor)
            return
        await sink.record_raw(
            kind="telegram.update",
            reason=f"unhandled update type {update_kinds(payload)}",
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

    # -- outbound --------------------------------------------------------------

    async def send(self, message: OutboundMessage, blobs: BlobStore) -> SendResult:
        try:
            chat_id = int(message.recipient)
        except ValueError:
            raise PermanentFailure(f"{message.recipient!r} is not a Telegram chat id") from None
        parts = await reply_parts(message, blobs)
        done = self._sent_parts.setdefault(message.message_id, {})
        self._sent_parts.move_to_end(message.message_id)
        while len(self._sent_parts) > 1000:
            self._sent_parts.popitem(last=False)
        reply_to = reply_to_id(message.reply_to_external_id, chat_id)
        try:
            for index, part in enumerate(parts):
                if index in done:
                    continue
                await acquire_all([self._chat_limiter.bucket(chat_id), self._bot_limiter], max_wait=MAX_LOCAL_WAIT)
                done[index] = await send_part(self.bot, chat_id, part, reply_to if index == 0 else None)
        except RateLimited as e:
            raise RetryAfter("Telegram rate limit (held back by omnihub)", e.delay) from None
        except TelegramRetryAfter as e:
            self._chat_limiter.bucket(chat_id).pause(e.retry_after)
            raise RetryAfter(f"Telegram asked to wait {e.retry_after}s (429)", e.retry_after) from None
        except (TelegramAPIError, AiogramError) as e:
            raise delivery_failure(e) from None
        self._sent_parts.pop(message.message_id, None)
        return SendResult(external_id=f"{chat_id}:{done[0]}")

    async def close(self) -> None:
        await self.bot.session.close()
