"""VK community messages: Bots Long Poll in, `messages.send` out.

vk_api is synchronous (requests), so every call runs in a worker thread. The
long-poll request blocks for up to `wait` + 10 s, so it gets a daemon thread of
its own per request: it never holds a slot of the default executor and never
delays process exit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import mimetypes
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import requests
import vk_api
from jconfig.memory import MemoryConfig  # type: ignore[import-untyped]  # vk_api's own config package
from vk_api.exceptions import ApiError, ApiHttpError

from connectors.ratelimit import TokenBucket
from hub.errors import ChannelCheckError, DeliveryError, OmnihubError, PermanentFailure, RetryAfter, TemporaryFailure
from hub.types import (
    JSON,
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

PUBLIC_API_BASE = "https://api.vk.ru"
API_VERSION = "5.199"
RATE_PER_SECOND = 20.0  # VK's limit for community tokens
SEND_MAX_WAIT = 2.0  # longer than this in our own bucket: hand the message back to the outbox
DEFAULT_WAIT = 25
DEFAULT_MAX_FILE = 20 * 1024 * 1024
NAME_CACHE_SIZE = 10_000
TRANSIENT_API_CODES = frozenset({6, 9, 10})
LIBRARY_METHOD_ROOTS = ("https://api.vk.ru/method/", "https://api.vk.com/method/")

T = TypeVar("T")


class _ApiBaseSession(requests.Session):
    """vk_api hard-codes the public API root; this sends its calls to `api_base` and adds a timeout."""

    def __init__(self, api_base: str, timeout: float = 30.0) -> None:
        super().__init__()
        self._method_root = api_base.rstrip("/") + "/method/"
        self._timeout = timeout

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if isinstance(url, str):
            for root in LIBRARY_METHOD_ROOTS:
                if url.startswith(root):
                    url = self._method_root + url[len(root) :]
                    break
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().request(method, url, *args, **kwargs)


class _FileTooLarge(Exception):
    pass


def _make_api(token: str, api_base: str) -> Any:
    vk = vk_api.VkApi(token=token, api_version=API_VERSION, session=_ApiBaseSession(api_base), config=MemoryConfig)
    vk.RPS_DELAY = 0.0  # our TokenBucket paces calls without holding vk_api's lock while sleeping
    # vk_api sleeps and retries on error 6 and turns 14 into a Captcha needing a handler:
    # the outbox owns backoff, so both must surface as plain ApiError.
    vk.error_handlers.pop(6, None)
    vk.error_handlers.pop(14, None)
    return vk


def _in_daemon_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result, error = fn(), None
        except BaseException as exc:
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop closed while we were polling
            pass

    threading.Thread(target=target, name="vk-longpoll", daemon=True).start()
    return future


def delivery_error(exc: Exception, attempt: int = 1) -> DeliveryError:
    """What a failed VK call means for the outbox."""
    if isinstance(exc, ApiError):
        code = exc.code
        text = str(exc.error.get("error_msg", ""))
        if code == 6:
            return RetryAfter("VK: too many requests per second", 1.0)
        if code == 9:  # VK names no wait: 5 s, doubling with each attempt, at most 5 min
            return RetryAfter("VK flood control: too many messages, backing off", min(5.0 * 2 ** (attempt - 1), 300.0))
        if code == 10:
            return TemporaryFailure(f"VK internal server error: {text}")
        if code == 14:
            return TemporaryFailure("VK asked for a captcha: the community is sending too much")
        return _peer_error(code, text)
    if isinstance(exc, ApiHttpError):
        return TemporaryFailure(f"VK API answered HTTP {exc.response.status_code}")
    if isinstance(exc, requests.RequestException | ValueError):
        return TemporaryFailure(f"VK API unreachable: {exc}")
    return PermanentFailure(f"VK: {exc}")


def _peer_error(code: int, text: str) -> DeliveryError:
    if code == 901:
        return PermanentFailure("the user has not allowed messages from the community")
    if code == 902:
        return PermanentFailure("the user's privacy settings do not allow messages from the community")
    if code == 900:
        return PermanentFailure("the user has blocked the community")
    if code == 5:
        return PermanentFailure("VK refused the community token; re-add the channel with a valid token")
    return PermanentFailure(f"VK error {code}: {text}")


def _largest(images: Sequence[Mapping[str, Any]]) -> str:
    best = max(images, key=lambda i: int(i.get("width", 0)) * int(i.get("height", 0)))
    return str(best["url"])


def _message_object(update: Mapping[str, Any]) -> Mapping[str, Any]:
    obj: Mapping[str, Any] = update["object"]
    # API 5.103+ wraps message_new as {"message": ..., "client_info": ...}; replies and edits are bare.
    inner = obj.get("message")
    return inner if isinstance(inner, Mapping) else obj


class VkConnector:
    kind = "vk"

    def __init__(self, account: ChannelAccount) -> None:
        self.account = account
        try:
            self._group_id = int(account.settings["group_id"])
            token = str(account.secrets["token"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ChannelCheckError(
                f"a VK channel needs a numeric group_id and a token ({exc!r} is missing or wrong)"
            ) from None
        self._api_base = str(account.settings.get("api_base") or PUBLIC_API_BASE).rstrip("/")
        self._wait = int(account.settings.get("longpoll_wait", DEFAULT_WAIT))
        self._max_file = int(account.settings.get("max_attachment_bytes", DEFAULT_MAX_FILE))
        self._vk = _make_api(token, self._api_base)
        self._poll_http = requests.Session()
        self._files = requests.Session()
        self._bucket = TokenBucket(RATE_PER_SECOND, RATE_PER_SECOND)
        self._names: dict[int, tuple[str, JSON]] = {}

    # -- calls -------------------------------------------------------------

    async def _call(self, method: str, **params: Any) -> Any:
        await self._bucket.acquire()
        return await asyncio.to_thread(self._vk.method, method, params)

    @classmethod
    async def check(cls, account: ChannelAccount) -> dict[str, Any]:
        connector = cls(account)
        try:
            return await connector._check()
        finally:
            await connector.close()

    async def _check(self) -> dict[str, Any]:
        gid = self._group_id
        try:
            groups = await self._call("groups.getById", group_id=gid)
            settings = await self._call("groups.getLongPollSettings", group_id=gid)
        except ApiError as exc:
            if exc.code == 5:
                raise ChannelCheckError(
                    "VK refused the token: create a community access key (Manage → API usage → Access tokens) "
                    "with the messages, photos, docs and manage rights"
                ) from None
            raise ChannelCheckError(
                f"VK refused the check ({exc}): is group {gid} the community this token belongs to, "
                "and does the token have the manage right?"
            ) from None
        except (ApiHttpError, requests.RequestException, ValueError) as exc:
            raise ChannelCheckError(f"cannot reach the VK API at {self._api_base}: {exc}") from None
        if not settings.get("is_enabled"):
            raise ChannelCheckError(
                "Bots Long Poll is off: in the community switch on Manage → API usage → Long Poll API → Enabled"
            )
        if not settings.get("events", {}).get("message_new"):
            raise ChannelCheckError(
                "Long Poll does not deliver messages: in Manage → API usage → Long Poll API → Event types, tick "
                "Incoming message (and Outgoing message, Message edited, Message access allowed/denied)"
            )
        found = groups["groups"] if isinstance(groups, Mapping) else groups
        group = found[0] if found else {}
        return {"group_name": str(group.get("name", "")), "screen_name": str(group.get("screen_name", ""))}

    # -- inbound -----------------------------------------------------------

    async def run(self, sink: InboundSink) -> None:
        ts = await sink.cursor("ts")
        key = server = ""
        take_server_ts = ts is None
        backoff = 1.0
        while True:
            try:
                if not key:
                    lp = await self._call("groups.getLongPollServer", group_id=self._group_id)
                    key, server = str(lp["key"]), str(lp["server"])
                    if take_server_ts or ts is None:
                        ts, take_server_ts = str(lp["ts"]), False
                        await sink.set_cursor(Cursor("ts", ts))
                answer = await _in_daemon_thread(functools.partial(self._poll, server, key, ts or ""))
            except (ApiHttpError, requests.RequestException, ValueError) as exc:
                log.warning("vk channel %s: long poll failed, retrying in %.0fs: %s", self.account.name, backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            except ApiError as exc:
                if exc.code not in TRANSIENT_API_CODES:
                    raise
                log.warning("vk channel %s: %s, retrying in %.0fs", self.account.name, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            backoff = 1.0
            failed = answer.get("failed")
            if failed is None:
                new_ts = str(answer["ts"])
                await self._ingest_batch(sink, answer.get("updates") or [], new_ts)
                ts = new_ts
            elif failed == 1:  # history is out of date or partly lost: go on from the ts VK gives
                ts = str(answer["ts"])
                await sink.set_cursor(Cursor("ts", ts))
            elif failed == 2:  # the key expired: new key, same ts
                key = ""
            else:  # 3: information lost, new key and ts
                key, take_server_ts = "", True

    def _poll(self, server: str, key: str, ts: str) -> JSON:
        params = {"act": "a_check", "key": key, "ts": ts, "wait": str(self._wait)}
        response = self._poll_http.get(server, params=params, timeout=self._wait + 10)
        response.raise_for_status()
        answer = response.json()
        if not isinstance(answer, dict):
            raise ValueError(f"long poll answered {answer!r}")
        return answer

    async def _ingest_batch(self, sink: InboundSink, updates: Sequence[JSON], ts: str) -> None:
        # One ts covers the whole batch: only the last message may carry it, or a
        # crash mid-batch would skip the rest. Re-delivered events dedupe on external id.
        cursor = Cursor("ts", ts)
        committed = False
        for index, update in enumerate(updates):
            committed = await self._handle(sink, update, ts, cursor if index == len(updates) - 1 else None)
        if not committed:
            await sink.set_cursor(cursor)

    async def _handle(self, sink: InboundSink, update: JSON, ts: str, cursor: Cursor | None) -> bool:
        """Store one event; True when `cursor` was committed with it."""
        kind = str(update.get("type", "")) if isinstance(update, Mapping) else ""
        try:
            if kind in ("message_allow", "message_deny"):
                obj = update["object"]
                await sink.record_event(external_id=str(obj["user_id"]), type=f"vk.{kind}", data=dict(obj))
                return False
            if kind == "message_new":
                message = await self._inbound(sink, update, ts, cursor, out=False, edit=False)
            elif kind == "message_reply":
                if not _message_object(update).get("admin_author_id"):
                    # Sent through the API, i.e. by our own outbox (which stores it as it sends):
                    # ingesting the echo too could race the outbox and show the reply twice.
                    return False
                message = await self._inbound(sink, update, ts, cursor, out=True, edit=False)
            elif kind == "message_edit":
                message = await self._inbound(sink, update, ts, cursor, out=None, edit=True)
            else:
                payload = update if isinstance(update, Mapping) else {"update": update}
                await sink.record_raw(
                    kind=f"vk.{kind or 'unknown'}", reason="event type not handled", payload=payload, cursor=cursor
                )
                return cursor is not None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("vk channel %s: unreadable %s event: %r", self.account.name, kind, exc)
            payload = update if isinstance(update, Mapping) else {"update": update}
            await sink.record_raw(
                kind=f"vk.{kind or 'unknown'}", reason=f"unreadable event: {exc!r}", payload=payload, cursor=cursor
            )
            return cursor is not None
        await sink.ingest(message)
        return cursor is not None

    async def _inbound(
        self, sink: InboundSink, update: JSON, ts: str, cursor: Cursor | None, *, out: bool | None, edit: bool
    ) -> InboundMessage:
        msg = _message_object(update)
        peer = int(msg["peer_id"])
        from_id = int(msg.get("from_id", peer))
        if out is None:
            out = from_id < 0 or bool(msg.get("out"))
        cmid = msg.get("conversation_message_id")
        external_id = f"{peer}:{cmid}" if cmid else f"id:{msg['id']}"
        # Replies go to the person: the peer of a private dialog, the author in a chat.
        person = peer if out or peer < 2_000_000_000 else from_id
        name, profile = await self._user(person)
        attachments, flags = await self._attachments(sink, msg.get("attachments") or [])
        if edit:  # same external id: ingest updates the stored message and keeps the old text
            flags.append("edited")
        if out:
            flags.append("sent_from_vk")
        reply = msg.get("reply_message")
        refs = (
            (f"{reply['peer_id']}:{reply['conversation_message_id']}",)
            if isinstance(reply, Mapping) and reply.get("conversation_message_id")
            else ()
        )
        return InboundMessage(
            channel_id=self.account.id,
            external_id=external_id,
            sender=Sender(external_id=str(person), display_name=name, username=str(profile.get("screen_name", ""))),
            text=str(msg.get("text", "")),
            attachments=tuple(attachments),
            sent_at=dt.datetime.fromtimestamp(int(msg["date"]), dt.UTC) if msg.get("date") else None,
            thread_refs=refs,
            direction="out" if out else "in",
            flags=tuple(flags),
            cursor=cursor,
            raw={
                "update": update,
                "profile": profile,
                "random_id": msg.get("random_id", 0),
                # Where the user came from (a community link's ref), on top for the client card's first touch.
                **{key: str(msg[key]) for key in ("ref", "ref_source") if msg.get(key)},
            },
        )

    async def _user(self, user_id: int) -> tuple[str, JSON]:
        if user_id <= 0:
            return "", {}
        if user_id not in self._names:
            try:
                found = await self._call("users.get", user_ids=user_id, fields="photo_100,screen_name")
            except (ApiError, ApiHttpError, requests.RequestException, ValueError) as exc:
                log.warning("vk channel %s: users.get %s failed: %s", self.account.name, user_id, exc)
                return "", {}
            profile: JSON = dict(found[0]) if found else {}
            name = " ".join(p for p in (profile.get("first_name"), profile.get("last_name")) if p)
            if len(self._names) >= NAME_CACHE_SIZE:
                self._names.pop(next(iter(self._names)))
            self._names[user_id] = (name, profile)
        return self._names[user_id]

    async def _attachments(self, sink: InboundSink, items: Sequence[JSON]) -> tuple[list[Attachment], list[str]]:
        stored: list[Attachment] = []
        flags: list[str] = []
        for item in items:
            spec = self._file_spec(item)
            if spec is None:
                flags.append("unsupported_attachment")
                continue
            url, filename, content_type, kind = spec
            try:
                data = await asyncio.to_thread(self._download, url)
                stored.append(await sink.blobs.put(data, filename=filename, content_type=content_type, kind=kind))
            except (_FileTooLarge, ValueError) as exc:
                log.warning("vk channel %s: %s not stored: %s", self.account.name, filename, exc)
                flags.append("attachment_rejected")
            except requests.RequestException as exc:
                log.warning("vk channel %s: downloading %s failed: %s", self.account.name, filename, exc)
                flags.append("attachment_failed")
            except OmnihubError as exc:  # the blob store's own size limit
                log.warning("vk channel %s: %s refused by storage: %s", self.account.name, filename, exc)
                flags.append("attachment_rejected")
        return stored, flags

    @staticmethod
    def _file_spec(item: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
        kind = item.get("type")
        body = item.get(str(kind)) or {}
        if kind == "photo":
            return _largest(body["sizes"]), f"photo{body.get('owner_id')}_{body.get('id')}.jpg", "image/jpeg", "photo"
        if kind == "doc":
            title = str(body.get("title") or f"doc{body.get('id')}")
            ext = str(body.get("ext", ""))
            if ext and not title.lower().endswith("." + ext.lower()):
                title = f"{title}.{ext}"
            content_type = mimetypes.guess_type(title)[0] or "application/octet-stream"
            return str(body["url"]), title, content_type, "document"
        if kind == "audio_message":
            if body.get("link_ogg"):
                return str(body["link_ogg"]), f"voice{body.get('id')}.ogg", "audio/ogg", "voice"
            return str(body["link_mp3"]), f"voice{body.get('id')}.mp3", "audio/mpeg", "voice"
        if kind == "sticker":
            images = body.get("images") or body["images_with_background"]
            return _largest(images), f"sticker{body.get('sticker_id')}.png", "image/png", "sticker"
        return None

    def _download(self, url: str) -> bytes:
        with self._files.get(url, stream=True, timeout=60) as response:
            response.raise_for_status()
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > self._max_file:
                    raise _FileTooLarge(f"over {self._max_file} bytes")
                chunks.append(chunk)
            return b"".join(chunks)

    # -- outbound ----------------------------------------------------------

    async def send(self, message: OutboundMessage, blobs: BlobStore) -> SendResult:
        wait = self._bucket.delay()
        if wait > SEND_MAX_WAIT:
            raise RetryAfter("VK allows about 20 requests per second", wait)
        peer = int(message.recipient)
        try:
            attachments = [await self._upload(peer, attachment, blobs) for attachment in message.attachments]
            params: JSON = {
                "peer_ids": peer,
                # VK drops a second message with the same random_id: derive it from our id so retries are safe.
                "random_id": message.message_id & 0x7FFFFFFF,
                "message": message.text,
            }
            if attachments:
                params["attachment"] = ",".join(attachments)
            result = await self._call("messages.send", **params)
        except DeliveryError:
            raise
        except Exception as exc:
            error = delivery_error(exc, message.attempt)
            if isinstance(exc, ApiError) and exc.code == 6:  # the whole community is over its rate
                self._bucket.pause(error.seconds if isinstance(error, RetryAfter) else 1.0)
            raise error from exc
        # With peer_ids VK answers per peer, with the conversation_message_id that
        # message_reply will carry: the same external id, so the echo dedupes.
        item = result[0] if isinstance(result, list) else {"message_id": result}
        if "error" in item:
            raise _peer_error(int(item["error"].get("code", 0)), str(item["error"].get("description", "")))
        cmid = item.get("conversation_message_id")
        return SendResult(external_id=f"{peer}:{cmid}" if cmid else f"id:{item['message_id']}")

    async def _upload(self, peer: int, attachment: Attachment, blobs: BlobStore) -> str:
        data = await blobs.get(attachment.sha256)
        if data is None:
            raise PermanentFailure(f"attachment {attachment.filename} is missing from storage")
        if attachment.content_type in ("image/jpeg", "image/png", "image/gif") and attachment.kind != "document":
            server = await self._call("photos.getMessagesUploadServer", peer_id=peer)
            uploaded = await asyncio.to_thread(self._post_file, server["upload_url"], "photo", attachment, data)
            saved = await self._call(
                "photos.saveMessagesPhoto", server=uploaded["server"], photo=uploaded["photo"], hash=uploaded["hash"]
            )
            photo = saved[0]
            suffix = f"_{photo['access_key']}" if photo.get("access_key") else ""
            return f"photo{photo['owner_id']}_{photo['id']}{suffix}"
        doc_type = "audio_message" if attachment.kind == "voice" else "doc"
        server = await self._call("docs.getMessagesUploadServer", peer_id=peer, type=doc_type)
        uploaded = await asyncio.to_thread(self._post_file, server["upload_url"], "file", attachment, data)
        if "file" not in uploaded:
            raise PermanentFailure(f"VK refused {attachment.filename}: {uploaded.get('error', uploaded)}")
        saved = await self._call("docs.save", file=uploaded["file"], title=attachment.filename)
        doc = saved[saved["type"]]
        return f"doc{doc['owner_id']}_{doc['id']}"

    @staticmethod
    def _post_file(url: str, field: str, attachment: Attachment, data: bytes) -> JSON:
        files = {field: (attachment.filename, data, attachment.content_type)}
        response = requests.post(url, files=files, timeout=120)
        response.raise_for_status()
        answer = response.json()
        if not isinstance(answer, dict):
            raise ValueError(f"upload server answered {answer!r}")
        return answer

    async def close(self) -> None:
        self._poll_http.close()
        self._files.close()
        self._vk.http.close()
