"""A local fake of the VK API: a real HTTP server on loopback with VK's wire format.

- `/method/NAME` takes `access_token` and `v` (form or query) and answers
  `{"response": ...}` or `{"error": {"error_code", "error_msg", "request_params"}}`.
- `groups.getLongPollServer` hands out `{base}/lp`, which answers
  `act=a_check&key&ts&wait` with `{"ts", "updates"}` or `{"failed": N}`
  (holding the request up to `wait` seconds when there is nothing new).
- Upload servers for message photos and documents, `/files/NAME` for downloads.
- `messages.send` dedupes on (peer, random_id) as VK does, and echoes a
  `message_reply` event like VK does for messages a community sends.

Tests push events (`user_writes`, `push`), inject failures (`fail_method`,
`fail_poll`, `expire_key`, `deny`) and read `delivered` / `send_calls` / `polls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from typing import Any

from aiohttp import web

JSON = dict[str, Any]
ERROR_TEXT = {
    5: "User authorization failed: invalid access_token (4).",
    6: "Too many requests per second",
    8: "Invalid request: v (version) is required",
    9: "Flood control",
    10: "Internal server error",
    14: "Captcha needed",
    100: "One of the parameters specified was missing or invalid",
    901: "Can't send messages for users without permission",
}


class FakeVk:
    def __init__(self, *, group_id: int = 777, token: str = "vk-test-token", group_name: str = "Test shop") -> None:
        self.group_id = group_id
        self.token = token
        self.group_name = group_name
        self.longpoll_enabled = True
        self.longpoll_events: JSON = {"message_new": 1, "message_reply": 1, "message_edit": 1, "message_allow": 1}
        self.echo_replies = True
        self.users: dict[int, JSON] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.updates: list[JSON] = []
        self.ts_base = 1000
        self.key_number = 1
        self.denied: set[int] = set()
        self.delivered: list[JSON] = []  # messages actually sent (after random_id dedupe)
        self.send_calls: list[JSON] = []  # every messages.send request, duplicates included
        self.calls: list[tuple[str, JSON]] = []
        self.call_times: list[tuple[str, float]] = []  # (method, monotonic time)
        self.lose_send_responses = 0  # deliver, then answer 502: the caller cannot know it was sent
        self.polls: list[JSON] = []
        self.uploaded: dict[str, bytes] = {}  # "photo-777_1" / "doc-777_2" -> bytes
        self._method_errors: dict[str, list[int]] = defaultdict(list)
        self._poll_failures: list[int] = []
        self._by_random: dict[tuple[int, int], JSON] = {}
        self._cmid: dict[int, int] = defaultdict(int)
        self._ids = 0
        self._pending_uploads: dict[str, tuple[bytes, str]] = {}
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/method/{name}", self._method)
        app.router.add_get("/lp", self._longpoll)
        app.router.add_post("/upload/{kind}", self._upload)
        app.router.add_get("/files/{name}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests drive --------------------------------------------------

    @property
    def key(self) -> str:
        return f"key{self.key_number}"

    @property
    def ts(self) -> int:
        return self.ts_base + len(self.updates)

    def add_user(self, user_id: int, first_name: str, last_name: str) -> None:
        self.users[user_id] = {
            "id": user_id,
            "first_name": first_name,
            "last_name": last_name,
            "screen_name": f"id{user_id}",
            "photo_100": f"{self.base_url}/files/avatar{user_id}.jpg",
        }

    def add_file(self, name: str, data: bytes, content_type: str) -> str:
        self.files[name] = (data, content_type)
        return f"{self.base_url}/files/{name}"

    def _next_message(self, peer_id: int, from_id: int, text: str, **extra: Any) -> JSON:
        self._ids += 1
        self._cmid[peer_id] += 1
        return {
            "id": self._ids,
            "date": int(time.time()),
            "peer_id": peer_id,
            "from_id": from_id,
            "text": text,
            "conversation_message_id": self._cmid[peer_id],
            "attachments": [],
            "fwd_messages": [],
            "important": False,
            "is_hidden": False,
            "out": 0 if from_id > 0 else 1,
            "random_id": 0,
            **extra,
        }

    def user_writes(self, user_id: int, text: str = "", *, attachments: list[JSON] | None = None, **extra: Any) -> JSON:
        """A user writes to the community: a message_new event (`extra`: more message fields). Returns the message."""
        message = self._next_message(user_id, user_id, text, attachments=attachments or [], **extra)
        self.push("message_new", {"message": message, "client_info": {"keyboard": True, "lang_id": 0}})
        return message

    def admin_writes(self, user_id: int, text: str, *, admin_id: int = 1) -> JSON:
        """An admin answers from VK's own interface: a message_reply event."""
        message = self._next_message(user_id, -self.group_id, text, admin_author_id=admin_id)
        message["random_id"] = 123456789
        self.push("message_reply", message)
        return message

    def edit(self, message: JSON, text: str) -> JSON:
        edited = {**message, "text": text, "update_time": int(time.time())}
        self.push("message_edit", edited)
        return edited

    def _wake_polls(self) -> None:
        task = asyncio.get_running_loop().create_task(self._notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def push(self, type_: str, obj: JSON) -> None:
        self.updates.append(
            {
                "group_id": self.group_id,
                "type": type_,
                "event_id": f"ev{len(self.updates) + 1:08x}",
                "v": "5.199",
                "object": obj,
            }
        )
        self._wake_polls()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def fail_method(self, method: str, code: int, times: int = 1) -> None:
        self._method_errors[method].extend([code] * times)

    def fail_poll(self, code: int) -> None:
        """The next a_check answers {"failed": code}; 2 and 3 also retire the current key; 5xx is an HTTP error."""
        self._poll_failures.append(code)
        self._wake_polls()

    def expire_key(self) -> None:
        self.key_number += 1
        self._wake_polls()

    def deny(self, user_id: int) -> None:
        """The user has not allowed messages from the community (901)."""
        self.denied.add(user_id)

    def method_calls(self, name: str) -> list[JSON]:
        return [params for method, params in self.calls if method == name]

    # -- HTTP handlers -----------------------------------------------------

    async def _method(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        params: JSON = dict(request.query)
        if request.method == "POST":
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        self.calls.append((name, params))
        self.call_times.append((name, time.monotonic()))
        if params.get("access_token") != self.token:
            return self._error(5, params)
        if not params.get("v"):
            return self._error(8, params)
        if self._method_errors.get(name):
            return self._error(self._method_errors[name].pop(0), params)
        handler = getattr(self, "_m_" + name.replace(".", "_"), None)
        if handler is None:
            return self._error(3, params, "Unknown method passed")
        result = handler(params)
        if isinstance(result, web.Response):
            return result
        if name == "messages.send" and self.lose_send_responses:
            self.lose_send_responses -= 1
            return web.Response(status=502, text="Bad gateway")
        return web.json_response({"response": result})

    def _error(self, code: int, params: JSON, text: str = "") -> web.Response:
        error: JSON = {
            "error_code": code,
            "error_msg": text or ERROR_TEXT.get(code, "Unknown error"),
            "request_params": [{"key": k, "value": v} for k, v in params.items() if k != "access_token"],
        }
        if code == 14:
            error.update(captcha_sid="4242", captcha_img=f"{self.base_url}/files/captcha.jpg")
        return web.json_response({"error": error})

    def _m_groups_getById(self, params: JSON) -> JSON:
        group = {"id": self.group_id, "name": self.group_name, "screen_name": f"club{self.group_id}", "type": "group"}
        return {"groups": [group], "profiles": []}

    def _m_groups_getLongPollSettings(self, params: JSON) -> JSON:
        return {"is_enabled": self.longpoll_enabled, "api_version": "5.199", "events": self.longpoll_events}

    def _m_groups_getLongPollServer(self, params: JSON) -> JSON | web.Response:
        if str(params.get("group_id")) != str(self.group_id):
            return self._error(100, params)
        if not self.longpoll_enabled:
            return self._error(100, params, "Bots Long Poll API is disabled for this community")
        return {"key": self.key, "server": f"{self.base_url}/lp", "ts": str(self.ts)}

    def _m_users_get(self, params: JSON) -> list[JSON]:
        ids = [int(i) for i in str(params.get("user_ids", "")).split(",") if i]
        return [
            self.users.get(i, {"id": i, "first_name": "DELETED", "last_name": "", "deactivated": "deleted"})
            for i in ids
        ]

    def _m_messages_send(self, params: JSON) -> Any:
        self.send_calls.append(params)
        if "random_id" not in params:
            return self._error(
                100, params, "One of the parameters specified was missing or invalid: random_id is required"
            )
        random_id = int(params["random_id"])
        many = "peer_ids" in params
        peer = int(str(params.get("peer_ids") or params.get("peer_id")).split(",")[0])
        if peer in self.denied:
            if not many:
                return self._error(901, params)
            return [{"peer_id": peer, "error": {"code": 901, "description": ERROR_TEXT[901]}}]
        previous = self._by_random.get((peer, random_id)) if random_id else None
        if previous is None:
            attachments = [a for a in str(params.get("attachment", "")).split(",") if a]
            message = self._next_message(peer, -self.group_id, str(params.get("message", "")), random_id=random_id)
            message["attachment_ids"] = attachments
            self.delivered.append(message)
            if random_id:
                self._by_random[(peer, random_id)] = message
            if self.echo_replies:
                self.push("message_reply", {k: v for k, v in message.items() if k != "attachment_ids"})
            previous = message
        if many:
            return [
                {
                    "peer_id": peer,
                    "message_id": previous["id"],
                    "conversation_message_id": previous["conversation_message_id"],
                }
            ]
        return previous["id"]

    def _m_photos_getMessagesUploadServer(self, params: JSON) -> JSON:
        return {"upload_url": f"{self.base_url}/upload/photo", "album_id": -3, "group_id": self.group_id}

    def _m_photos_saveMessagesPhoto(self, params: JSON) -> list[JSON] | web.Response:
        token = json.loads(str(params.get("photo", "[]")))[0]["upload"]
        if params.get("hash") != f"h{token}" or token not in self._pending_uploads:
            return self._error(100, params, "photo hash is invalid")
        self._ids += 1
        self.uploaded[f"photo-{self.group_id}_{self._ids}"] = self._pending_uploads.pop(token)[0]
        return [{"id": self._ids, "owner_id": -self.group_id, "access_key": f"ak{self._ids}", "sizes": []}]

    def _m_docs_getMessagesUploadServer(self, params: JSON) -> JSON:
        return {"upload_url": f"{self.base_url}/upload/{params.get('type') or 'doc'}"}

    def _m_docs_save(self, params: JSON) -> JSON | web.Response:
        token = str(params.get("file", ""))
        if token not in self._pending_uploads:
            return self._error(100, params, "file is invalid")
        data, kind = self._pending_uploads.pop(token)
        self._ids += 1
        self.uploaded[f"doc-{self.group_id}_{self._ids}"] = data
        doc = {"id": self._ids, "owner_id": -self.group_id, "title": params.get("title", ""), "size": len(data)}
        return {
            "type": "audio_message" if kind == "audio_message" else "doc",
            kind if kind == "audio_message" else "doc": doc,
        }

    async def _upload(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        form = await request.post()
        field = form.get("photo" if kind == "photo" else "file")
        if not isinstance(field, web.FileField):
            return web.json_response({"error": "no file"})
        token = f"u{len(self._pending_uploads) + len(self.uploaded) + 1}"
        self._pending_uploads[token] = (field.file.read(), kind)
        if kind == "photo":
            return web.json_response({"server": 1, "photo": json.dumps([{"upload": token}]), "hash": f"h{token}"})
        return web.json_response({"file": token})

    async def _file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    async def _longpoll(self, request: web.Request) -> web.Response:
        query = request.query
        self.polls.append(dict(query))
        if query.get("act") != "a_check":
            return web.json_response({"failed": 2})
        try:
            ts = int(query.get("ts", ""))
        except ValueError:
            return web.json_response({"failed": 1, "ts": str(self.ts)})
        deadline = asyncio.get_running_loop().time() + min(float(query.get("wait", "25")), 90.0)
        # A held request answers as soon as anything changes: an event, an injected failure, a key expiry.
        while True:
            if self._poll_failures:
                code = self._poll_failures.pop(0)
                if code >= 500:
                    return web.Response(status=code, text="Bad gateway")
                if code == 1:
                    return web.json_response({"failed": 1, "ts": str(self.ts)})
                self.key_number += 1
                return web.json_response({"failed": code})
            if query.get("key") != self.key:
                return web.json_response({"failed": 2})
            if ts > self.ts or ts < self.ts_base:
                return web.json_response({"failed": 1, "ts": str(self.ts)})
            remaining = deadline - asyncio.get_running_loop().time()
            if ts < self.ts or remaining <= 0:
                return web.json_response({"ts": str(self.ts), "updates": self.updates[ts - self.ts_base :]})
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
