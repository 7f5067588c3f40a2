"""Text normalisation shared by the index and the queries.

Both sides must agree exactly, so there is one function: fold case and accents, drop
apostrophes (``Amazon's`` and ``amazons`` are the same word to a reader), and split on
everything that is not a letter or a digit. A word longer than :data:`MAX_WORD_LENGTH` is cut to
that length on both sides, so it still matches itself while the index's cost per word stays
bounded. Every pattern here runs in time linear in its input, whatever the input: one seed file
may hold a megabyte without a space in it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from itertools import islice

# Apostrophes join the letters around them instead of splitting the word.
_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`´]")
# The longest word in 2,285 real articles has 34 letters (a random token); natural words stay far
# below. A longer "word" is an inline base64 or hex blob: its first 40 characters identify it
# well enough, and the index's per-word tables (typo deletions) would grow with its square.
MAX_WORD_LENGTH = 40
# The rest of an over-long word is consumed without capturing it (possessively: no backtracking).
_WORD = re.compile(rf"([^\W_]{{1,{MAX_WORD_LENGTH}}})[^\W_]*+")
# Hyphenated or dotted compounds ("e-mail", "co-op", "4.0"): also indexed joined up, so a
# query that dropped the punctuation ("email") still finds them. The look-behind makes a match
# start only where a word starts: without it, a run of 900,000 letters was re-scanned from each
# of its positions (quadratic); possessive runs never backtrack, and cannot need to, since the
# letter and punctuation classes are disjoint.
_COMPOUND = re.compile(r"(?<![^\W_])[^\W_]++(?:[^\w\s]++[^\W_]++)++")
_LETTERS = re.compile(r"[^\W_]+")  # a compound is runs of these, joined by punctuation
# Up to this many characters a text is split in one findall call; a longer one is read only as
# far as the word limit asks (a megabyte excerpt costs what its first words cost).
_SHORT_TEXT = 4096


@lru_cache(maxsize=1)
def _drop_combining() -> dict[int, None]:
    # A translate table is C-speed; the Basic Multilingual Plane holds every accent we meet.
    return {cp: None for cp in range(0x10000) if unicodedata.combining(chr(cp))}


def fold(text: str) -> str:
    """Lower-case, strip accents and apostrophes."""
    text = text.casefold()
    if text.isascii():
        # The common case, several times faster than the regex: ASCII has two apostrophes.
        return text.replace("'", "").replace("`", "")
    text = unicodedata.normalize("NFKD", text).translate(_drop_combining())
    return _APOSTROPHES.sub("", text)


def words(text: str) -> list[str]:
    """The searchable words of ``text``, in order, each cut to :data:`MAX_WORD_LENGTH`."""
    return _WORD.findall(fold(text))


def folded_words(folded: str, limit: int | None = None) -> list[str]:
    """:func:`words` of a text that is already folded; only the first ``limit`` if given.

    With a limit the text is read only as far as needed: a megabyte of words costs no more than
    ``limit`` of them.
    """
    if limit is None or len(folded) <= _SHORT_TEXT:
        found = _WORD.findall(folded)  # C speed: most texts are short
        return found if limit is None else found[:limit]
    return [m.group(1) for m in islice(_WORD.finditer(folded), limit)]


def compounds(folded: str, limit: int | None = None) -> list[str]:
    """Punctuation-joined compounds ("e-mail", "4.0") of a *folded* text, written as one word.

    Cut to :data:`MAX_WORD_LENGTH` like any word; only the first ``limit`` if given.
    """
    found: Iterator[re.Match[str]] = _COMPOUND.finditer(folded)
    if limit is not None:
        found = islice(found, limit)
    return [_joined(m.group()) for m in found]


def _joined(compound: str) -> str:
    # Only the first MAX_WORD_LENGTH letters are kept, so stop reading there: a compound may be
    # a megabyte of "a-b-c-...", and substituting all its joiners would build as many pieces.
    letters: list[str] = []
    length = 0
    for run in _LETTERS.finditer(compound):
        letters.append(run.group())
        length += len(letters[-1])
        if length >= MAX_WORD_LENGTH:
            break
    return "".join(letters)[:MAX_WORD_LENGTH]


@lru_cache(maxsize=4096)
def query_words(query: str) -> tuple[str, ...]:
    """Words of a query, cached because autocomplete asks the same prefixes again and again."""
    return tuple(words(query))
