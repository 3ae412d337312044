"""A loopback channel for tests: exercises ingest, outbox and supervisor paths with no network.

Outbound: `send` records the message, or fails the way the test scripted
(`LoopbackConnector.outcomes[channel_id]`: a list of exceptions to raise, in
order). Inbound: while running, the connector marks itself as the holder of
its channel in the channel's cursor table (key "holder", value pid:n), so a
test can see which process polls it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

from connectors.registry import register
from hub.types import BlobStore, ChannelAccount, Cursor, InboundSink, OutboundMessage, SendResult


class LoopbackConnector:
    kind: ClassVar[str] = "loopback"
    sent: ClassVar[dict[int, list[OutboundMessage]]] = {}
    outcomes: ClassVar[dict[int, list[Exception]]] = {}
    attempts: ClassVar[dict[int, list[float]]] = {}  # channel id -> loop times of each send attempt
    run_failures: ClassVar[dict[int, list[Exception]]] = {}  # channel id -> exceptions the inbound loop raises

    def __init__(self, account: ChannelAccount) -> None:
        self.account = account

    @classmethod
    async def check(cls, account: ChannelAccount) -> dict[str, Any]:
        return {}

    async def run(self, sink: InboundSink) -> None:
        failures = self.run_failures.get(self.account.id)
        if failures:
            raise failures.pop(0)
        n = 0
        while True:
            n += 1
            await sink.set_cursor(Cursor("holder", f"{os.getpid()}:{n}"))
            await asyncio.sleep(0.2)

    async def send(self, message: OutboundMessage, blobs: BlobStore) -> SendResult:
        cid = self.account.id
        self.attempts.setdefault(cid, []).append(asyncio.get_running_loop().time())
        queued = self.outcomes.get(cid)
        if queued:
            raise queued.pop(0)
        self.sent.setdefault(cid, []).append(message)
        return SendResult(external_id=f"loop-{message.message_id}")

    async def close(self) -> None:
        return None


register(LoopbackConnector)
