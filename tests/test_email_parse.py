"""The corpus under tests/mail/: each real-world shape of mail and what we read from it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.email_parse import ParsedMail, UnparseableMail, decode_bytes, fold_quotes, parse_mail

MAIL = Path(__file__).parent / "mail"


def parse(name: str) -> ParsedMail:
    return parse_mail((MAIL / name).read_bytes())


def test_gmail_reply() -> None:
    p = parse("gmail_reply.eml")
    assert p.message_id == "CAJ4x+Ygmail123@mail.gmail.com"
    assert p.from_address == "ivan.petrov@gmail.com"
    assert p.from_name == "Иван Петров"
    assert p.subject == "Re: Order #1042 has not arrived"
    assert p.thread_refs == ("omnihub.41.abcdef@example.com", "first.1@mail.gmail.com")
    assert p.date == dt.datetime(2026, 11, 30, 9, 5, 11, tzinfo=dt.UTC)
    assert p.display_text == "Thanks, the parcel arrived today.\n\nIvan"
    assert "> Hello Ivan, your order is on its way." in p.text  # the original is kept
    assert "gmail_quote" not in p.html and "<blockquote>" in p.html  # classes stripped, quote kept
    assert p.flags == ()


def test_outlook_reply() -> None:
    p = parse("outlook_reply.eml")
    assert p.from_name == "Müller, Anna"
    assert p.from_address == "anna.mueller@corp.example.org"
    assert p.subject == "AW: Invoice question"
    assert p.thread_refs == ("omnihub.7.0a0b0c@example.com",)
    assert p.display_text == "Hallo,\n\ndie Rechnung ist jetzt bezahlt. Grüße\n\nAnna Müller"
    assert "Please pay invoice 77." in p.text
    assert "<style>" not in p.html and "margin:0" not in p.html
    assert 'id="divRplyFwdMsg"' not in p.html


def test_thunderbird_bottom_posted_reply_with_signature_and_attachment() -> None:
    p = parse("thunderbird_reply.eml")
    assert p.display_text == "Firefox 140 on Debian.\n\nYes, twice."
    assert "Klaus Schmidt\nExample GmbH" in p.text
    [pdf] = p.parts
    assert (pdf.filename, pdf.content_type, pdf.kind, pdf.inline) == (
        "screenshot report.pdf",
        "application/pdf",
        "document",
        False,
    )
    assert pdf.data.startswith(b"%PDF-1.4")


def test_koi8r() -> None:
    p = parse("koi8r.eml")
    assert p.from_name == "Ольга Смирнова"
    assert p.subject == "Проблема с оплатой"
    assert p.text == "Здравствуйте!\n\nНе могу оплатить заказ, карта не проходит.\n\nС уважением,\nОльга"


def test_windows_1251_quoted_printable() -> None:
    p = parse("windows1251.eml")
    assert (p.from_name, p.subject) == ("Сергей", "Счёт")
    assert p.text == "Добрый день.\nПришлите, пожалуйста, счёт на оплату."


def test_mislabelled_charset_and_raw_8bit_subject() -> None:
    # Declared us-ascii; the body is really KOI8-R and the Subject raw windows-1251.
    p = parse("mislabelled_charset.eml")
    assert p.subject == "Заказ не пришёл"
    assert p.text == "Мой заказ до сих пор не пришёл, помогите разобраться."
    assert p.flags == ()


def test_unknown_charset_label_falls_back_to_utf8() -> None:
    p = parse("unknown_charset.eml")
    assert p.subject == "Café menu"
    assert p.text == "The café is closed — why?"


def test_html_only_is_sanitized_with_a_text_version() -> None:
    p = parse("html_only.eml")
    assert p.subject == "HTML only 😀"
    for bad in ("<script", "alert", "onload", "onerror", "javascript:", "<style", "color:red", "steal"):
        assert bad not in p.html
    assert "<b>account</b>" in p.html
    assert p.text == "Hello support,\n\nmy account & my link are broken.\n\none\n\ntwo"


def test_inline_image_and_attachment() -> None:
    p = parse("inline_image.eml")
    assert p.text == "See the screenshot: [image: error.png]"
    assert 'src="cid:img001@example.org"' in p.html
    image, csv = p.parts
    assert (image.filename, image.content_type, image.kind, image.content_id, image.inline) == (
        "error.png",
        "image/png",
        "photo",
        "img001@example.org",
        True,
    )
    assert image.data.startswith(b"\x89PNG")
    assert (csv.filename, csv.content_type, csv.inline, csv.data) == ("отчёт.csv", "text/csv", False, b"a,b\r\n1,2\r\n")


def test_broken_mime_is_read_and_flagged() -> None:
    p = parse("broken_mime.eml")
    assert p.text == "Please help, my mailer is broken."
    assert p.flags == ("malformed",)


def test_malformed_message_id_never_raises() -> None:
    p = parse("malformed_message_id.eml")  # Python 3.11's header parser raises IndexError here
    assert p.message_id == ""
    assert p.thread_refs == ("omnihub.5.aa@example.com",)
    assert p.date is None
    assert p.flags == ("malformed",)
    assert p.text == "Hello, when will you deliver?"


def test_bounce_points_at_the_mail_that_bounced() -> None:
    p = parse("bounce.eml")
    assert "bounce" in p.flags and "auto_reply" in p.flags
    assert p.from_address == "mailer-daemon@mx.example.com"
    assert p.thread_refs == ("omnihub.99.deadbeef@example.com",)
    assert "550 5.1.1 User unknown" in p.text


def test_auto_reply() -> None:
    p = parse("auto_reply.eml")
    assert p.flags == ("auto_reply",)
    assert p.thread_refs == ("omnihub.8.bb@example.com",)


def test_mail_without_a_sender_is_unparseable() -> None:
    with pytest.raises(UnparseableMail):
        parse("no_sender.eml")


def test_every_corpus_mail_has_an_expectation() -> None:
    tested = {line.split('"')[1] for line in Path(__file__).read_text().splitlines() if '.eml")' in line}
    assert {p.name for p in MAIL.glob("*.eml")} <= tested


def test_latin1_text_is_not_mistaken_for_cyrillic() -> None:
    assert decode_bytes("Grüße aus Köln, café".encode("latin-1"), "iso-8859-1") == "Grüße aus Köln, café"
    assert decode_bytes("Привет, как дела?".encode("cp1251"), "") == "Привет, как дела?"
    assert decode_bytes("Привет, как дела?".encode("koi8-r"), "iso-8859-1") == "Привет, как дела?"


def test_fold_keeps_interleaved_answers() -> None:
    text = "Иван пишет:\n> вопрос один\nответ один\n> вопрос два\nответ два\n--\nподпись"
    assert fold_quotes(text) == "ответ один\nответ два"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_anything_else(raw: bytes) -> None:
    try:
        parse_mail(b"From: a@example.org\r\nMessage-ID: " + raw[:60] + b"\r\n" + raw)
    except UnparseableMail:
        pass


def test_recipients_come_from_every_delivery_header_even_malformed_ones() -> None:
    raw = (
        b"From: Ivan <ivan@example.org>\r\n"
        b"To: \"Support, Acme\" <Support+C42-ABCDEF@Example.com>, broken <<<\r\n"
        b"Cc: olga@example.net\r\n"
        b"Delivered-To: support+c42-abcdef@example.com\r\n"
        b"X-Original-To: support@example.com\r\n"
        b"Subject: hi\r\n\r\nbody\r\n"
    )
    assert parse_mail(raw).recipients == (
        "support+c42-abcdef@example.com",
        "olga@example.net",
        "support@example.com",
    )
