"""A real SMTP server (aiosmtpd) on a free loopback port that records what it receives."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.fakes.dovecot import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    login: str

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self.server.refuse.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else ""
        with self.server.lock:
            self.server.received.append(Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(data), login))
        return "250 Message accepted"


class SmtpServer:
    """`received` lists every accepted mail; `refuse[address] = "550 ..."` refuses a recipient."""

    def __init__(
        self,
        *,
        username: str = "support",
        password: str = "secret",
        tls: str = "",
        cert: tuple[Path, Path] | None = None,
    ) -> None:
        """`tls`: "" (plain), "starttls" (required before AUTH) or "ssl" (implicit TLS); `cert`: (cert.pem, key.pem)."""
        self.tls = tls
        self.cert = cert
        self.username = username
        self.password = password
        self.port = free_port()
        self.host = "127.0.0.1"
        self.received: list[Received] = []
        self.refuse: dict[str, str] = {}
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self) -> None:
        tls: dict[str, Any] = {}
        if self.tls:
            assert self.cert is not None, "TLS needs a certificate"
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.cert)
            tls = {"ssl_context": context} if self.tls == "ssl" else {"tls_context": context, "require_starttls": True}
        self._controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=self.tls == "starttls",
            server_hostname="localhost",
            **tls,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[Received]:
        """Wait (without blocking the event loop) until `count` mails have arrived."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            await asyncio.sleep(0.02)
        raise AssertionError(f"expected {count} mails, the SMTP server got {len(self.received)}")
