"""Text normalisation shared by the index and the queries.

Both sides must agree exactly, so there is one function: fold case and accents, drop
apostrophes (``Amazon's`` and ``amazons`` are the same word to a reader), and split on
everything that is not a letter or a digit.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Apostrophes join the letters around them instead of splitting the word.
_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`´]")
_WORD = re.compile(r"[^\W_]+")
# Hyphenated or dotted compounds ("e-mail", "co-op", "4.0"): also indexed joined up, so a
# query that dropped the punctuation ("email") still finds them.
_COMPOUND = re.compile(r"[^\W_]+(?:[^\w\s]+[^\W_]+)+")
_JOINERS = re.compile(r"[^\w\s]+")


@lru_cache(maxsize=1)
def _drop_combining() -> dict[int, None]:
    # A translate table is C-speed; the Basic Multilingual Plane holds every accent we meet.
    return {cp: None for cp in range(0x10000) if unicodedata.combining(chr(cp))}


def fold(text: str) -> str:
    """Lower-case, strip accents and apostrophes."""
    text = text.casefold()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).translate(_drop_combining())
    return _APOSTROPHES.sub("", text)


def words(text: str) -> list[str]:
    """The searchable words of ``text``, in order."""
    return _WORD.findall(fold(text))


def folded_words(folded: str) -> list[str]:
    """:func:`words` of a text that is already folded."""
    return _WORD.findall(folded)


def compounds(folded: str) -> list[str]:
    """Punctuation-joined compounds ("e-mail", "4.0") of a *folded* text, written as one word."""
    return [_JOINERS.sub("", match) for match in _COMPOUND.findall(folded)]


@lru_cache(maxsize=4096)
def query_words(query: str) -> tuple[str, ...]:
    """Words of a query, cached because autocomplete asks the same prefixes again and again."""
    return tuple(words(query))
