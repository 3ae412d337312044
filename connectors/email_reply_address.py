"""Our reply address: `support+c42-1a2b3c@company` names conversation 42.

Sent as Reply-To on every outgoing mail, so a customer whose mail client drops
In-Reply-To and References (some webmail, some phones, a forward-and-reply)
still lands in the same conversation. The token is not a secret: ingest accepts
it only for a conversation of the sender's own client on this channel, so a
made-up token can at most pick another conversation of the same person. The
check digits catch mangled addresses (a client that lower-cases or truncates).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_TOKEN_RE = re.compile(r"^c(\d{1,18})-([0-9a-f]{6})$")


def _check(channel_id: int, conversation_id: int) -> str:
    return hashlib.sha256(f"omnihub-reply:{channel_id}:{conversation_id}".encode()).hexdigest()[:6]


def reply_address(address: str, channel_id: int, conversation_id: int) -> str:
    """The channel address with the conversation's token after a plus: `local+c42-1a2b3c@domain`."""
    local, at, domain = address.partition("@")
    if not at:
        return address
    return f"{local}+c{conversation_id}-{_check(channel_id, conversation_id)}@{domain}"


def conversation_from(recipients: Iterable[str], address: str, channel_id: int) -> int | None:
    """The conversation named by the first recipient that is our address with a valid token."""
    local, _, domain = address.lower().partition("@")
    for recipient in recipients:
        r_local, _, r_domain = recipient.lower().partition("@")
        base, plus, token = r_local.partition("+")
        if not plus or base != local or r_domain != domain:
            continue
        m = _TOKEN_RE.match(token)
        if m and m.group(2) == _check(channel_id, int(m.group(1))):
            return int(m.group(1))
    return None
