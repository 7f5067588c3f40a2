"""Lookup tables over the vocabulary: typo neighbourhoods and letter trigrams.

Both map strings derived from a term (its one-letter deletions; its trigrams) to term ids.
Stored as Python dicts they would hold one string object per entry, millions at a large
vocabulary; here they are two sorted numpy arrays (64-bit hash, term id), looked up with
``searchsorted``. A hash may collide: every caller checks what it finds (the typo lookup
measures the edit distance, a trigram count only ranks candidates), so a collision costs a
wasted candidate, never a wrong answer.

Terms added after the arrays were built go into a small dict until the next compaction.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence

import numpy as np


class TermTable:
    """A multimap ``derived string -> term ids`` over a growing list of terms."""

    def __init__(self, derive: Callable[[str], Iterable[str]], terms: Sequence[str]) -> None:
        self._derive = derive
        keys = array("q")
        ids = array("i")
        count = len(terms)
        for tid in range(count):
            for key in derive(terms[tid]):
                keys.append(hash(key))
                ids.append(tid)
        order = np.argsort(np.frombuffer(keys, dtype=np.int64), kind="stable")
        self._keys = np.frombuffer(keys, dtype=np.int64)[order]
        self._ids = np.frombuffer(ids, dtype=np.int32)[order]
        self._extra: dict[str, list[int]] = {}
        self.covered = count  # terms [0, covered) are in the table

    def extend(self, terms: Sequence[str], upto: int) -> None:
        """Add terms ``[covered, upto)`` (one writer at a time; readers may run meanwhile)."""
        for tid in range(self.covered, upto):
            for key in self._derive(terms[tid]):
                self._extra.setdefault(key, []).append(tid)
        self.covered = upto

    @property
    def pending(self) -> int:
        """Entries waiting in the dict for the next compaction."""
        return len(self._extra)

    def lookup(self, keys: Sequence[str]) -> np.ndarray:
        """Term ids under any of ``keys`` (one entry per hit: a term under two keys twice)."""
        if not keys:
            return np.zeros(0, dtype=np.int32)
        hashes = np.fromiter((hash(k) for k in keys), dtype=np.int64, count=len(keys))
        left = np.searchsorted(self._keys, hashes, side="left")
        right = np.searchsorted(self._keys, hashes, side="right")
        parts = [
            self._ids[a:b] for a, b in zip(left.tolist(), right.tolist(), strict=True) if b > a
        ]
        if self._extra:
            for key in keys:
                found = self._extra.get(key)
                if found:
                    parts.append(np.asarray(found, dtype=np.int32))
        if not parts:
            return np.zeros(0, dtype=np.int32)
        return np.concatenate(parts)


def one_deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def trigrams(word: str) -> list[str]:
    """Letter trigrams of a word padded at both ends: "news" -> $ne, new, ews, ws$."""
    padded = f"${word}$"
    return list(dict.fromkeys(padded[i : i + 3] for i in range(len(padded) - 2)))
