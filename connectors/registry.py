"""Which class speaks which channel kind. Adding a channel: one import, one entry."""

from __future__ import annotations

from typing import Any, Protocol

from connectors.email import EmailConnector
from connectors.telegram import TelegramConnector
from connectors.vk import VkConnector
from hub.types import ChannelAccount, Connector


class ConnectorClass(Protocol):
    kind: str

    def __call__(self, account: ChannelAccount) -> Connector: ...

    async def check(self, account: ChannelAccount) -> dict[str, Any]:
        """Verify credentials on `channel add`; return settings to store (e.g. the bot's username).

        Raises `hub.errors.ChannelCheckError` with a one-line reason.
        """
        ...


CONNECTORS: dict[str, ConnectorClass] = {}


def register(cls: ConnectorClass) -> ConnectorClass:
    CONNECTORS[cls.kind] = cls
    return cls


def connector_for(account: ChannelAccount) -> Connector:
    try:
        cls = CONNECTORS[account.kind]
    except KeyError:
        raise LookupError(f"no connector for channel kind {account.kind!r}") from None
    return cls(account)


register(EmailConnector)
register(TelegramConnector)
register(VkConnector)


# Importing a connector module registers it (kept last: those modules import `register`).
from connectors import widget  # noqa: E402,F401
