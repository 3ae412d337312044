"""A fake Telegram Bot API: a real HTTP server on loopback, shaped after https://core.telegram.org/bots/api.

`{base}/bot{token}/{method}` takes parameters as a query string, urlencoded or
multipart form, or JSON, and answers `{"ok": true, "result": ...}` or
`{"ok": false, "error_code": N, "description": "...", "parameters": {...}}`.
Files are served at `{base}/file/bot{token}/{file_path}`.

Tests push updates with `push_message` / `push_update`, read what the bot sent
from `sent`, and inject failures with `fail_next` and `blocked_chats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024
JSONDict = dict[str, Any]


async def until(predicate: Callable[[], object], *, within: float = 10.0, what: str = "condition") -> None:
    """Wait until `predicate()` is true; fail with `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class SentMessage:
    method: str
    chat_id: int
    message_id: int
    text: str = ""
    caption: str = ""
    filename: str = ""
    data: bytes = b""
    reply_to: int | None = None
    parse_mode: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Failure:
    method: str
    status: int
    description: str
    parameters: JSONDict | None
    times: int


@dataclass
class _File:
    file_id: str
    file_unique_id: str
    file_path: str
    size: int
    data: bytes


class FakeBotAPI:
    def __init__(
        self, token: str = "123456789:AAFakeTokenForOmnihubTests_abcdefgh", username: str = "omnihub_test_bot"
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.username = username
        self.updates: list[JSONDict] = []
        self.sent: list[SentMessage] = []
        self.calls: list[tuple[str, JSONDict]] = []
        self.blocked_chats: set[int] = set()
        self.known_chats: set[int] = set()
        self.webhook_url = ""
        self.webhook_secret = ""
        self.webhook_deliveries: list[tuple[int, int]] = []  # (update_id, HTTP status)
        self._files: dict[str, _File] = {}
        self._failures: list[_Failure] = []
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        self._poll_generation = 0
        self._runner: web.AppRunner | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> FakeBotAPI:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._webhook_task = asyncio.create_task(self._deliver_webhooks())
        return self

    async def stop(self) -> None:
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeBotAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what tests do -----------------------------------------------------------

    def push_update(self, **fields: Any) -> int:
        update_id = next(self._update_ids)
        update = {"update_id": update_id, **fields}
        for value in fields.values():
            chat = value.get("chat") if isinstance(value, dict) else None
            if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                self.known_chats.add(chat["id"])
        self.updates.append(update)
        return update_id

    def message(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        first_name: str = "Ivan",
        last_name: str = "",
        username: str = "",
        chat_type: str = "private",
        **extra: Any,
    ) -> JSONDict:
        """A Message object as Telegram sends it, from user `chat_id` (private chats: chat id = user id)."""
        user: JSONDict = {
            "id": chat_id if chat_type == "private" else extra.pop("user_id", 1),
            "is_bot": False,
            "first_name": first_name,
        }
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        chat: JSONDict = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat.update({k: v for k, v in user.items() if k in ("first_name", "last_name", "username")})
        else:
            chat["title"] = extra.pop("title", "Some group")
        msg: JSONDict = {"message_id": next(self._message_ids), "from": user, "chat": chat, "date": int(time.time())}
        if text is not None:
            msg["text"] = text
        msg.update(extra)
        return msg

    def push_message(self, chat_id: int, text: str | None = None, **kwargs: Any) -> JSONDict:
        msg = self.message(chat_id, text, **kwargs)
        self.push_update(message=msg)
        return msg

    def add_file(self, data: bytes, *, path_hint: str = "documents/file", declared_size: int | None = None) -> JSONDict:
        """Store a file the bot can getFile/download; returns the fields of a File object."""
        unique = hashlib.sha256(data + path_hint.encode()).hexdigest()[:16]
        file_id = f"FILE{len(self._files)}_{unique}"
        size = declared_size if declared_size is not None else len(data)
        self._files[file_id] = _File(file_id, unique, f"{path_hint}_{len(self._files)}", size, data)
        return {"file_id": file_id, "file_unique_id": unique, "file_size": size}

    def fail_next(
        self, method: str, *, status: int, description: str, retry_after: int | None = None, times: int = 1
    ) -> None:
        parameters = {"retry_after": retry_after} if retry_after is not None else None
        self._failures.append(_Failure(method.lower(), status, description, parameters, times))

    def too_many_requests(self, method: str, retry_after: int, times: int = 1) -> None:
        self.fail_next(
            method,
            status=429,
            description=f"Too Many Requests: retry after {retry_after}",
            retry_after=retry_after,
            times=times,
        )

    def pending(self) -> list[JSONDict]:
        return list(self.updates)

    # -- HTTP --------------------------------------------------------------------

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(status: int, description: str, parameters: JSONDict | None = None) -> web.Response:
        body: JSONDict = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    async def _params(self, request: web.Request) -> tuple[JSONDict, dict[str, tuple[str, bytes]]]:
        params: JSONDict = dict(request.query)
        files: dict[str, tuple[str, bytes]] = {}
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.content_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    files[part.name] = (part.filename, await part.read())
                else:
                    params[part.name] = await part.text()
        elif request.can_read_body:
            params.update(await request.post())
        return params, files

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"].lower()
        params, files = await self._params(request)
        self.calls.append((method, params))
        for failure in self._failures:
            if failure.method == method and failure.times > 0:
                failure.times -= 1
                return self._error(failure.status, failure.description, failure.parameters)
        handler = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "sendphoto": self._send_file,
            "senddocument": self._send_file,
            "getfile": self._get_file,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
        }.get(method)
        if handler is None:
            return self._error(404, "Not Found")
        return await handler(method, params, files)

    async def _get_me(self, method: str, params: JSONDict, files: Any) -> web.Response:
        return self._ok(
            {
                "id": self.bot_id,
                "is_bot": True,
                "first_name": "Omnihub Test",
                "username": self.username,
                "can_join_groups": True,
            }
        )

    async def _get_updates(self, method: str, params: JSONDict, files: Any) -> web.Response:
        if self.webhook_url:
            return self._error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]
        self._poll_generation += 1
        generation = self._poll_generation
        deadline = time.monotonic() + timeout
        while not self.updates and generation == self._poll_generation and not self.webhook_url:
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.01)
        if generation != self._poll_generation:
            return self._error(
                409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
            )
        return self._ok(self.updates[:limit])

    def _chat_error(self, chat_id: int) -> web.Response | None:
        if chat_id in self.blocked_chats:
            return self._error(403, "Forbidden: bot was blocked by the user")
        if chat_id not in self.known_chats:
            return self._error(400, "Bad Request: chat not found")
        return None

    @staticmethod
    def _reply_to(params: JSONDict) -> int | None:
        if "reply_parameters" in params:
            value = params["reply_parameters"]
            reply = json.loads(value) if isinstance(value, str) else value
            return int(reply["message_id"])
        if "reply_to_message_id" in params:
            return int(params["reply_to_message_id"])
        return None

    def _sent_message(self, chat_id: int, **fields: Any) -> JSONDict:
        message_id = next(self._message_ids)
        return {
            "message_id": message_id,
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "Omnihub Test", "username": self.username},
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "date": int(time.time()),
            **fields,
        }

    async def _send_message(self, method: str, params: JSONDict, files: Any) -> web.Response:
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, ValueError):
            return self._error(400, "Bad Request: chat_id is empty")
        if error := self._chat_error(chat_id):
            return error
        text = str(params.get("text", ""))
        if not text.strip():
            return self._error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return self._error(400, "Bad Request: message is too long")
        result = self._sent_message(chat_id, text=text)
        self.sent.append(
            SentMessage(
                "sendMessage",
                chat_id,
                result["message_id"],
                text=text,
                reply_to=self._reply_to(params),
                parse_mode=params.get("parse_mode"),
            )
        )
        return self._ok(result)

    async def _send_file(self, method: str, params: JSONDict, files: dict[str, tuple[str, bytes]]) -> web.Response:
        field_name = "photo" if method == "sendphoto" else "document"
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, ValueError):
            return self._error(400, "Bad Request: chat_id is empty")
        if error := self._chat_error(chat_id):
            return error
        ref = str(params.get(field_name, ""))
        if not ref.startswith("attach://") or ref.removeprefix("attach://") not in files:
            return self._error(400, f"Bad Request: there is no {field_name} in the request")
        filename, data = files[ref.removeprefix("attach://")]
        caption = str(params.get("caption", ""))
        if len(caption) > 1024:
            return self._error(400, "Bad Request: message caption is too long")
        stored = self.add_file(data, path_hint=f"{field_name}s/{filename}")
        extra: JSONDict = {"caption": caption} if caption else {}
        if field_name == "photo":
            extra["photo"] = [{**stored, "width": 100, "height": 100}]
        else:
            extra["document"] = {**stored, "file_name": filename}
        result = self._sent_message(chat_id, **extra)
        self.sent.append(
            SentMessage(
                "sendPhoto" if field_name == "photo" else "sendDocument",
                chat_id,
                result["message_id"],
                caption=caption,
                filename=filename,
                data=data,
                reply_to=self._reply_to(params),
                parse_mode=params.get("parse_mode"),
            )
        )
        return self._ok(result)

    async def _get_file(self, method: str, params: JSONDict, files: Any) -> web.Response:
        file = self._files.get(str(params.get("file_id", "")))
        if file is None:
            return self._error(400, "Bad Request: invalid file_id")
        if file.size > TELEGRAM_DOWNLOAD_LIMIT:
            return self._error(400, "Bad Request: file is too big")
        return self._ok(
            {
                "file_id": file.file_id,
                "file_unique_id": file.file_unique_id,
                "file_size": file.size,
                "file_path": file.file_path,
            }
        )

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        path = request.match_info["path"]
        for file in self._files.values():
            if file.file_path == path:
                return web.Response(body=file.data, content_type="application/octet-stream")
        return self._error(404, "Not Found: file not found")

    async def _set_webhook(self, method: str, params: JSONDict, files: Any) -> web.Response:
        url = str(params.get("url", ""))
        if url and not url.startswith(("http://", "https://")):
            return self._error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if str(params.get("drop_pending_updates", "")).lower() == "true":
            self.updates.clear()
        self.webhook_url = url
        self.webhook_secret = str(params.get("secret_token", "")) if url else ""
        return self._ok(True)

    async def _delete_webhook(self, method: str, params: JSONDict, files: Any) -> web.Response:
        if str(params.get("drop_pending_updates", "")).lower() == "true":
            self.updates.clear()
        self.webhook_url = ""
        self.webhook_secret = ""
        return self._ok(True)

    async def _get_webhook_info(self, method: str, params: JSONDict, files: Any) -> web.Response:
        return self._ok(
            {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": len(self.updates)}
        )

    async def _deliver_webhooks(self) -> None:
        """Like Telegram: POST each pending update to the webhook, in order, repeating until a 2xx."""
        async with aiohttp.ClientSession() as session:
            while True:
                if not self.webhook_url or not self.updates:
                    await asyncio.sleep(0.02)
                    continue
                update = self.updates[0]
                headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret} if self.webhook_secret else {}
                try:
                    async with session.post(self.webhook_url, json=update, headers=headers) as resp:
                        status = resp.status
                except aiohttp.ClientError:
                    status = 0
                self.webhook_deliveries.append((update["update_id"], status))
                if 200 <= status < 300 and self.updates and self.updates[0] is update:
                    self.updates.pop(0)
                elif not 200 <= status < 300:
                    await asyncio.sleep(0.2)
