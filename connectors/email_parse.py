"""Raw e-mail bytes → `ParsedMail`. Pure: no I/O, and it never raises on bad input.

Real mail is messy: 8-bit headers, charsets that lie, HTML-only bodies, broken
MIME, Message-IDs that crash the stdlib's header parser (Python 3.11 raises
IndexError on `<<x@y>>`). Whatever cannot be read is flagged "malformed" and
the best readable version is returned; the raw bytes stay with the caller.
"""

from __future__ import annotations

import codecs
import datetime as dt
import email
import email.policy
import email.utils
import html as html_lib
import re
from dataclasses import dataclass
from email.header import decode_header
from email.message import Message
from html.parser import HTMLParser
from typing import Any, ClassVar

import nh3


@dataclass(frozen=True)
class MailPart:
    data: bytes
    filename: str
    content_type: str
    kind: str  # "photo", "video", "audio", "document"
    content_id: str = ""  # set for inline parts referenced from HTML as cid:
    inline: bool = False


@dataclass(frozen=True)
class ParsedMail:
    message_id: str  # without angle brackets; "" when missing or malformed
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_address: str  # lower-cased; "" when there is none
    from_name: str
    subject: str
    date: dt.datetime | None
    text: str  # the whole text, quotes and signature included
    display_text: str  # quoted text and signature folded away
    html: str  # sanitized with nh3; "" for text-only mail
    parts: tuple[MailPart, ...]
    flags: tuple[str, ...]  # "auto_reply", "bounce", "malformed"
    original_recipient: str = ""  # a bounce: the address our mail could not reach
    # Every address the mail was sent to (To, Cc, Delivered-To, X-Original-To), lower-cased.
    recipients: tuple[str, ...] = ()

    @property
    def thread_refs(self) -> tuple[str, ...]:
        """In-Reply-To first, then References newest first, no duplicates."""
        refs = [*self.in_reply_to, *reversed(self.references)]
        return tuple(dict.fromkeys(r for r in refs if r != self.message_id))


MSG_ID_RE = re.compile(r"<([^<>\s]+)>")
_STRICT_ID_RE = re.compile(r"^\s*<([^<>\s]+@[^<>\s]+)>\s*$")
_BARE_ID_RE = re.compile(r"^\s*([^<>\s@]+@[^<>\s@]+)\s*$")
_FAILED_ACTION_RE = re.compile(r"^Action:\s*failed", re.IGNORECASE | re.MULTILINE)
_AUTO_SUBJECT_RE = re.compile(
    r"^(automatic reply|auto(matic)? ?(response|reply)|auto:|out of (the )?office|"
    r"автоматический ответ|автоответ|abwesenheitsnotiz)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT_RE = re.compile(
    r"(undeliver|delivery status notification \(failure\)|mail delivery (failed|subsystem)|"
    r"returned mail|failure notice|не доставлено|недоставленное)",
    re.IGNORECASE,
)
_ADDRESS_RE = re.compile(r"[^\s<>,;:\"'()\[\]]+@[^\s<>,;:\"'()\[\]]+")
_RECIPIENT_HEADERS = ("to", "cc", "delivered-to", "x-original-to", "envelope-to")
_BOUNCE_SENDER_RE = re.compile(r"^(mailer-daemon|postmaster)@", re.IGNORECASE)
_CYRILLIC_RE = re.compile(r"[а-яё]")
_CYRILLIC_UPPER_RE = re.compile(r"[А-ЯЁ]")
_SURROGATE_RE = re.compile(r"[\udc80-\udcff]")
_WEAK_CHARSETS = {"us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "windows-1252", "cp1252", ""}


class UnparseableMail(ValueError):
    """The bytes are not a mail we can turn into a message (no sender address)."""


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse one RFC 5322 message. Raises only `UnparseableMail` (no usable sender)."""
    msg = _recover_boundary(email.message_from_bytes(raw, policy=email.policy.default))
    problems: list[str] = []
    headers = _RawHeaders(msg)

    message_id = _message_id(headers.get("Message-ID"))
    if not message_id:
        problems.append("message-id")
    in_reply_to = tuple(MSG_ID_RE.findall(headers.get("In-Reply-To")))
    references = tuple(MSG_ID_RE.findall(headers.get("References")))

    from_name, from_address = _address(msg, headers, "From", problems)
    if not from_address:
        from_name, from_address = _address(msg, headers, "Sender", problems)
    if not from_address:
        raise UnparseableMail("no sender address (From and Sender are missing or unreadable)")
    subject = _header_text(msg, headers, "Subject", problems)
    date = _date(headers.get("Date"))

    body = _Body()
    _walk(msg, body, problems)
    for defect in msg.defects:
        if type(defect).__name__ in _FATAL_DEFECTS:
            problems.append(type(defect).__name__)

    text = "\n\n".join(_clean(t).strip() for t in body.texts if t.strip())
    raw_html = "\n".join(body.htmls)
    if not text and raw_html:
        text = html_to_text(raw_html)
    safe_html = sanitize_html(raw_html) if raw_html else ""

    flags: list[str] = []
    if _is_auto_reply(headers, subject, msg):
        flags.append("auto_reply")
    if _is_bounce(headers, subject, from_address, msg, body):
        flags.append("bounce")
        references = (*references, *(r for r in body.original_ids if r not in references))
    if problems:
        flags.append("malformed")
    return ParsedMail(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        from_address=from_address,
        from_name=from_name,
        subject=subject,
        date=date,
        text=text,
        display_text=fold_quotes(text),
        html=safe_html,
        parts=tuple(body.parts),
        flags=tuple(flags),
        original_recipient=_original_recipient(body) if "bounce" in flags else "",
        recipients=_recipients(headers),
    )


def _recipients(headers: _RawHeaders) -> tuple[str, ...]:
    """Addresses as written in the raw headers: a plain scan, so a malformed header cannot raise."""
    found = (
        a.lower().rstrip(".")
        for name, value in headers.items
        if name in _RECIPIENT_HEADERS
        for a in _ADDRESS_RE.findall(value)
    )
    return tuple(dict.fromkeys(found))


def _original_recipient(body: _Body) -> str:
    m = re.search(
        r"^(?:Original|Final)-Recipient:\s*rfc822\s*;\s*<?([^\s<>]+@[^\s<>]+)>?", body.report_text, re.I | re.M
    )
    if not m:
        m = re.search(r"^To:\s*(?:.*<)?([^\s<>,]+@[^\s<>,]+)", body.returned_headers, re.I | re.M)
    return m.group(1).lower() if m else ""


_FATAL_DEFECTS = {
    "StartBoundaryNotFoundDefect",
    "NoBoundaryInMultipartDefect",
    "MissingHeaderBodySeparatorDefect",
}


def _recover_boundary(msg: Message) -> Message:
    """A multipart whose declared boundary never occurs: re-read it with the boundary its body uses."""
    if not any(type(d).__name__ == "StartBoundaryNotFoundDefect" for d in msg.defects):
        return msg
    body = msg.get_payload()
    found = re.search(r"^--([^\s]{1,70})\s*$", body if isinstance(body, str) else "", re.MULTILINE)
    if not found:
        return msg
    try:
        msg.set_boundary(found.group(1))
        fixed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    except Exception:
        return msg
    fixed.defects.extend(msg.defects)  # still malformed, just readable
    return fixed


class _RawHeaders:
    """Header values exactly as received: reading them never runs the stdlib's header parser."""

    def __init__(self, msg: Message) -> None:
        self.items = [(k.lower(), str(v)) for k, v in msg.raw_items()]

    def get(self, name: str) -> str:
        for k, v in self.items:
            if k == name.lower():
                return v
        return ""


def _message_id(value: str) -> str:
    m = _STRICT_ID_RE.match(value) or _BARE_ID_RE.match(value)
    return m.group(1) if m else ""


def _header_text(msg: Message, headers: _RawHeaders, name: str, problems: list[str]) -> str:
    raw = headers.get(name)
    if not raw:
        return ""
    if _SURROGATE_RE.search(raw):  # unencoded 8-bit header: guess its charset like a body
        return _clean(" ".join(decode_bytes(raw.encode("ascii", "surrogateescape"), "").split()))
    try:
        return _clean(" ".join(str(msg[name]).split()))
    except Exception:  # the stdlib's header parser has crashed on real mail (IndexError, ...)
        problems.append(name.lower())
    try:
        chunks = [decode_bytes(c, cs or "") if isinstance(c, bytes) else c for c, cs in decode_header(raw)]
        return _clean(" ".join("".join(chunks).split()))
    except Exception:
        return _clean(" ".join(raw.split()))


def _address(msg: Message, headers: _RawHeaders, name: str, problems: list[str]) -> tuple[str, str]:
    if not headers.get(name):
        return "", ""
    text = _header_text(msg, headers, name, problems)
    try:
        header: Any = msg[name]
        addresses = header.addresses
        if addresses and addresses[0].addr_spec and "@" in addresses[0].addr_spec:
            first = addresses[0]
            return _clean(first.display_name), first.addr_spec.lower()
    except Exception:
        problems.append(name.lower())
    display, addr = email.utils.parseaddr(text)
    if "@" not in addr:
        return "", ""
    return _clean(display), addr.lower()


def _date(value: str) -> dt.datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except Exception:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class _Body:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.htmls: list[str] = []
        self.parts: list[MailPart] = []
        self.original_ids: list[str] = []  # Message-IDs quoted in a delivery report
        self.report_types: list[str] = []
        self.report_text: str = ""
        self.returned_headers: str = ""


def _walk(part: Message, body: _Body, problems: list[str]) -> None:
    ctype = part.get_content_type()
    if part.is_multipart():
        if ctype == "multipart/report":
            body.report_types.append(str(part.get_param("report-type", "") or "").lower())
        for sub in part.get_payload():
            if isinstance(sub, Message):
                _walk(sub, body, problems)
        return
    disposition = (part.get_content_disposition() or "").lower()
    filename = _filename(part)
    payload = _payload(part)
    if ctype in ("message/delivery-status", "message/disposition-notification"):
        body.report_text += payload.decode("utf-8", "replace")
    if ctype in ("message/rfc822", "text/rfc822-headers", "message/delivery-status"):
        ids = re.findall(r"^Message-ID:\s*(<[^>\r\n]+>)", payload.decode("ascii", "replace"), re.I | re.M)
        body.original_ids.extend(MSG_ID_RE.findall(" ".join(ids[:1])))
        if ctype != "message/delivery-status" and not body.returned_headers:
            body.returned_headers = payload.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    if part.get_content_maintype() == "multipart":  # broken MIME: a multipart with no parts
        body.texts.append(decode_bytes(payload, part.get_content_charset() or ""))
        return
    is_attachment = disposition == "attachment" or (filename and ctype not in ("text/plain", "text/html"))
    if not is_attachment and ctype == "text/plain":
        body.texts.append(decode_bytes(payload, part.get_content_charset() or ""))
    elif not is_attachment and ctype == "text/html":
        body.htmls.append(decode_bytes(payload, part.get_content_charset() or ""))
    else:
        content_id = MSG_ID_RE.findall(str(part.get("Content-ID", "")) or "")
        body.parts.append(
            MailPart(
                data=payload,
                filename=filename or _default_name(ctype),
                content_type=ctype,
                kind=_kind(ctype),
                content_id=content_id[0] if content_id else "",
                inline=disposition != "attachment" and bool(content_id),
            )
        )


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    inner = part.get_payload()
    if isinstance(inner, list):  # message/rfc822: serialise the embedded mail
        return b"".join(m.as_bytes() for m in inner if isinstance(m, Message))
    return str(inner).encode("utf-8", "surrogateescape")


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:
        name = ""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return _clean(name)[:200]


def _default_name(ctype: str) -> str:
    ext = {"message/rfc822": "eml", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif"}.get(ctype, "bin")
    if ctype.startswith("text/") or ctype.startswith("message/"):
        ext = "eml" if ctype == "message/rfc822" else "txt"
    return f"{ctype.replace('/', '-')}.{ext}"


def _kind(ctype: str) -> str:
    major = ctype.split("/", 1)[0]
    return {"image": "photo", "video": "video", "audio": "audio"}.get(major, "document")


def decode_bytes(data: bytes, declared: str) -> str:
    """Decode text whose charset label may be missing, unknown or wrong. Never raises."""
    declared = (declared or "").strip().lower()
    candidates: list[str] = []
    known = _codec(declared)
    if known and declared not in _WEAK_CHARSETS:
        candidates.append(known)
    candidates.append("utf-8")
    for codec in candidates:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    guess = _guess_cyrillic(data)
    if guess is not None:
        return guess
    fallback = known if known and known != "ascii" else "cp1252"
    return data.decode(fallback, "replace")


def _codec(label: str) -> str:
    label = {"win-1251": "cp1251", "x-cp1251": "cp1251", "koi8r": "koi8-r", "unknown-8bit": ""}.get(label, label)
    if not label:
        return ""
    try:
        return codecs.lookup(label).name
    except LookupError:
        return ""


def _guess_cyrillic(data: bytes) -> str | None:
    """Russian mail in windows-1251 or KOI8-R, mislabelled: pick the decoding that reads as words.

    KOI8-R bytes read as windows-1251 come out mostly upper case and the other
    way round, so the decoding with more lower-case Cyrillic letters wins.
    """
    high = sum(1 for b in data if b >= 0xC0)
    letters = sum(1 for b in data if b >= 0xC0 or (0x41 <= b <= 0x7A))
    if not letters or high / letters < 0.5:
        return None
    best, best_score = None, -1
    for codec in ("cp1251", "koi8-r"):
        text = data.decode(codec, "replace")
        score = len(_CYRILLIC_RE.findall(text)) - len(_CYRILLIC_UPPER_RE.findall(text))
        if score > best_score:
            best, best_score = text, score
    return best


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; surrogates cannot be encoded to UTF-8.
    return _SURROGATE_RE.sub("\ufffd", text.replace("\x00", "")).replace("\r\n", "\n").replace("\r", "\n")


def sanitize_html(raw: str) -> str:
    cleaned = nh3.clean(
        raw,
        url_schemes={"http", "https", "mailto", "cid", "tel"},
        clean_content_tags={"script", "style", "title", "head"},
    )
    return _clean(cleaned).strip()


class _TextExtractor(HTMLParser):
    _BLOCK: ClassVar[set[str]] = {
        "p",
        "div",
        "br",
        "tr",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "hr",
        "pre",
    }
    _SKIP: ClassVar[set[str]] = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.quote = 0
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag == "blockquote":
            self.quote += 1
            self.out.append("\n")
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "blockquote":
            self.quote = max(0, self.quote - 1)
            self.out.append("\n")
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        text = re.sub(r"\s+", " ", data)
        if self.quote:
            text = text.replace("\n", "\n" + "> " * self.quote)
            if not self.out or self.out[-1].endswith("\n"):
                text = "> " * self.quote + text.lstrip()
        self.out.append(text)


def html_to_text(raw: str) -> str:
    """A plain-text version of HTML mail for previews, search and quote folding."""
    parser = _TextExtractor()
    try:
        parser.feed(raw)
        parser.close()
        text = "".join(parser.out)
    except Exception:
        text = html_lib.unescape(re.sub(r"<[^>]*>", " ", raw))
    lines = [line.strip() for line in text.replace("\xa0", " ").split("\n")]
    return _clean(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip())


_ATTRIBUTION_RE = re.compile(
    r"^\s*(On\s.+wrote:|Am\s.+schrieb.*:|Le\s.+a\s+écrit\s*:|.+\s(пишет|написал|написала|написал\(а\))\s*:)\s*$",
    re.IGNORECASE,
)
_OUTLOOK_SEP_RE = re.compile(
    r"^\s*(-{3,}\s*(Original Message|Исходное сообщение|Forwarded message|Пересылаемое сообщение)\s*-{3,}|_{20,})\s*$",
    re.IGNORECASE,
)
_OUTLOOK_HEADER_RE = re.compile(r"^\s*\*?(From|От|Von)\*?\s*:", re.IGNORECASE)
_OUTLOOK_FIELD_RE = re.compile(
    r"^\s*\*?(Sent|Date|To|Subject|Отправлено|Дата|Кому|Тема|Gesendet|An|Betreff)\*?\s*:", re.I
)


def fold_quotes(text: str) -> str:
    """The text an agent reads first: quoted replies, attributions and the signature folded away."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _OUTLOOK_SEP_RE.match(line) or _is_outlook_header(lines, i):
            break
        if line in ("-- ", "--"):
            break
        if line.lstrip().startswith(">"):
            i += 1
            continue
        joined = f"{line} {lines[i + 1]}" if i + 1 < len(lines) else line
        if _ATTRIBUTION_RE.match(line) and _quote_follows(lines, i + 1):
            i += 1
            continue
        if _ATTRIBUTION_RE.match(joined) and not line.rstrip().endswith(":") and _quote_follows(lines, i + 2):
            i += 2
            continue
        out.append(line)
        i += 1
    folded = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()
    return folded or text.strip()


def _quote_follows(lines: list[str], start: int) -> bool:
    for line in lines[start : start + 3]:
        if line.strip():
            return line.lstrip().startswith(">")
    return False


def _is_outlook_header(lines: list[str], i: int) -> bool:
    if not _OUTLOOK_HEADER_RE.match(lines[i]):
        return False
    following = [ln for ln in lines[i + 1 : i + 6] if ln.strip()]
    return sum(1 for ln in following if _OUTLOOK_FIELD_RE.match(ln)) >= 2


def _is_auto_reply(headers: _RawHeaders, subject: str, msg: Message) -> bool:
    auto = headers.get("Auto-Submitted").strip().lower()
    if auto and not auto.startswith("no"):
        return True
    if headers.get("X-Autoreply") or headers.get("X-Autorespond"):
        return True
    if headers.get("Precedence").strip().lower() == "auto_reply":
        return True
    if msg.get_content_type() == "multipart/report":
        return True
    return bool(_AUTO_SUBJECT_RE.match(subject))


def _is_bounce(headers: _RawHeaders, subject: str, sender: str, msg: Message, body: _Body) -> bool:
    if "delivery-status" in body.report_types:
        return bool(_FAILED_ACTION_RE.search(body.report_text)) or not body.report_text
    if _BOUNCE_SENDER_RE.match(sender) and _BOUNCE_SUBJECT_RE.search(subject):
        return True
    return headers.get("Return-Path").strip() == "<>" and bool(_BOUNCE_SUBJECT_RE.search(subject))
