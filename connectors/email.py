"""A support mailbox as a channel: IMAP in (aioimaplib), SMTP out (aiosmtplib).

Exactly once: the cursor "{mailbox}" holds "{uidvalidity}:{last uid}" and
commits with each message (UIDs ascending). A message's external id is its
Message-ID, so after a UIDVALIDITY change a re-scan finds the same ids and the
store dedupes them. Mail is fetched with BODY.PEEK[]: we never change the
mailbox (no \\Seen, no moves), so other clients of it see what they saw.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import email.policy
import email.utils
import hashlib
import html
import logging
import re
import ssl
from collections.abc import Awaitable, Mapping
from email.message import EmailMessage
from typing import Any, ClassVar, TypeVar

import aioimaplib
import aiosmtplib

from connectors.email_parse import ParsedMail, UnparseableMail, parse_mail
from connectors.email_reply_address import conversation_from, reply_address
from hub.blobs import BlobTooLarge
from hub.errors import ChannelCheckError, ConfigError, PermanentFailure, TemporaryFailure
from hub.types import (
    Attachment,
    BlobStore,
    ChannelAccount,
    Cursor,
    InboundMessage,
    InboundSink,
    OutboundMessage,
    Sender,
    SendResult,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
SECURITY = ("ssl", "starttls", "plain")
FETCH_BATCH = 25
IDLE_SECONDS = 25 * 60.0  # servers drop an IDLE after 30 minutes (RFC 2177)
RECONNECT_MAX_SECONDS = 60.0
GIVE_UP_AFTER = 6  # failed connects in a row: raise, so the supervisor records the error
REFERENCES_KEEP = 20
BLOB_URL = "/api/v1/blobs/"  # where web/ serves stored attachments
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FETCH_START_RE = re.compile(rb"^\d+ FETCH \(")
_UID_RE = re.compile(rb"UID (\d+)")
_REPLY_PREFIX_RE = re.compile(r"^\s*(re|aw|sv|fw|ответ|отв)\s*(\[\d+\])?\s*:", re.IGNORECASE)


class ConnectionLost(Exception):
    pass


class ImapRefused(Exception):
    """The IMAP server answered, and said no (login, select, STARTTLS)."""


def _tls_context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    ca_file = settings.get("tls_ca_file") or None
    return ssl.create_default_context(cafile=ca_file)


class _Imap:
    """One IMAP connection; every call fails fast with ConnectionLost when the server drops us."""

    def __init__(self, settings: Mapping[str, Any], timeout: float) -> None:
        self.host = str(settings["imap_host"])
        self.security = settings.get("security", "ssl")
        self._lost = asyncio.Event()
        ctx = _tls_context(settings) if self.security == "ssl" else None
        # IMAP4_SSL takes no conn_lost_cb: IMAP4 with an SSL context is the same thing plus the callback.
        self.client = aioimaplib.IMAP4(
            self.host, int(settings["imap_port"]), timeout=timeout, conn_lost_cb=self._on_lost, ssl_context=ctx
        )
        self.settings = settings

    def _on_lost(self, exc: Exception | None) -> None:
        self._lost.set()

    async def call(self, awaitable: Awaitable[T], seconds: float | None = None) -> T:
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({task, lost}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled: take the pending command down with us
            task.cancel()
            raise
        finally:
            lost.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if self._lost.is_set():
            raise ConnectionLost("the IMAP server closed the connection")
        raise TimeoutError("the IMAP server did not answer in time")

    async def open(self, username: str, password: str) -> None:
        await self.call(self.client.wait_hello_from_server())
        if self.security == "starttls":
            await self._starttls()
        response = await self.call(self.client.login(username, password))
        if response.result != "OK":
            raise ImapRefused(f"IMAP server {self.host} refused the login for {username}: {_text(response)}")

    async def _starttls(self) -> None:
        # aioimaplib has no STARTTLS: send the command, then upgrade the transport under the protocol.
        protocol = self.client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapRefused(f"IMAP server {self.host} does not offer STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self.call(protocol.execute(command), seconds=self.client.timeout)
        if response.result != "OK":
            raise ImapRefused(f"IMAP server {self.host} refused STARTTLS: {_text(response)}")
        loop = asyncio.get_running_loop()
        protocol.transport = await loop.start_tls(
            protocol.transport, protocol, _tls_context(self.settings), server_hostname=self.host
        )
        await self.call(protocol.capability(), seconds=self.client.timeout)

    async def select(self, mailbox: str) -> tuple[int, int]:
        """UIDVALIDITY and UIDNEXT of the mailbox."""
        response = await self.call(self.client.select(mailbox))
        if response.result != "OK":
            raise ImapRefused(f"IMAP server {self.host} cannot open mailbox {mailbox!r}: {_text(response)}")
        found = {}
        for line in response.lines:
            for name in (b"UIDVALIDITY", b"UIDNEXT"):
                m = re.search(rb"\[" + name + rb" (\d+)\]", bytes(line))
                if m:
                    found[name] = int(m.group(1))
        if b"UIDVALIDITY" not in found:
            raise ImapRefused(f"IMAP server {self.host} sent no UIDVALIDITY for {mailbox!r}")
        return found[b"UIDVALIDITY"], found.get(b"UIDNEXT", 0)

    async def search_uids(self, *criteria: str) -> list[int]:
        response = await self.call(self.client.uid_search(*criteria, charset=None))
        if response.result != "OK":
            raise ImapRefused(f"IMAP SEARCH failed: {_text(response)}")
        uids: list[int] = []
        for line in response.lines[:-1]:
            uids.extend(int(x) for x in bytes(line).split() if x.isdigit())
        return sorted(set(uids))

    async def fetch(self, uids: list[int]) -> list[tuple[int, bytes]]:
        response = await self.call(self.client.uid("fetch", ",".join(map(str, uids)), "(UID BODY.PEEK[])"))
        if response.result != "OK":
            raise ImapRefused(f"IMAP FETCH failed: {_text(response)}")
        return _parse_fetch(response.lines)

    async def wait_for_news(self, seconds: float) -> None:
        """IDLE until the server reports a change or `seconds` pass."""
        idle = await self.call(self.client.idle_start(timeout=seconds))
        try:
            await self.call(self.client.wait_server_push(timeout=seconds + 5))
        except TimeoutError:
            pass
        finally:
            if not self._lost.is_set():
                self.client.idle_done()
                await self.call(idle)

    @property
    def has_idle(self) -> bool:
        return bool(self.client.has_capability("IDLE"))

    async def close(self) -> None:
        if not self._lost.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.call(self.client.logout()), 2)
        transport = self.client.protocol.transport
        if transport is not None:
            transport.close()


def imap_date(when: dt.datetime) -> str:
    """RFC 3501 date ("7-Nov-2026"), independent of the process locale."""
    return f"{when.day}-{_MONTHS[when.month - 1]}-{when.year}"


def _parse_fetch(lines: list[Any]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    uid: int | None = None
    body: bytes | None = None
    for item in lines:
        if isinstance(item, bytearray):
            body = bytes(item)
            continue
        line = bytes(item)
        if _FETCH_START_RE.match(line):
            if uid is not None and body is not None:
                out.append((uid, body))
            uid, body = None, None
        m = _UID_RE.search(line)
        if m:
            uid = int(m.group(1))
    if uid is not None and body is not None:
        out.append((uid, body))
    return out


def _text(response: Any) -> str:
    return " ".join(bytes(x).decode("utf-8", "replace") for x in response.lines if not isinstance(x, bytearray))[:200]


class EmailConnector:
    kind: ClassVar[str] = "email"

    def __init__(self, account: ChannelAccount) -> None:
        # Never raises: a bad setting is reported by check(), run() and send(), where someone sees it.
        self.account = account
        s = account.settings
        missing = [k for k in ("address", "imap_host", "imap_port", "smtp_host", "smtp_port") if not s.get(k)]
        self.security = str(s.get("security") or "ssl")
        self.problem = ""
        if missing:
            self.problem = f"e-mail channel {account.name!r} is missing settings: {', '.join(missing)}"
        elif self.security not in SECURITY:
            self.problem = f"e-mail security must be one of {', '.join(SECURITY)}, not {self.security!r}"
        self.address = str(s.get("address", ""))
        self.mailbox = str(s.get("mailbox") or "INBOX")
        # Reply-To carries the conversation (address+token@); off for servers without plus addressing.
        self.reply_token = bool(s.get("reply_token", True))
        try:
            self.backfill_days = int(s.get("backfill_days", 30))
            self.poll_seconds = float(s.get("poll_seconds", 60))
            self.idle_seconds = float(s.get("idle_seconds", IDLE_SECONDS))
            self.timeout = float(s.get("timeout", 30))
        except (TypeError, ValueError) as e:
            self.problem = self.problem or f"e-mail channel {account.name!r} has a bad number in its settings: {e}"
            self.backfill_days, self.poll_seconds, self.idle_seconds, self.timeout = 30, 60.0, IDLE_SECONDS, 30.0
        self.username = str(account.secrets.get("username") or self.address)
        self.password = str(account.secrets.get("password", ""))

    @classmethod
    async def check(cls, account: ChannelAccount) -> dict[str, Any]:
        """Log in to IMAP (and open the mailbox) and to SMTP; a one-line reason when either refuses."""
        self = cls(account)
        if self.problem:
            raise ChannelCheckError(self.problem)
        imap = _Imap(account.settings, self.timeout)
        try:
            await imap.open(self.username, self.password)
            await imap.select(self.mailbox)
        except ImapRefused as e:
            raise ChannelCheckError(str(e)) from None
        except (OSError, TimeoutError, ConnectionLost, aioimaplib.AioImapException) as e:
            raise ChannelCheckError(f"cannot reach IMAP server {self._imap_where()}: {_reason(e)}") from None
        finally:
            await imap.close()
        smtp = self._smtp()
        try:
            await smtp.connect()
        except aiosmtplib.SMTPAuthenticationError as e:
            raise ChannelCheckError(
                f"SMTP server {self._smtp_where()} refused the login for {self.username}: {e.code} {e.message}"
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            raise ChannelCheckError(f"cannot reach SMTP server {self._smtp_where()}: {_reason(e)}") from None
        finally:
            with contextlib.suppress(Exception):
                await smtp.quit()
        return {}

    def _imap_where(self) -> str:
        return f"{self.account.settings['imap_host']}:{self.account.settings['imap_port']}"

    def _smtp_where(self) -> str:
        return f"{self.account.settings['smtp_host']}:{self.account.settings['smtp_port']}"

    # -- inbound ---------------------------------------------------------------------------------

    async def run(self, sink: InboundSink) -> None:
        if self.problem:
            raise ConfigError(self.problem)
        failures = 0
        while True:
            imap = _Imap(self.account.settings, self.timeout)
            connected = False
            try:
                await imap.open(self.username, self.password)
                connected = True
                failures = 0
                await self._session(imap, sink)
            except ImapRefused:
                raise  # wrong password, missing mailbox: the supervisor records it and retries slowly
            except (OSError, TimeoutError, ConnectionLost, aioimaplib.AioImapException) as e:
                failures = 0 if connected else failures + 1
                if failures >= GIVE_UP_AFTER:
                    raise ConnectionError(f"IMAP server {self._imap_where()} unreachable: {_reason(e)}") from e
                delay = min(RECONNECT_MAX_SECONDS, 0.5 * 2**failures)
                log.warning(
                    "email channel %s: IMAP connection lost (%s); reconnecting in %.1fs",
                    self.account.id,
                    _reason(e),
                    delay,
                )
                await asyncio.sleep(delay)
            finally:
                await imap.close()

    async def _session(self, imap: _Imap, sink: InboundSink) -> None:
        uidvalidity, uidnext = await imap.select(self.mailbox)
        key = self.mailbox
        stored = await sink.cursor(key)
        last_uid: int | None = None
        if stored:
            validity, _, uid = stored.partition(":")
            if validity == str(uidvalidity) and uid.isdigit():
                last_uid = int(uid)
            else:
                log.warning(
                    "email channel %s: UIDVALIDITY of %s changed (%s → %s); re-scanning, deduped by Message-ID",
                    self.account.id,
                    self.mailbox,
                    validity,
                    uidvalidity,
                )
        if last_uid is None:
            last_uid = await self._backfill(imap, sink, key, uidvalidity, uidnext)
        while True:
            # "UID N:*" answers the highest UID even when it is below N: keep only the new ones.
            uids = [u for u in await imap.search_uids("UID", f"{last_uid + 1}:*") if u > last_uid]
            if uids:
                last_uid = await self._ingest_uids(imap, sink, key, uidvalidity, uids, progress=len(uids) > FETCH_BATCH)
                continue
            if imap.has_idle:
                await imap.wait_for_news(self.idle_seconds)
            else:
                await asyncio.sleep(self.poll_seconds)
                await imap.call(imap.client.noop())

    async def _backfill(self, imap: _Imap, sink: InboundSink, key: str, uidvalidity: int, uidnext: int) -> int:
        since = imap_date(dt.datetime.now(dt.UTC) - dt.timedelta(days=self.backfill_days))
        uids = await imap.search_uids("SINCE", since)
        log.info(
            "email channel %s: backfilling %d mails since %s from %s", self.account.id, len(uids), since, self.mailbox
        )
        if not uids:
            last = uidnext - 1 if uidnext else max(await imap.search_uids("ALL"), default=0)
            await sink.set_cursor(Cursor(key, f"{uidvalidity}:{last}"))
            return last
        last = await self._ingest_uids(imap, sink, key, uidvalidity, uids, progress=True)
        log.info("email channel %s: backfill done (%d mails)", self.account.id, len(uids))
        return last

    async def _ingest_uids(
        self, imap: _Imap, sink: InboundSink, key: str, uidvalidity: int, uids: list[int], *, progress: bool = False
    ) -> int:
        last = uids[0] - 1
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start : start + FETCH_BATCH]
            fetched = dict(await imap.fetch(batch))
            for uid in batch:
                raw = fetched.get(uid)
                if raw is not None:  # None: expunged meanwhile
                    await self._ingest_one(sink, Cursor(key, f"{uidvalidity}:{uid}"), uidvalidity, uid, raw)
                last = uid
            if progress:
                log.info(
                    "email channel %s: fetched %d/%d mails",
                    self.account.id,
                    min(start + FETCH_BATCH, len(uids)),
                    len(uids),
                )
        return last

    async def _ingest_one(self, sink: InboundSink, cursor: Cursor, uidvalidity: int, uid: int, raw: bytes) -> None:
        where = {"mailbox": self.mailbox, "uidvalidity": uidvalidity, "uid": uid, "size": len(raw)}
        try:
            mail = parse_mail(raw)
        except Exception as e:  # the parser guards itself; this is the last line of defence
            reason = str(e) if isinstance(e, UnparseableMail) else f"parser failed: {_reason(e)}"
            log.warning("email channel %s: uid %s kept raw: %s", self.account.id, uid, reason)
            await sink.record_raw(
                kind="email", reason=reason, payload=await self._raw_payload(sink, raw, where), cursor=cursor
            )
            return
        attachments, notes, cids = await self._store_parts(sink, mail, raw)
        sender_address = mail.original_recipient if "bounce" in mail.flags and mail.original_recipient else ""
        sender = (
            Sender(external_id=sender_address, email=sender_address)
            if sender_address
            else Sender(external_id=mail.from_address, display_name=mail.from_name, email=mail.from_address)
        )
        refs = mail.thread_refs
        token_conversation = conversation_from(mail.recipients, self.address, self.account.id)
        automatic = "auto_reply" in mail.flags or "bounce" in mail.flags
        text = mail.display_text + "".join(notes)
        await sink.ingest(
            InboundMessage(
                channel_id=self.account.id,
                external_id=mail.message_id or f"uid:{uidvalidity}:{uid}",
                sender=sender,
                text=text,
                original_text=mail.text + "".join(notes) if mail.display_text != mail.text else "",
                html=_link_inline_images(mail.html, cids),
                subject=mail.subject,
                attachments=tuple(attachments),
                sent_at=_plausible(mail.date),
                thread_refs=refs,
                reply_token_conversation=token_conversation,
                new_thread=not refs and token_conversation is None and not automatic,
                flags=mail.flags,
                cursor=cursor,
                raw={**where, "cids": cids},
            )
        )

    async def _store_parts(
        self, sink: InboundSink, mail: ParsedMail, raw: bytes
    ) -> tuple[list[Attachment], list[str], dict[str, str]]:
        attachments: list[Attachment] = []
        notes: list[str] = []
        cids: dict[str, str] = {}  # Content-ID → sha256, for cid: images in the HTML
        parts = [(p.data, p.filename, p.content_type, p.kind, p.content_id) for p in mail.parts]
        if "malformed" in mail.flags:  # keep the original next to our best reading of it
            parts.append((raw, "original.eml", "message/rfc822", "document", ""))
        for data, filename, content_type, kind, content_id in parts:
            try:
                a = await sink.blobs.put(data, filename=filename, content_type=content_type, kind=kind)
            except BlobTooLarge as e:
                notes.append(f"\n\n[{filename}: not stored, {e}]")
                continue
            attachments.append(a)
            if content_id:
                cids[content_id] = a.sha256
        return attachments, notes, cids

    async def _raw_payload(self, sink: InboundSink, raw: bytes, where: dict[str, Any]) -> dict[str, Any]:
        try:
            blob = await sink.blobs.put(raw, filename="message.eml", content_type="message/rfc822", kind="document")
            return {**where, "blob": blob.sha256}
        except BlobTooLarge:
            head = raw.split(b"\r\n\r\n", 1)[0][:16384]
            return {**where, "headers_base64": base64.b64encode(head).decode()}

    # -- outbound --------------------------------------------------------------------------------

    def _smtp(self) -> aiosmtplib.SMTP:
        s = self.account.settings
        return aiosmtplib.SMTP(
            hostname=str(s["smtp_host"]),
            port=int(s["smtp_port"]),
            username=self.username or None,
            password=self.password or None,
            use_tls=self.security == "ssl",
            start_tls=self.security == "starttls",
            tls_context=_tls_context(s) if self.security != "plain" else None,
            timeout=self.timeout,
        )

    def message_id_for(self, message: OutboundMessage) -> str:
        """Stable per outgoing message: a retry sends the same mail, and the recipient's client dedupes it."""
        domain = self.address.rpartition("@")[2] or "omnihub.invalid"
        digest = hashlib.sha256(f"{self.account.id}:{message.message_id}:{self.address}".encode()).hexdigest()[:16]
        return f"omnihub.{message.message_id}.{digest}@{domain}"

    async def build(self, message: OutboundMessage, blobs: BlobStore) -> EmailMessage:
        mail = EmailMessage(policy=email.policy.SMTP)
        own_id = self.message_id_for(message)
        name = str(self.account.settings.get("display_name") or self.account.name)
        mail["From"] = email.utils.formataddr((name, self.address))
        mail["To"] = message.recipient
        if self.reply_token:
            mail["Reply-To"] = email.utils.formataddr(
                (name, reply_address(self.address, self.account.id, message.conversation_id))
            )
        subject = message.subject.strip()
        if subject:
            mail["Subject"] = subject if _REPLY_PREFIX_RE.match(subject) else f"Re: {subject}"
        mail["Date"] = email.utils.formatdate(localtime=False)
        mail["Message-ID"] = f"<{own_id}>"
        refs = [r for r in message.thread_refs if "@" in r and not r.startswith("uid:") and r != own_id]
        if refs:
            mail["In-Reply-To"] = f"<{refs[-1]}>"
            kept = refs if len(refs) <= REFERENCES_KEEP else [refs[0], *refs[-(REFERENCES_KEEP - 1) :]]
            mail["References"] = " ".join(f"<{r}>" for r in kept)
        mail["Auto-Submitted"] = "no"
        mail.set_content(message.text)
        escaped = html.escape(message.text).replace("\n", "<br>\n")
        mail.add_alternative(f"<html><body><div>{escaped}</div></body></html>", subtype="html")
        for a in message.attachments:
            data = await blobs.get(a.sha256)
            if data is None:
                raise PermanentFailure(f"attachment {a.filename} ({a.sha256[:12]}) is missing from the blob store")
            maintype, _, subtype = (a.content_type or "application/octet-stream").partition("/")
            mail.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=a.filename)
        return mail

    async def send(self, message: OutboundMessage, blobs: BlobStore) -> SendResult:
        if self.problem:
            raise PermanentFailure(self.problem)
        if "@" not in message.recipient:
            raise PermanentFailure(f"{message.recipient!r} is not an e-mail address")
        mail = await self.build(message, blobs)
        smtp = self._smtp()
        try:
            await smtp.connect()
            await smtp.send_message(mail, sender=self.address, recipients=[message.recipient])
        except aiosmtplib.SMTPRecipientsRefused as e:
            raise _refused(e.recipients[0].code, e.recipients[0].message, message.recipient) from None
        except aiosmtplib.SMTPRecipientRefused as e:
            raise _refused(e.code, e.message, message.recipient) from None
        except aiosmtplib.SMTPResponseException as e:
            if 500 <= e.code < 600 and not isinstance(e, aiosmtplib.SMTPAuthenticationError):
                raise PermanentFailure(f"SMTP server refused the mail: {e.code} {e.message}") from None
            raise TemporaryFailure(f"SMTP server {self._smtp_where()}: {e.code} {e.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            raise TemporaryFailure(f"SMTP server {self._smtp_where()}: {_reason(e)}") from None
        finally:
            with contextlib.suppress(Exception):
                await smtp.quit()
        return SendResult(external_id=self.message_id_for(message))

    async def close(self) -> None:
        return None


def _link_inline_images(sanitized: str, cids: Mapping[str, str]) -> str:
    """`<img src="cid:X">` → the stored blob, so inline images show in the agent's window."""
    if not cids:
        return sanitized
    return re.sub(
        r'src="cid:([^"]+)"',
        lambda m: f'src="{BLOB_URL}{cids[m.group(1)]}"' if m.group(1) in cids else m.group(0),
        sanitized,
    )


def _plausible(date: dt.datetime | None) -> dt.datetime | None:
    """The sender's Date, unless their clock is obviously wrong (then: when we received it)."""
    if date is None or date > dt.datetime.now(dt.UTC) + dt.timedelta(hours=1) or date.year < 1990:
        return None
    return date


def _refused(code: int, text: str, recipient: str) -> Exception:
    if 500 <= code < 600:
        return PermanentFailure(f"{recipient} refused: {code} {text}")
    return TemporaryFailure(f"{recipient} deferred: {code} {text}")


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
