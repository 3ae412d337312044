"""Which class speaks which channel kind. Adding a channel: one import, one `register` line."""

from __future__ import annotations

from typing import Any, Protocol

from connectors.email import EmailConnector
from connectors.telegram import TelegramConnector
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
register(WidgetConnector)
