"""Which class speaks which channel kind. Adding a channel: one `register` line at the end.

A connector whose library is heavy to import is registered with a loader
instead (`register_lazy`): its module is imported the first time a channel of
that kind is checked, polled or sent through. aiogram alone costs a hub about
140 MiB and seconds of start (bench/README.md, "hub start and idle memory"),
so a hub without a Telegram channel never imports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from connectors.email import EmailConnector
from connectors.vk import VkConnector
from connectors.widget import WidgetConnector
from hub.types import ChannelAccount, Connector


class ConnectorClass(Protocol):
    kind: str

    def __call__(self, account: ChannelAccount) -> Connector: ...

    async def check(self, account: ChannelAccount) -> dict[str, Any]:
        """Verify credentials on `channel add`; return settings to store (e.g. the bot's username).

        Raises `hub.errors.ChannelCheckError` with a one-line reason.
        """
        ...


class Registry(Mapping[str, ConnectorClass]):
    """Kind → connector class; a lazily registered class is imported on first lookup."""

    def __init__(self) -> None:
        self._classes: dict[str, ConnectorClass] = {}
        self._loaders: dict[str, Callable[[], ConnectorClass]] = {}
        self._kinds: dict[str, None] = {}  # in registration order

    def add(self, cls: ConnectorClass) -> None:
        self._classes[cls.kind] = cls
        self._kinds[cls.kind] = None

    def add_lazy(self, kind: str, load: Callable[[], ConnectorClass]) -> None:
        self._loaders[kind] = load
        self._kinds[kind] = None

    def __getitem__(self, kind: str) -> ConnectorClass:
        cls = self._classes.get(kind)
        if cls is None:
            cls = self._loaders[kind]()
            if cls.kind != kind:
                raise LookupError(f"the loader for channel kind {kind!r} gave a {cls.kind!r} connector")
            self._classes[kind] = cls
        return cls

    def __contains__(self, kind: object) -> bool:  # without importing anything
        return kind in self._kinds

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    async def load(self, kind: str) -> None:
        """Import a lazily registered connector in a worker thread: the event loop keeps serving meanwhile."""
        if kind in self._loaders and kind not in self._classes:
            await asyncio.to_thread(self.__getitem__, kind)


CONNECTORS = Registry()


def register(cls: ConnectorClass) -> ConnectorClass:
    CONNECTORS.add(cls)
    return cls


def register_lazy(kind: str, load: Callable[[], ConnectorClass]) -> None:
    CONNECTORS.add_lazy(kind, load)


def connector_for(account: ChannelAccount) -> Connector:
    try:
        cls = CONNECTORS[account.kind]
    except KeyError:
        raise LookupError(f"no connector for channel kind {account.kind!r}") from None
    return cls(account)


def _telegram() -> ConnectorClass:
    from connectors.telegram import TelegramConnector

    return TelegramConnector


register(EmailConnector)
register_lazy("telegram", _telegram)
register(VkConnector)
register(WidgetConnector)
