"""Typed failures. Callers handle kinds of failure, not status codes."""

from __future__ import annotations


class OmnihubError(Exception):
    """A failure with a message meant for a person (CLI line, API error)."""


class ConfigError(OmnihubError):
    """Wrong configuration: bad option, missing setting, unusable database URL."""


class ChannelCheckError(OmnihubError):
    """A channel's credentials or settings were refused when checked on add."""


class NotFound(OmnihubError):
    pass


class Conflict(OmnihubError):
    pass


class DeliveryError(Exception):
    """Base of what `Connector.send` raises."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryAfter(DeliveryError):
    """The channel asked us to wait (Telegram retry_after, VK error 6/9)."""

    def __init__(self, reason: str, seconds: float) -> None:
        super().__init__(reason)
        self.seconds = seconds


class TemporaryFailure(DeliveryError):
    """Network error, 5xx: retry with exponential backoff."""


class PermanentFailure(DeliveryError):
    """Retrying cannot help (user blocked the bot, 901, bad address): mark failed."""
