"""Index segments: the compact, immutable arrays a search reads, built once per batch of articles.

A :class:`Segment` holds what ranking and filtering need of its documents and nothing else:
each document's title and excerpt as arrays of term ids (the re-ranking reads them in order),
postings from term to documents for both fields, the publication time, quality, source and
topics as numeric arrays, and the title and URL as UTF-8 text in one bytes object each. No
Python object per article survives a build, so 100,000 articles cost tens of megabytes and the
garbage collector has almost nothing to walk.

Term, topic and source ids come from tables shared by every segment of an index
(:class:`Vocabulary`, :class:`Names`). They only ever grow, so a segment built later may use ids
an older one never saw; a segment built for one change costs what that change costs.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .articles import IndexDoc
from .foreground import FOREGROUND
from .meaning import Vectors, article_text
from .tokens import compounds, fold, folded_words

step_aside = FOREGROUND.step_aside

if TYPE_CHECKING:
    from .articles import Article
    from .meaning import Embedder

# Words indexed per field of one article. Real titles have at most 27 words, real excerpts 59
# (2,285 files); these caps leave room for far longer ones and bound what one file can cost.
MAX_TITLE_WORDS = 64
MAX_EXCERPT_WORDS = 256
# Below this many documents a segment keeps its postings in a dict (term -> docs): a dense
# pointer array would cost 8 bytes per term of the whole vocabulary for a handful of documents.
DENSE_POSTINGS_FROM = 4096
# Articles whose texts a builder keeps before embedding them (see SegmentBuilder.embed_pending).
EMBED_BATCH = 2048

_EMPTY = np.zeros(0, dtype=np.int32)


def as_doc(item: IndexDoc | Article) -> IndexDoc:
    return item if isinstance(item, IndexDoc) else IndexDoc.of(item)


def url_key(url: str) -> int:
    """A stable 64-bit key of a URL: the same in every process, for lookups and tie-breaking."""
    return int.from_bytes(
        hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
        "little",
        signed=True,
    )


class Vocabulary:
    """Term <-> id, shared by every segment and version of one index; it only grows.

    One writer at a time (the library refreshes under a lock, in a worker thread) while
    queries read on the event loop: a dict lookup and a list append are atomic under the GIL,
    and a reader ignores ids beyond the vocabulary size its index version was made with.
    """

    def __init__(self) -> None:
        self.terms: list[str] = []
        self.ids: dict[str, int] = _Interning(self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    def intern(self, term: str) -> int:
        return self.ids[term]

    def intern_all(self, terms: list[str]) -> list[int]:
        ids = self.ids
        return [ids[t] for t in terms]  # a C-speed subscript per word; new ones via __missing__


class _Interning(dict[str, int]):
    """A dict that gives an unknown term the next id (``d[term]`` never raises)."""

    def __init__(self, terms: list[str]) -> None:
        super().__init__()
        self._terms = terms

    def __missing__(self, term: str) -> int:
        found = len(self._terms)
        self._terms.append(term)
        self[term] = found
        return found


class Names:
    """Key <-> id for topics and sources, with the display name first seen for each key."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.keys: list[str] = []
        self.shown: list[str] = []

    def __len__(self) -> int:
        return len(self.keys)

    def intern(self, key: str, shown: str) -> int:
        found = self.ids.get(key)
        if found is None:
            found = len(self.keys)
            self.keys.append(key)
            self.shown.append(shown)
            self.ids[key] = found
        return found


class Postings(Protocol):
    def of(self, term: int) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class DensePostings:
    """Compressed-sparse-row postings: docs of term t are ``docs[ptr[t]:ptr[t + 1]]``."""

    ptr: np.ndarray
    docs: np.ndarray

    def of(self, term: int) -> np.ndarray:
        if term + 1 >= len(self.ptr):
            return _EMPTY
        return self.docs[self.ptr[term] : self.ptr[term + 1]]


@dataclass(frozen=True, slots=True)
class SparsePostings:
    """Postings of a small segment: only the terms it holds."""

    by_term: dict[int, np.ndarray]

    def of(self, term: int) -> np.ndarray:
        return self.by_term.get(term, _EMPTY)


@dataclass(frozen=True, slots=True)
class TextColumn:
    """Strings stored as one UTF-8 bytes object plus offsets: no object per string."""

    data: bytes | memoryview  # a view into a loaded snapshot, without copying it
    off: np.ndarray  # int64, len = count + 1

    def __getitem__(self, i: int) -> str:
        piece = self.data[int(self.off[i]) : int(self.off[i + 1])]
        return bytes(piece).decode("utf-8", "surrogatepass")

    @classmethod
    def of(cls, texts: Iterable[str]) -> TextColumn:
        chunks = [t.encode("utf-8", "surrogatepass") for t in texts]
        off = np.zeros(len(chunks) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in chunks], out=off[1:])
        return cls(b"".join(chunks), off)

    def take(self, rows: np.ndarray) -> TextColumn:
        starts, lengths = self.off[rows], np.diff(self.off)[rows]
        raw = np.frombuffer(self.data, dtype=np.uint8)
        off = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=off[1:])
        return TextColumn(raw[_gather(starts, lengths, off)].tobytes(), off)


@dataclass(frozen=True, slots=True)
class Ragged:
    """Per-document runs of ids: document d's are ``flat[off[d]:off[d + 1]]``."""

    flat: np.ndarray  # int32
    off: np.ndarray  # int64

    def of(self, doc: int) -> np.ndarray:
        return self.flat[self.off[doc] : self.off[doc + 1]]

    def docs(self) -> np.ndarray:
        """The document of each entry of ``flat``."""
        return np.repeat(np.arange(len(self.off) - 1, dtype=np.int32), np.diff(self.off))

    def take(self, rows: np.ndarray) -> Ragged:
        starts, lengths = self.off[rows], np.diff(self.off)[rows]
        off = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=off[1:])
        return Ragged(self.flat[_gather(starts, lengths, off)], off)

    @staticmethod
    def concat(parts: Sequence[Ragged]) -> Ragged:
        flats = [p.flat for p in parts]
        offs = [np.zeros(1, dtype=np.int64)]
        base = 0
        for p in parts:
            offs.append(p.off[1:] + base)
            base += int(p.off[-1])
        return Ragged(np.concatenate(flats or [_EMPTY]).astype(np.int32), np.concatenate(offs))


class _RaggedBuilder:
    # array('i'), not lists: four bytes per id while a 100,000-article build accumulates.
    def __init__(self) -> None:
        self.flat = array("i")
        self.off = array("q", [0])

    def add(self, ids: Iterable[int]) -> None:
        self.flat.extend(ids)
        self.off.append(len(self.flat))

    def done(self) -> Ragged:
        flat = np.frombuffer(self.flat, dtype=np.int32).copy() if self.flat else _EMPTY
        return Ragged(flat, np.frombuffer(self.off, dtype=np.int64).copy())


@dataclass(frozen=True, slots=True)
class Segment:
    """The documents of one build or one change; immutable once made."""

    size: int
    title: Ragged  # term ids of the title, in order
    excerpt: Ragged  # term ids of the excerpt, in order
    compound: Ragged  # hyphenated compounds of the title, joined ("e-mail" -> "email")
    topic: Ragged  # topic ids
    title_post: Postings  # title words and compounds -> docs
    excerpt_post: Postings
    published: np.ndarray  # float64
    quality: np.ndarray  # float32, -1 for none
    provider: np.ndarray  # int32 source id
    url_keys: np.ndarray  # int64, see url_key
    urls: TextColumn
    titles: TextColumn
    meaning: Vectors | None = None  # one vector per document, when the index searches by meaning

    @classmethod
    def build(
        cls,
        docs: Iterable[IndexDoc],
        vocab: Vocabulary,
        names: tuple[Names, Names],
        embedder: Embedder | None = None,
    ) -> Segment:
        builder = SegmentBuilder(vocab, names, embedder)
        batch: list[IndexDoc] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) == EMBED_BATCH:
                builder.add(batch)
                builder.embed_pending()  # a whole corpus's texts are never held at once
                batch = []
        builder.add(batch)
        return builder.done()

    @classmethod
    def assemble(
        cls,
        title: Ragged,
        excerpt: Ragged,
        compound: Ragged,
        topic: Ragged,
        published: np.ndarray,
        quality: np.ndarray,
        provider: np.ndarray,
        url_keys: np.ndarray,
        urls: TextColumn,
        titles: TextColumn,
        meaning: Vectors | None = None,
    ) -> Segment:
        size = len(published)
        title_terms = np.concatenate([title.flat, compound.flat])
        title_docs = np.concatenate([title.docs(), compound.docs()])
        # Between the big steps a bot's replies in flight go first (see bot.foreground).
        step_aside()
        title_post = _postings(title_terms, title_docs, size)
        step_aside()
        excerpt_post = _postings(excerpt.flat, excerpt.docs(), size)
        step_aside()
        return cls(
            size=size,
            title=title,
            excerpt=excerpt,
            compound=compound,
            topic=topic,
            title_post=title_post,
            excerpt_post=excerpt_post,
            published=published,
            quality=quality,
            provider=provider,
            url_keys=url_keys,
            urls=urls,
            titles=titles,
            meaning=meaning,
        )

    @classmethod
    def merge(cls, parts: Sequence[tuple[Segment, np.ndarray]]) -> Segment:
        """One segment of the documents of ``parts`` whose ``alive`` mask is set, in order.

        No text is tokenized again: the term ids are copied and the postings sorted anew.
        """
        kept = [(seg, np.flatnonzero(alive)) for seg, alive in parts]
        with_meaning = all(s.meaning is not None for s, _ in kept)
        title = Ragged.concat([s.title.take(rows) for s, rows in kept])
        step_aside()  # a bot's replies in flight go first (see bot.foreground)
        excerpt = Ragged.concat([s.excerpt.take(rows) for s, rows in kept])
        step_aside()
        return cls.assemble(
            title,
            excerpt,
            Ragged.concat([s.compound.take(rows) for s, rows in kept]),
            Ragged.concat([s.topic.take(rows) for s, rows in kept]),
            np.concatenate([s.published[rows] for s, rows in kept]),
            np.concatenate([s.quality[rows] for s, rows in kept]),
            np.concatenate([s.provider[rows] for s, rows in kept]),
            np.concatenate([s.url_keys[rows] for s, rows in kept]),
            _concat_text([s.urls.take(rows) for s, rows in kept]),
            _concat_text([s.titles.take(rows) for s, rows in kept]),
            Vectors.concat([s.meaning.take(rows) for s, rows in kept if s.meaning is not None])
            if with_meaning
            else None,
        )

    def distinct_terms(self, doc: int) -> np.ndarray:
        """Every term document ``doc`` counts for in document frequency (each once)."""
        return np.unique(
            np.concatenate([self.title.of(doc), self.compound.of(doc), self.excerpt.of(doc)])
        )

    def document_frequency(self, n_terms: int) -> np.ndarray:
        """How many of this segment's documents hold each term (title, compound or excerpt)."""
        terms = np.concatenate([self.title.flat, self.compound.flat, self.excerpt.flat])
        docs = np.concatenate([self.title.docs(), self.compound.docs(), self.excerpt.docs()])
        pairs = _sorted_unique(terms.astype(np.int64) * max(self.size, 1) + docs)
        return np.bincount(pairs // max(self.size, 1), minlength=n_terms).astype(np.float64)

    def find(self, url: str) -> int | None:
        """The local document holding ``url`` (the newest, if it was held more than once)."""
        found = np.flatnonzero(self.url_keys == url_key(url))
        for doc in found[::-1].tolist():
            if self.urls[doc] == url:
                return int(doc)
        return None


class SegmentBuilder:
    """Tokenizes documents into a segment a few at a time: a caller on the event loop can add
    a small batch, let replies run, and add the next (see bot.library)."""

    def __init__(
        self,
        vocab: Vocabulary,
        names: tuple[Names, Names],
        embedder: Embedder | None = None,
    ) -> None:
        self._vocab = vocab
        self._embedder = embedder
        # Texts not embedded yet, and the vectors of those that are (see embed_pending).
        self._texts: list[str] = []
        self._vectors: list[Vectors] = []
        self._topics, self._providers = names
        self._title, self._excerpt, self._compound, self._topic = (
            _RaggedBuilder() for _ in range(4)
        )
        self._published: list[float] = []
        self._quality: list[float] = []
        self._provider: list[int] = []
        self._urls: list[str] = []
        self._titles: list[str] = []

    def __len__(self) -> int:
        return len(self._urls)

    @property
    def urls(self) -> list[str]:
        return self._urls

    def add(self, docs: Iterable[IndexDoc]) -> None:
        intern = self._vocab.intern_all
        topics, providers = self._topics, self._providers
        for doc in docs:
            folded = fold(doc.title)
            self._title.add(intern(folded_words(folded, MAX_TITLE_WORDS)))
            self._compound.add(intern(compounds(folded, MAX_TITLE_WORDS)))
            self._excerpt.add(intern(folded_words(fold(doc.excerpt), MAX_EXCERPT_WORDS)))
            self._topic.add(dict.fromkeys(topics.intern(fold(t), t) for t in doc.topics))
            self._published.append(doc.published)
            self._quality.append(-1.0 if doc.quality is None else float(doc.quality))
            key = fold(f"{doc.provider} {doc.provider_domain}")
            self._provider.append(providers.intern(key, doc.provider or doc.provider_domain))
            self._urls.append(doc.url)
            self._titles.append(doc.title)
            if self._embedder is not None:
                self._texts.append(article_text(doc.title, doc.excerpt))

    def embed_pending(self) -> None:
        """Embed the texts added so far (about 0.1 ms an article: :meth:`done` does it for
        whatever is left, so a caller on the event loop leaves it to the thread that finishes)."""
        if self._embedder is not None and self._texts:
            # Between batches a bot's replies in flight go first (see bot.foreground).
            vectors = self._embedder.embed(self._texts, between=step_aside)
            self._vectors.append(Vectors.of(vectors))
            self._texts = []

    def done(self) -> Segment:
        self.embed_pending()
        return Segment.assemble(
            self._title.done(),
            self._excerpt.done(),
            self._compound.done(),
            self._topic.done(),
            np.asarray(self._published, dtype=np.float64),
            np.asarray(self._quality, dtype=np.float32),
            np.asarray(self._provider, dtype=np.int32),
            np.asarray([url_key(u) for u in self._urls], dtype=np.int64),
            TextColumn.of(self._urls),
            TextColumn.of(self._titles),
            Vectors.concat(self._vectors) if self._embedder is not None else None,
        )


def _postings(terms: np.ndarray, docs: np.ndarray, size: int) -> Postings:
    """Group (term, doc) pairs into sorted, de-duplicated per-term doc arrays."""
    n = max(size, 1)
    keys = _sorted_unique(terms.astype(np.int64) * n + docs)
    terms, docs = (keys // n).astype(np.int32), (keys % n).astype(np.int32)
    if size < DENSE_POSTINGS_FROM:
        if not len(terms):
            return SparsePostings({})
        starts = np.flatnonzero(np.diff(terms, prepend=-1))
        ends = np.append(starts[1:], len(terms))
        return SparsePostings(
            {
                int(t): docs[s:e]
                for t, s, e in zip(
                    terms[starts].tolist(), starts.tolist(), ends.tolist(), strict=True
                )
            }
        )
    n_terms = int(terms.max(initial=-1)) + 1
    counts = np.bincount(terms, minlength=n_terms)
    ptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return DensePostings(ptr=ptr, docs=docs)


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """np.unique by sorting: several times faster than its hash path on int64 keys."""
    keys = np.sort(keys)
    if len(keys) < 2:
        return keys
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def _gather(starts: np.ndarray, lengths: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Indexes of the runs ``[start, start + length)``, one after the other."""
    total = int(off[-1])
    if not total:
        return np.zeros(0, dtype=np.int64)
    return np.repeat(starts - off[:-1], lengths) + np.arange(total, dtype=np.int64)


def _concat_text(parts: Sequence[TextColumn]) -> TextColumn:
    offs = [np.zeros(1, dtype=np.int64)]
    base = 0
    for p in parts:
        offs.append(p.off[1:] + base)
        base += int(p.off[-1])
    return TextColumn(b"".join(p.data for p in parts), np.concatenate(offs))
