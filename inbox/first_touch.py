"""Where a person first came from, as the connectors tell it in `InboundMessage.raw`.

Connectors put the source under these keys: Telegram the /start deep-link
payload (`start_payload`), the widget the page the visitor wrote from (`page`),
VK the `ref` and `ref_source` of a community link (a message's fields, which
connectors/vk.py lifts to the top of `raw`). Ingest stores the first message's
on the new client's card, with the channel:
{channel_id, channel, at, start_payload | page | ref, ref_source}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.types import JSON

SOURCE_KEYS = ("start_payload", "page", "ref", "ref_source")


def sources(raw: Mapping[str, Any]) -> JSON:
    return {k: str(raw[k])[:500] for k in SOURCE_KEYS if raw.get(k)}
