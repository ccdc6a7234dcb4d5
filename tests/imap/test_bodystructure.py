"""BODYSTRUCTURE and numbered sections of a nested MIME message, and their robustness."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.imap.bodystructure import body_structure, parse_mime, section_bytes
from tests.support.profiles import examples

INNER = (
    b"From: labo@chu.fr\r\nSubject: resultats\r\nContent-Type: text/plain\r\n\r\nglycemie ok\r\n"
)
MESSAGE = (
    b"From: a@b.fr\r\nSubject: dossier\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
    b"preamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour,\r\nvoici.\r\n"
    b"--XX\r\nContent-Type: application/zip; name=IHE_XDM.zip\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="IHE_XDM.zip"\r\n\r\nUEsDBAo=\r\n'
    b"--XX\r\nContent-Type: message/rfc822\r\n\r\n" + INNER + b"--XX--\r\nepilogue\r\n"
)


def test_bodystructure_of_a_nested_message() -> None:
    out = body_structure(parse_mime(MESSAGE))
    assert out.startswith(
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 16 2 NIL NIL '
        b'NIL NIL)("APPLICATION" "ZIP" ("NAME" "IHE_XDM.zip") NIL NIL '
        b'"BASE64" 8 NIL ("ATTACHMENT" ("FILENAME" "IHE_XDM.zip")) NIL NIL)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" %d (NIL "resultats" ' % (len(INNER) - 2)
    )
    assert out.endswith(b' "MIXED" ("BOUNDARY" "XX") NIL NIL NIL)')
    inner = b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 11 1 NIL NIL NIL NIL)'
    assert inner in out
    plain = body_structure(parse_mime(MESSAGE), extensible=False)
    assert b"BOUNDARY" not in plain and plain.endswith(b' "MIXED")')


def test_numbered_sections() -> None:
    # RFC 2046 §5.1.1: the CRLF before a delimiter is the delimiter's, not the part's.
    assert section_bytes(MESSAGE, (1,), "") == b"Bonjour,\r\nvoici."
    assert section_bytes(MESSAGE, (2,), "MIME").startswith(b"Content-Type: application/zip")
    assert section_bytes(MESSAGE, (2,), "") == b"UEsDBAo="
    assert section_bytes(MESSAGE, (3,), "") == INNER[:-2]
    assert section_bytes(MESSAGE, (3,), "HEADER").startswith(b"From: labo@chu.fr\r\n")
    assert section_bytes(MESSAGE, (3,), "TEXT") == b"glycemie ok"
    assert section_bytes(MESSAGE, (3, 1), "") == b"glycemie ok"
    assert (
        section_bytes(MESSAGE, (3,), "HEADER.FIELDS", ("SUBJECT",)) == b"Subject: resultats\r\n\r\n"
    )
    assert section_bytes(MESSAGE, (9,), "") == b"" and section_bytes(MESSAGE, (1, 4), "") == b""
    assert section_bytes(MESSAGE, (), "TEXT").startswith(b"preamble")
    single = b"Subject: x\r\n\r\nhello\r\n"
    assert section_bytes(single, (1,), "") == b"hello\r\n"


def test_mime_bomb_is_bounded() -> None:
    nested = b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    for n in range(200):  # far deeper than anyone writes
        nested = (
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
            + nested
            + b"\r\n--b%d--\r\n" % n
        )
    out = body_structure(parse_mime(nested))
    assert out.count(b"MIXED") <= 17


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"Content-Type: multipart/mixed; boundary=a\r\n",
                b"\r\n",
                b"--a\r\n",
                b"--a--\r\n",
                b"Content-Type: message/rfc822\r\n",
                b"x\r\n",
                b"\xff\x00",
                b'Content-Type: text/plain; name="\xe9"\r\n',
            ]
        ),
        max_size=20,
    )
)
def test_any_message_gives_a_framed_structure(pieces: list[bytes]) -> None:
    out = body_structure(parse_mime(b"".join(pieces)))
    assert out.startswith(b"(") and out.endswith(b")")
    rest = out
    while (i := rest.find(b"\r\n")) >= 0:  # every CRLF announces a literal
        assert rest[:i].endswith(b"}")
        size = int(rest[rest.rfind(b"{", 0, i) + 1 : i - 1])
        rest = rest[i + 2 + size :]
