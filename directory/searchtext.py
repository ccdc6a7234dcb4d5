"""Folding of directory text for search: lower case, accents off, punctuation as spaces.

A nurse types "helene d'hondt" or "HÉLÈNE DHONDT"; the directory holds
"Mme Hélène D'HONDT". Both the stored ``search_text`` and the query words go
through :func:`fold`, so one plain substring test on one column (SQL ``LIKE``,
an LDAP substring filter) finds it on every backend. Built on one
``str.translate`` table because an import folds a million rows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["fold", "search_text", "words"]


def _table() -> dict[int, str]:
    table: dict[int, str] = {}
    for cp in range(0x80, 0x250):  # Latin-1 Supplement, Latin Extended-A and -B
        ch = chr(cp)
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if base.isascii() and base.isalnum():
            table[cp] = base.lower()
    table.update(
        {
            ord("æ"): "ae",
            ord("Æ"): "ae",
            ord("œ"): "oe",
            ord("Œ"): "oe",
            ord("ß"): "ss",
            ord("ø"): "o",
            ord("Ø"): "o",
        }
    )
    for cp in range(0x80):
        ch = chr(cp)
        if not ch.isalnum():
            table[cp] = " "
    for apostrophe in "'\u2019":  # D'HONDT, d\u2019Hondt and dhondt: one name
        table[ord(apostrophe)] = ""
    return table


_FOLD = _table()
# Most rows are plain ASCII once lower-cased: bytes.translate is ten times quicker.
_ASCII = (
    bytes((ord(_FOLD.get(b, chr(b))) if len(_FOLD.get(b, chr(b))) == 1 else 32) for b in range(128))
    + b" " * 128
)
_DROP = b"'"
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def fold(text: str) -> str:
    """Lower-case, accent-free, words separated by single spaces."""
    low = text.lower()
    if not low.isascii():
        low = _NON_ASCII.sub(_fold_char, low)
    return " ".join(low.encode().translate(_ASCII, _DROP).decode().split())


def _fold_char(match: re.Match[str]) -> str:
    return _FOLD.get(ord(match.group()), " ")


def words(text: str) -> list[str]:
    """The folded words of a query, each to be found somewhere in ``search_text``."""
    return fold(text).split()


def search_text(parts: Iterable[str]) -> str:
    """The stored search column: the folded fields, with spaces at both ends.

    The surrounding spaces let a query ask for a word start (``% dup%``) later
    without a schema change.
    """
    return f" {fold(' '.join(parts))} "
