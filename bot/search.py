"""The in-memory search index: pure and synchronous, and built for change.

How a query is answered, and why:

1. **Words, not strings.** Whole-string fuzzy ratios drown a one-letter typo in a long title, so
   titles and excerpts are split into folded words (:mod:`bot.tokens`) and each query word is
   matched against the *vocabulary*: exactly, within one edit (insert, delete, substitute or
   swap two letters; found through a SymSpell-style table of one-letter deletions, so a lookup
   costs a few probes however large the vocabulary), or as the start of a longer word.
2. **Rarity.** Each matched word adds its inverse document frequency; a title match weighs more
   than an excerpt match. Postings are numpy arrays, so scoring the whole corpus is a handful of
   vector operations per query word rather than a Python loop over documents.
3. **Re-ranking a short list.** The best few dozen candidates are re-scored with what a bag of
   words misses: query words found next to each other and in order (in the title or the
   excerpt), how much of the title the query covers, and rapidfuzz's ratio between the query
   and the title, which is good at exactly this: ranking a short list.

**Built for change.** A :class:`SearchIndex` is one *version*: immutable to whoever holds it, so
a query always sees one whole corpus. :meth:`SearchIndex.apply` makes the next version from a
batch of added, changed and removed articles: the batch becomes a small new segment
(:mod:`bot.segments`), the documents it replaces are marked dead in theirs, and the collection
statistics (document frequencies, live count, topic and source counts) are adjusted by exactly
what came and went. So the ranking after any sequence of changes is the ranking a fresh build of
the same articles gives: document frequencies are the same integers, dead documents score
nothing, terms no live document holds are treated as absent, and every tie is broken by the
article's own quality, date and URL, never by where it sits in the index. When the small
segments or the dead documents grow, :meth:`SearchIndex.merged` copies the live documents into
one segment again (term ids are copied, nothing is tokenized twice).

The index holds what ranking and filtering need, as arrays; what a reply shows is read from the
database by URL.

**Bounded per article.** Whatever one seed file holds (a megabyte of base64, a title of 900,000
letters, 200,000 distinct words), building stays linear in the corpus: only the first
:data:`~bot.segments.MAX_TITLE_WORDS` words of a title and
:data:`~bot.segments.MAX_EXCERPT_WORDS` of an excerpt are indexed, a word is cut to
:data:`bot.tokens.MAX_WORD_LENGTH` characters, and a word that long gets no typo variants (it is
a blob, not a word anyone mistypes).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from .articles import Article
from .meaning import Embedder, query_signs
from .segments import (
    MAX_EXCERPT_WORDS,
    MAX_TITLE_WORDS,
    IndexDoc,
    Names,
    Segment,
    SegmentBuilder,
    Vocabulary,
    as_doc,
    url_key,
)
from .termtables import TermTable, one_deletions, trigrams
from .tokens import MAX_WORD_LENGTH, fold, query_words, words

__all__ = ["MAX_EXCERPT_WORDS", "MAX_TITLE_WORDS", "Hit", "IndexDoc", "SearchIndex"]

# A query word found in the title counts this much extra over one found only in the excerpt.
TITLE_WEIGHT = 0.5
TYPO_QUALITY = 0.8
# A typo variant of a word that exists as typed is less likely to be what the user meant.
TYPO_QUALITY_WHEN_EXACT = 0.55
MIN_TYPO_LENGTH = 4
# A word of MAX_WORD_LENGTH characters (maybe cut from a longer blob) is matched exactly only: its
# deletion variants would cost MAX_WORD_LENGTH entries each, for a word no one types by hand.
MAX_TYPO_LENGTH = MAX_WORD_LENGTH - 1
MAX_PREFIX_EXPANSION = 40
RERANK_DEPTH = 40
# A query word whose documents are more than 1/32 of the collection is tallied over whole
# arrays (see SearchIndex._tally_word), a rarer one over its documents alone.
DENSE_TALLY_SHARE = 32
# Below this share of the query's weight matched, a document is not a hit, only a suggestion.
MIN_COVERAGE = 0.45
#: A follow does not require a query word found in this share of the collection or more
#: ("the", "in"), once that is at least FOLLOW_COMMON_FLOOR articles.
FOLLOW_COMMON_SHARE = 0.1
FOLLOW_COMMON_FLOOR = 20
# Suggestions for a query that shares no word with any article: vocabulary words sharing at
# least this share of letter trigrams with a query word (Dice; 0.3 as pg_trgm) stand in for it.
FAR_MIN_SIMILARITY = 0.3
FAR_CANDIDATES = 8
# Documents shortlisted by their vectors' sign bits before the 8-bit cosine ranks them.
MEANING_SHORTLIST = 1024
# A Hamming distance no document has (DIM is the largest): marks the ineligible.
_FAR = 65535
# The nearest documents in meaning that join a query's candidates.
MEANING_DEPTH = 50
# How much the cosine between query and article adds, as a share of the best lexical score.
MEANING_WEIGHT = 0.35
# A candidate that shares no word with the query is shown only this close in meaning.
MIN_MEANING = 0.3
# Two articles tell the same story (one event, several outlets) when their vectors are this
# close and they were published this near in time: on the shared corpora, pairs above 0.9
# are the same event retold, while "January 2023" and "January 2024" feature updates (0.96,
# a year apart) are not.
SAME_STORY_COSINE = 0.9
SAME_TITLE_COSINE = 0.85
SAME_STORY_DAYS = 2
SAME_HEADLINE_COSINE = 0.99
SAME_HEADLINE_DAYS = 30
COLLAPSE_AT_MOST = 200
# Neighbours looked at beyond the limit, since the same story's other tellings are skipped.
SIMILAR_SLACK = 10

# Re-ranking weights (added to the coverage score), tuned on the real corpora with the query
# kinds of bench/search.py: query words side by side in the title / the excerpt (share of
# pairs), the whole query in order in one field, the share of the title the query covers,
# rapidfuzz's ratio with the title, and a title equal to the query.
ADJ_TITLE = 0.3
ADJ_EXCERPT = 0.3
TITLE_COVER = 0.4
RATIO = 0.3
PHRASE = 1.0
EXACT = 0.5
_MAX_FINAL = 1.0 + TITLE_WEIGHT + ADJ_TITLE + ADJ_EXCERPT + PHRASE + TITLE_COVER + RATIO + EXACT

# Merge policy: the small segments are merged into one when there are more than this many...
MAX_SMALL_SEGMENTS = 8
# ...and everything into one segment when the small ones or the dead documents pass this share
# of the documents (or this many, for a small corpus).
MERGE_SHARE = 0.1
MERGE_FLOOR = 2_000
# The typo, trigram and prefix tables are rebuilt at a merge once the words added since their
# last build pass this share of the vocabulary (or this many); until then new words are looked
# up in small side tables.
COMPACT_SHARE = 0.1
COMPACT_FLOOR = 5_000


@dataclass(frozen=True, slots=True)
class FollowQuery:
    """What a follow asks for (see :meth:`SearchIndex.follow_matches`)."""

    query: str
    topic: str | None = None
    source: str | None = None  # a source's name or domain, as /news's source option


@dataclass(frozen=True, slots=True)
class Hit:
    url: str
    title: str
    score: float  # 0..100, higher is better


def _typo_keys(term: str) -> Iterable[str]:
    return one_deletions(term) if MIN_TYPO_LENGTH <= len(term) <= MAX_TYPO_LENGTH else ()


def _gram_keys(term: str) -> Iterable[str]:
    return trigrams(term) if 3 <= len(term) <= MAX_TYPO_LENGTH else ()


@dataclass(slots=True)
class _Shared:
    """What every version of one index shares: tables that only grow, and lookups over them.

    Written only by whoever makes the next version (one at a time); read by every version.
    """

    vocab: Vocabulary
    topics: Names
    providers: Names
    typos: TermTable
    grams: TermTable
    sorted_terms: list[str]  # the vocabulary up to sorted_covered, alphabetically
    sorted_ids: list[int]
    sorted_covered: int
    # Makes each document's vector and each query's when the index searches by meaning.
    embedder: Embedder | None = None

    @classmethod
    def fresh(cls, embedder: Embedder | None = None) -> _Shared:
        return cls.over(Vocabulary(), Names(), Names(), embedder)

    @classmethod
    def over(
        cls, vocab: Vocabulary, topics: Names, providers: Names, embedder: Embedder | None = None
    ) -> _Shared:
        """Lookup tables over an existing vocabulary (a loaded snapshot's)."""
        empty = TermTable(_typo_keys, []), TermTable(_gram_keys, [])
        return cls(vocab, topics, providers, *empty, [], [], 0, embedder).compacted()

    def compacted(self) -> _Shared:
        """The same tables with every term in the compact arrays (a new object: old versions
        keep reading the old one)."""
        terms = self.vocab.terms
        count = len(terms)
        order = sorted(range(count), key=terms.__getitem__)
        return _Shared(
            self.vocab,
            self.topics,
            self.providers,
            TermTable(_typo_keys, terms[:count]),
            TermTable(_gram_keys, terms[:count]),
            [terms[i] for i in order],
            order,
            count,
            self.embedder,
        )


class SearchIndex:
    """One version of the index. Build with :meth:`build`, change with :meth:`apply`; read with
    :meth:`search`, :meth:`suggestions`, :meth:`suggest_titles`, :meth:`topics`."""

    def __init__(
        self,
        shared: _Shared,
        segments: tuple[Segment, ...],
        alive: tuple[np.ndarray, ...],
        df: np.ndarray,
        topic_counts: np.ndarray,
        provider_counts: np.ndarray,
        recent_terms: list[tuple[str, int]],
    ) -> None:
        self._shared = shared
        self._vocab = shared.vocab
        self._segments = segments
        self._alive_parts = alive
        self._bases = np.zeros(len(segments) + 1, dtype=np.int64)
        np.cumsum([s.size for s in segments], out=self._bases[1:])
        self._placed = list(zip(segments, self._bases.tolist(), strict=False))
        self._n_terms = len(df)
        self._df = df
        self._alive = np.concatenate(alive) if alive else np.zeros(0, dtype=bool)
        self._n_live = int(self._alive.sum())
        self._idf = np.log1p((self._n_live - df + 0.5) / (df + 0.5)).astype(np.float32)
        self._published = _joined([s.published for s in segments], np.float64)
        self._quality = _joined([s.quality for s in segments], np.float32)
        self._provider = _joined([s.provider for s in segments], np.int32)
        self._url_keys = _joined([s.url_keys for s in segments], np.int64)
        self._topic_counts = topic_counts
        self._provider_counts = provider_counts
        # What follows' words are found as in this version (see _follow_terms).
        self._follow_cache: dict[str, frozenset[int] | None] = {}
        # Terms added since the shared sorted list was made, alphabetically (for prefixes).
        self._recent_terms = recent_terms

    # --- building and changing ---------------------------------------------------------------

    @classmethod
    def build(
        cls, articles: Iterable[IndexDoc | Article], *, embedder: Embedder | None = None
    ) -> SearchIndex:
        """An index of ``articles`` from scratch; with ``embedder``, searching by meaning too."""
        shared = _Shared.fresh(embedder)
        segment = Segment.build(
            (as_doc(a) for a in articles),
            shared.vocab,
            (shared.topics, shared.providers),
            embedder,
        )
        shared = shared.compacted()
        n_terms = len(shared.vocab)
        everyone = np.ones(segment.size, dtype=bool)
        return cls(
            shared,
            (segment,),
            (everyone,),
            segment.document_frequency(n_terms),
            _counts(segment.topic.flat, len(shared.topics)),
            _counts(segment.provider, len(shared.providers)),
            [],
        )

    def apply(
        self, upserts: Iterable[IndexDoc | Article], removed: Iterable[str] = ()
    ) -> SearchIndex:
        """The next version: ``upserts`` added or replacing the article of the same URL,
        ``removed`` URLs gone. This version stays valid and unchanged for its readers."""
        builder = self.segment_builder()
        builder.add(unique_docs(upserts))
        return self.with_segment(builder, removed)

    def segment_builder(self) -> SegmentBuilder:
        """A builder for the next change's segment (feed it, then :meth:`with_segment`)."""
        shared = self._shared
        return SegmentBuilder(shared.vocab, (shared.topics, shared.providers), shared.embedder)

    def with_segment(self, built: SegmentBuilder, removed: Iterable[str] = ()) -> SearchIndex:
        """The next version: the documents of ``built`` added, replacing any of the same URL,
        and the ``removed`` URLs gone. Each URL at most once in ``built``."""
        leaving = set(removed) | set(built.urls)
        shared = self._shared
        alive = list(self._alive_parts)
        gone: list[tuple[Segment, int]] = []
        if leaving:
            wanted = np.fromiter((url_key(u) for u in leaving), dtype=np.int64, count=len(leaving))
            for i, segment in enumerate(self._segments):
                local = np.flatnonzero(np.isin(segment.url_keys, wanted) & alive[i])
                for doc in local.tolist():
                    if segment.urls[doc] in leaving:
                        if alive[i] is self._alive_parts[i]:
                            alive[i] = alive[i].copy()
                        alive[i][doc] = False
                        gone.append((segment, doc))
        segments = list(self._segments)
        fresh: Segment | None = None
        if len(built):
            fresh = built.done()
            segments.append(fresh)
            alive.append(np.ones(fresh.size, dtype=bool))
        n_terms = len(shared.vocab)
        shared.typos.extend(shared.vocab.terms, n_terms)
        shared.grams.extend(shared.vocab.terms, n_terms)
        df = _grown(self._df, n_terms)
        topic_counts = _grown(self._topic_counts, len(shared.topics))
        provider_counts = _grown(self._provider_counts, len(shared.providers))
        for segment, doc in gone:
            df[segment.distinct_terms(doc)] -= 1
            topic_counts[segment.topic.of(doc)] -= 1
            provider_counts[segment.provider[doc]] -= 1
        if fresh is not None:
            df += fresh.document_frequency(n_terms)
            topic_counts += _counts(fresh.topic.flat, len(topic_counts))
            provider_counts += _counts(fresh.provider, len(provider_counts))
        recent = self._recent_terms
        known = shared.sorted_covered + len(recent)
        if n_terms > known:
            added = [(shared.vocab.terms[t], t) for t in range(known, n_terms)]
            recent = sorted(recent + added)
        return SearchIndex(
            shared, tuple(segments), tuple(alive), df, topic_counts, provider_counts, recent
        )

    @property
    def needs_merge(self) -> bool:
        """True when :meth:`merged` would pay for itself (many small segments, or many dead)."""
        return len(self._segments) - 1 > MAX_SMALL_SEGMENTS or self._needs_full_merge()

    def _needs_full_merge(self) -> bool:
        small = int(self._bases[-1] - self._bases[1]) if len(self._segments) > 1 else 0
        dead = int(self._bases[-1]) - self._n_live
        limit = max(MERGE_FLOOR, MERGE_SHARE * self._n_live)
        return small > limit or dead > limit

    def merged(self, *, full: bool | None = None) -> SearchIndex:
        """The same articles in fewer segments.

        Tiered, as search engines merge: while the small segments and the dead documents
        stay under MERGE_SHARE of the collection, only the small segments are merged into
        one (cheap: the main segment is untouched); past it, or with ``full``, every live
        document goes into one segment. A full merge also compacts the vocabulary's lookup
        tables once enough new words wait outside their arrays (a Python pass over the whole
        vocabulary: not on every merge).
        """
        if full is None:
            full = self._needs_full_merge()
        shared, recent = self._shared, self._recent_terms
        if not full and len(self._segments) > 1:
            tail = Segment.merge(list(zip(self._segments[1:], self._alive_parts[1:], strict=True)))
            return SearchIndex(
                shared,
                (self._segments[0], tail),
                (self._alive_parts[0], np.ones(tail.size, dtype=bool)),
                self._df.copy(),
                self._topic_counts.copy(),
                self._provider_counts.copy(),
                recent,
            )
        segment = Segment.merge(list(zip(self._segments, self._alive_parts, strict=True)))
        if len(recent) > max(COMPACT_FLOOR, COMPACT_SHARE * shared.sorted_covered):
            shared, recent = shared.compacted(), []
        return SearchIndex(
            shared,
            (segment,),
            (np.ones(segment.size, dtype=bool),),
            self._df.copy(),
            self._topic_counts.copy(),
            self._provider_counts.copy(),
            recent,
        )

    # --- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n_live

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def semantic(self) -> bool:
        """True when every document has a vector and queries are matched by meaning too."""
        return self._shared.embedder is not None and all(
            s.meaning is not None for s in self._segments
        )

    def find(self, url: str) -> Hit | None:
        """The live article of ``url``, as a hit of score 100, or None."""
        doc = self._doc_of(url)
        return None if doc is None else self._hit(doc, 100.0)

    def _doc_of(self, url: str) -> int | None:
        for i, segment in enumerate(self._segments):
            doc = segment.find(url)
            if doc is not None and self._alive_parts[i][doc]:
                return int(self._bases[i]) + doc
        return None

    def similar(self, url: str, limit: int = 5) -> list[Hit]:
        """Other articles nearest ``url``'s in meaning, nearest first (related stories for an
        article that lists none); the same story told by other sources is left out (see
        :meth:`same_story`). [] without vectors, or for an unknown URL."""
        return self.neighbours(url, similar=limit)[1]

    def same_story(self, url: str, limit: int = 10) -> list[Hit]:
        """Other articles telling the story of ``url``: nearly the same in meaning and
        published within :data:`SAME_STORY_DAYS` of it (several outlets, one event), nearest
        first. [] without vectors."""
        return self.neighbours(url, twins=limit)[0]

    def neighbours(
        self, url: str, *, twins: int = 0, similar: int = 0
    ) -> tuple[list[Hit], list[Hit]]:
        """(up to ``twins`` other tellings of ``url``'s story, up to ``similar`` other
        stories nearest it), from one pass over the vectors."""
        doc = self._doc_of(url) if self.semantic else None
        if doc is None or (twins <= 0 and similar <= 0):
            return [], []
        docs, cosine = self._nearest(self._vector(doc), None, max(twins, similar) + SIMILAR_SLACK)
        same = self._twins(doc, docs)
        told = set(same.tolist())
        others = [
            self._hit(d, round(100.0 * max(c, 0.0), 1))
            for d, c in zip(docs.tolist(), cosine.tolist(), strict=True)
            if d != doc and d not in told and c >= MIN_MEANING
        ]
        return [self._hit(int(d), 100.0) for d in same[:twins]], others[:similar]

    def collapse_urls(self, urls: Sequence[str]) -> list[str]:
        """``urls`` (best first) without those telling the story of an earlier one.

        Only the first COLLAPSE_AT_MOST are compared (pairwise: a day of a thousand new
        stories must not cost a million comparisons); any further ones are kept as they are.
        """
        if not self.semantic or len(urls) < 2:
            return list(urls)
        found = [(url, self._doc_of(url)) for url in urls[:COLLAPSE_AT_MOST]]
        docs = np.asarray([doc for _, doc in found if doc is not None], dtype=np.int64)
        keep = dict(zip(docs.tolist(), self._collapsed(docs).tolist(), strict=True))
        kept = [url for url, doc in found if doc is None or keep[doc]]
        return kept + list(urls[COLLAPSE_AT_MOST:])

    def _collapsed(
        self, docs: np.ndarray, titles: dict[int, np.ndarray] | None = None
    ) -> np.ndarray:
        """For ``docs`` (best first, distinct), False where an earlier one tells its story.
        ``titles`` keeps the headline vectors embedded, by document, for another call."""
        same = self._same_story_matrix(docs, titles)
        keep = np.ones(len(docs), dtype=bool)
        for i in range(1, len(docs)):
            keep[i] = not (same[i, :i] & keep[:i]).any()
        return keep

    def _twins(self, doc: int, docs: np.ndarray) -> np.ndarray:
        """Those of ``docs`` that tell ``doc``'s story."""
        others = docs[docs != doc]
        same = self._same_story_matrix(np.concatenate([[doc], others]))
        return others[same[0, 1:]]

    def _same_story_matrix(
        self, docs: np.ndarray, titles: dict[int, np.ndarray] | None = None
    ) -> np.ndarray:
        """(i, j) True when ``docs[i]`` and ``docs[j]`` tell one story: published within
        SAME_STORY_DAYS, and nearly the same in meaning, whole or by their headlines (outlets
        retell a headline closely but write their own summary)."""
        embedder = self._shared.embedder
        n = len(docs)
        same = np.zeros((n, n), dtype=bool)
        if embedder is None or n < 2:
            return same
        published = self._published[docs]
        apart = np.abs(published[:, None] - published[None, :])
        near_in_time = apart <= SAME_HEADLINE_DAYS * 86400
        np.fill_diagonal(near_in_time, False)
        if not near_in_time.any():
            return same  # the common case for a page of hits: nothing to compare
        # Headlines are embedded only for the articles that have a partner near in time.
        involved = np.flatnonzero(near_in_time.any(axis=1))
        headlines = np.full((n, n), -1.0, dtype=np.float32)
        titles = {} if titles is None else titles
        wanted = [int(docs[i]) for i in involved.tolist()]
        new = [doc for doc in wanted if doc not in titles]
        if new:
            vectors = embedder.embed([self._hit(doc, 0.0).title for doc in new])
            titles.update(zip(new, vectors, strict=True))
        vectors = np.stack([titles[doc] for doc in wanted])
        headlines[np.ix_(involved, involved)] = vectors @ vectors.T
        whole = np.stack([self._vector(int(d)) for d in docs.tolist()])
        alike = (whole @ whole.T >= SAME_STORY_COSINE) | (headlines >= SAME_TITLE_COSINE)
        # The same headline syndicated weeks later is still that story.
        same = (alike & (apart <= SAME_STORY_DAYS * 86400)) | (
            (headlines >= SAME_HEADLINE_COSINE) & near_in_time
        )
        np.fill_diagonal(same, False)
        return same

    def _vector(self, doc: int) -> np.ndarray:
        segment, local = self._locate(doc)
        assert segment.meaning is not None
        vectors = segment.meaning
        return vectors.codes[local].astype(np.float32) * vectors.scales[local]

    def urls(self) -> list[str]:
        """Every live article's URL (for tests and checks: costs a string per article)."""
        return [self._hit(int(d), 100.0).url for d in np.flatnonzero(self._alive)]

    def topics(self) -> list[str]:
        """Every topic, most used first."""
        names = self._shared.topics
        used = np.flatnonzero(self._topic_counts > 0).tolist()
        used.sort(key=lambda t: (-int(self._topic_counts[t]), names.keys[t]))
        return [names.shown[t] for t in used]

    def providers(self) -> list[str]:
        """Every source's name (its domain when it has none), most used first."""
        counts: Counter[str] = Counter()
        shown = self._shared.providers.shown
        for pid in np.flatnonzero(self._provider_counts > 0).tolist():
            counts[shown[pid]] += int(self._provider_counts[pid])
        counts.pop("", None)
        return [name for name, _ in sorted(counts.items(), key=lambda p: (-p[1], p[0]))]

    def search(
        self,
        query: str,
        *,
        limit: int = 10,
        topic: str | None = None,
        provider: str | None = None,
        since: datetime | None = None,
    ) -> list[Hit]:
        """The best ``limit`` articles for ``query``, best first; [] when nothing matches well."""
        docs: list[int] = []
        hits, near = self._ranked(
            query, limit, topic, provider, since, by_meaning=True, docs_out=docs
        )
        found = hits + near
        if not self.semantic or len(found) < 2:
            return found[:limit]
        # Whether a hit is kept depends only on those before it: when the first page keeps
        # every hit (most queries), the rest need not be compared (nor their titles embedded).
        titles: dict[int, np.ndarray] = {}
        first_page = self._collapsed(np.asarray(docs[:limit], dtype=np.int64), titles)
        if first_page.all():
            return found[:limit]
        kept = self._collapsed(np.asarray(docs, dtype=np.int64), titles)
        return [hit for hit, keep in zip(found, kept, strict=True) if keep][:limit]

    def holds(self, url: str) -> bool:
        """Whether this version of the index serves ``url``."""
        return self._doc_of(url) is not None

    def newest_urls(
        self, topic: str | None = None, source: str | None = None, *, limit: int | None = None
    ) -> list[str]:
        """The articles passing the filters (the first ``limit``), newest published first
        (ties by URL)."""
        allowed = self._filter_mask(topic, source, None)
        alive = self._alive if allowed is None else self._alive & allowed
        chosen = np.flatnonzero(alive)
        order = np.lexsort((self._url_keys[chosen], -self._published[chosen]))[:limit]
        return [self._hit(int(d), 0.0).url for d in chosen[order]]

    def follow_matches(
        self, follows: Sequence[FollowQuery], urls: Sequence[str]
    ) -> list[list[str]]:
        """For each follow, the articles of ``urls`` it matches, in the order given.

        What "matches" means for a follow (an alert: precision over recall): the article
        passes the follow's topic and source filters as /news applies them, and holds every
        word of the query, in its title or excerpt, found as /news finds a word (as typed,
        within one typo, or as the start of a longer word when the word itself is not in the
        collection). Words in at least FOLLOW_COMMON_SHARE of the collection, and in at least
        FOLLOW_COMMON_FLOOR articles ("the", "in"), are not required: they say nothing about
        a story. A URL the index does not hold matches nothing.
        """
        docs = [self._doc_of(url) for url in urls]
        placed = [(i, d) for i, d in enumerate(docs) if d is not None]
        if not placed:
            return [[] for _ in follows]
        held: list[set[int]] = []  # each placed article's term ids, computed once
        topics_of: list[set[int]] = []  # and its topic ids
        for _i, doc in placed:
            segment, local = self._locate(doc)
            held.append(
                set(segment.title.of(local).tolist())
                | set(segment.excerpt.of(local).tolist())
                | set(segment.compound.of(local).tolist())
            )
            topics_of.append(set(segment.topic.of(local).tolist()))
        providers_of = [int(self._provider[doc]) for _i, doc in placed]
        # Per call: the follows share words, topics and sources (and the word's variants
        # cost a vocabulary lookup each).
        terms_of: dict[str, frozenset[int] | None] = {}
        in_topic: dict[str, list[bool]] = {}
        from_source: dict[str, list[bool]] = {}
        found: list[list[str]] = []
        for follow in follows:
            required: list[frozenset[int]] = []
            impossible = False
            for word in dict.fromkeys(query_words(follow.query)):
                if word not in terms_of:
                    terms_of[word] = self._follow_terms(word)
                terms = terms_of[word]
                if terms is None:
                    continue  # a common word: not required
                if not terms:
                    impossible = True
                    break
                required.append(terms)
            if impossible or not required:
                found.append([])
                continue
            keep = [True] * len(placed)
            if follow.topic is not None:
                if follow.topic not in in_topic:
                    wanted = self._shared.topics.ids.get(fold(follow.topic))
                    in_topic[follow.topic] = [wanted in held for held in topics_of]
                keep = [k and t for k, t in zip(keep, in_topic[follow.topic], strict=True)]
            if follow.source is not None:
                if follow.source not in from_source:
                    pids = self._source_ids(follow.source)
                    from_source[follow.source] = [pid in pids for pid in providers_of]
                keep = [k and t for k, t in zip(keep, from_source[follow.source], strict=True)]
            found.append(
                [
                    urls[i]
                    for (i, _doc), holds, ok in zip(placed, held, keep, strict=True)
                    if ok and all(not wanted.isdisjoint(holds) for wanted in required)
                ]
            )
        return found

    def _follow_terms(self, word: str) -> frozenset[int] | None:
        """The terms a follow's ``word`` is found as (empty: none), or None for a word too
        common to require; cached for this version of the index."""
        cached = self._follow_cache.get(word, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        exact = self._live_term(word)
        common = max(FOLLOW_COMMON_FLOOR, FOLLOW_COMMON_SHARE * self._n_live)
        terms: frozenset[int] | None
        if exact is not None and self._df[exact] >= common:
            terms = None
        else:
            prefix_ok = len(word) >= 3 and exact is None
            terms = frozenset(term for term, _ in self._variants(word, prefix_ok=prefix_ok))
        self._follow_cache[word] = terms
        return terms

    def _source_ids(self, source: str) -> set[int]:
        """The ids of the sources ``source`` names, as /news's source filter reads it."""
        wanted = fold(source).strip()
        keys = self._shared.providers.keys
        return {pid for pid in range(len(keys)) if wanted in keys[pid]}

    def suggestions(self, query: str, limit: int = 3) -> list[Hit]:
        """Closest titles for a query that found nothing good enough (for a no-hit reply).

        Costs what a search costs: partial matches first; for a query that shares no word at
        all, vocabulary words that look like its words (letter trigrams) stand in for them.
        """
        hits, near = self._ranked(query, limit, None, None, None)
        found = hits + near
        if not found:
            hits, near = self._ranked(query, limit, None, None, None, far=True)
            found = hits + near
        return found[:limit]

    def suggest_titles(self, text: str, limit: int = 25) -> list[Hit]:
        """Titles for autocomplete: newest first when empty, else the best matches so far."""
        if not words(text):
            return self._newest(limit)
        hits, near = self._ranked(text, limit, None, None, None, partial_last=True)
        return (hits + near)[:limit]

    def _newest(self, limit: int) -> list[Hit]:
        if not self._n_live or limit <= 0:
            return []
        stamps = np.where(self._alive, self._published, -np.inf)
        chosen = np.flatnonzero(self._alive)
        if len(chosen) > limit:
            cut = np.partition(stamps, len(stamps) - limit)[len(stamps) - limit]
            chosen = np.flatnonzero(stamps >= cut)  # every tie at the cut, then by URL
        order = np.lexsort((self._url_keys[chosen], -stamps[chosen]))[:limit]
        return [self._hit(int(d), 100.0) for d in chosen[order]]

    def _hit(self, doc: int, score: float) -> Hit:
        segment, local = self._locate(doc)
        return Hit(segment.urls[local], segment.titles[local], score)

    def _locate(self, doc: int) -> tuple[Segment, int]:
        if len(self._segments) == 1:
            return self._segments[0], doc
        i = int(np.searchsorted(self._bases, doc, side="right")) - 1
        return self._segments[i], doc - int(self._bases[i])

    def _live_term(self, word: str) -> int | None:
        """The id of ``word`` if a live document of this version holds it."""
        tid = self._vocab.ids.get(word)
        if tid is None or tid >= self._n_terms or self._df[tid] <= 0:
            return None
        return tid

    def _live(self, ids: np.ndarray) -> list[int]:
        ids = ids[ids < self._n_terms]
        return np.unique(ids[self._df[ids] > 0]).tolist()

    # --- ranking ----------------------------------------------------------------------------

    def _ranked(
        self,
        query: str,
        limit: int,
        topic: str | None,
        provider: str | None,
        since: datetime | None,
        *,
        partial_last: bool = False,
        far: bool = False,
        by_meaning: bool = False,
        docs_out: list[int] | None = None,
    ) -> tuple[list[Hit], list[Hit]]:
        """(full matches, partial ones), best first, at most ``limit`` of each.

        A full match holds most of the query (by rarity-weighted coverage). With
        ``by_meaning`` on an index that has vectors, the articles nearest the query in meaning
        join the candidates, and every candidate's score adds its cosine with the query:
        a partial match close in meaning, or an article that says the same in other words,
        then ranks among the partial matches; full matches stay first. ``docs_out`` receives
        the documents of the full matches, then of the partial ones.
        """
        qwords = query_words(query)
        if not qwords or not self._n_live or limit <= 0:
            return [], []
        unique = list(dict.fromkeys(qwords))
        # A word being typed (the last one, in autocomplete) or not in the vocabulary at all
        # may be the start of a longer word; a complete known word is taken as it is.
        variants = {
            w: self._variants(
                w,
                prefix_ok=(partial_last and w == qwords[-1])
                or (len(w) >= 3 and self._live_term(w) is None),
            )
            for w in unique
        }
        if far:
            variants = {w: found or self._far_variants(w) for w, found in variants.items()}
        # Two tallies: how much of the query a document matches anywhere, and in its title.
        n_docs = int(self._bases[-1])
        # Each word's best weights per document go into the scratch pair before they join
        # the tallies; all zero between words (see _tally_word).
        anywhere, in_title, best_title, best_any, spare = _query_arrays(n_docs)
        best_possible = 0.0
        unknown = 0
        for word in unique:
            if not variants[word]:
                unknown += 1
                continue
            # A stand-in never outweighs the word as typed: "for" must not count as "forbes".
            # For a word that is not in the vocabulary every correction weighs the same as the
            # commonest one: a typo is likelier to be of a common word than of a rare one.
            exact = self._live_term(word)
            if exact is not None:
                ceiling = float(self._idf[exact])
            else:
                ceiling = min(float(self._idf[t]) for t, _ in variants[word])
            weighed = [
                (term, min(float(self._idf[term]), ceiling) * quality)
                for term, quality in variants[word]
            ]
            best_possible += max([0.0] + [weight for _, weight in weighed])
            self._tally_word(weighed, anywhere, in_title, (best_title, best_any))
        if unknown and best_possible:
            # A word found nowhere counts against every document alike, as half an average
            # word: enough to sink weak matches, not enough to hide a good one.
            best_possible += unknown * 0.5 * best_possible / (len(unique) - unknown)
        scale = 1.0 / best_possible if best_possible else 0.0
        # In place (the arrays are this thread's, for this query): the same operations, in
        # the same order, as coverage_all + TITLE_WEIGHT * in_title * scale.
        coverage_all = anywhere
        coverage_all *= scale
        scores = in_title
        scores *= TITLE_WEIGHT
        scores *= scale
        scores += coverage_all

        allowed = self._filter_mask(topic, provider, since)
        if allowed is not None:
            scores[~allowed] = 0.0
        if self._n_live < n_docs:
            scores[~self._alive] = 0.0  # replaced or removed since their segment was built
        candidates = self._shortlist(scores, spare)
        closeness: dict[int, float] = {}
        embedder = self._shared.embedder
        # Meaning joins only when some query word is a word of the collection: a string of
        # letters that means nothing has nearest neighbours too, and they would be noise.
        if by_meaning and embedder is not None and self.semantic and unknown < len(unique):
            vector = embedder.embed_one(" ".join(qwords))
            if int((coverage_all[candidates] >= MIN_COVERAGE).sum()) < limit:
                # Too few articles hold the query's words: look for those that say it in
                # other words. With a page of full matches, meaning only weighs in among them
                # (the neighbours would rank below them anyway, and cost a pass over all).
                near_docs, near_cosine = self._nearest(vector, allowed, MEANING_DEPTH)
                fresh = np.setdiff1d(near_docs, candidates)
                candidates = np.concatenate([candidates, fresh])
                closeness = dict(zip(near_docs.tolist(), near_cosine.tolist(), strict=True))
            missing = [d for d in candidates.tolist() if d not in closeness]
            if missing:
                closeness.update(
                    zip(missing, self._cosines(np.asarray(missing), vector), strict=True)
                )
            if len(candidates) > RERANK_DEPTH:
                # Re-ranking by words costs the most per candidate: as without meaning, only
                # the best RERANK_DEPTH (by words and meaning) go on to it.
                before = scores[candidates] + np.asarray(
                    [MEANING_WEIGHT * _MAX_FINAL * closeness[d] for d in candidates.tolist()],
                    dtype=np.float32,
                )
                candidates = candidates[self._best_first(candidates, before)[:RERANK_DEPTH]]
        if not len(candidates):
            return [], []

        qtext = " ".join(qwords)
        # term -> the query positions it can fill (a term may stand for several query words)
        # as a bit mask: bit k set when the term can fill query position k
        slots: dict[int, int] = {}
        for position, word in enumerate(qwords):
            for term, _ in variants[word]:
                slots[term] = slots.get(term, 0) | 1 << position
        # Ties go by the article itself (quality, date, URL), never by its place in the index:
        # the same corpus ranks the same however it was built.
        ranked: list[tuple[float, float, float, int, float, int]] = [
            (
                -(
                    lexical
                    # An article found by meaning alone shares no query word: nothing to
                    # re-rank by words (and half the candidates' cost is spared).
                    + (self._rerank_bonus(doc, qtext, slots, len(qwords)) if lexical else 0.0)
                    + MEANING_WEIGHT * _MAX_FINAL * closeness.get(doc, 0.0)
                ),
                -quality,
                -published,
                url,
                float(coverage_all[doc]),
                doc,
            )
            for doc, lexical, quality, published, url in zip(
                candidates.tolist(),
                scores[candidates].tolist(),
                self._quality[candidates].tolist(),
                self._published[candidates].tolist(),
                self._url_keys[candidates].tolist(),
                strict=True,
            )
        ]
        ranked.sort()

        hits: list[Hit] = []
        near: list[Hit] = []
        hit_docs: list[int] = []
        near_docs: list[int] = []
        top = _MAX_FINAL * (1.0 + MEANING_WEIGHT) if closeness else _MAX_FINAL
        for negative_final, _q, _p, _u, coverage, doc in ranked:
            score = round(100.0 * min(-negative_final / top, 1.0), 1)
            if coverage >= MIN_COVERAGE and len(hits) < limit and not far:
                hits.append(self._hit(doc, score))
                hit_docs.append(doc)
            elif (
                (coverage < MIN_COVERAGE or far)
                and len(near) < limit
                and (coverage > 0 or closeness.get(doc, 0.0) >= MIN_MEANING)
            ):
                near.append(self._hit(doc, score))
                near_docs.append(doc)
        if docs_out is not None:
            docs_out[:] = hit_docs + near_docs
        return hits, near

    def _tally_word(
        self,
        weighed: list[tuple[int, float]],
        anywhere: np.ndarray,
        in_title: np.ndarray,
        scratch: tuple[np.ndarray, np.ndarray],
    ) -> None:
        """Add one query word to the tallies: each document's best weight among the word's
        ``weighed`` terms to ``anywhere`` (title or excerpt) and its best in the title to
        ``in_title``. ``scratch``: two arrays like the tallies, all zero, left so.

        Only the word's own documents are touched, unless they are a good part of the
        collection (a common word): then whole arrays cost less than gathering them. Either
        way each document gets the same float32 additions, in the same order.
        """
        # (documents, weight, whether an earlier term of the word may have set them already)
        title_parts: list[tuple[np.ndarray, float, bool]] = []
        excerpt_parts: list[tuple[np.ndarray, float, bool]] = []
        for number, (term, weight) in enumerate(weighed):
            for segment, base in self._placed:
                docs = segment.title_post.of(term)
                if len(docs):
                    title_parts.append((docs + base if base else docs, weight, number > 0))
                docs = segment.excerpt_post.of(term)
                if len(docs):
                    excerpt_parts.append((docs + base if base else docs, weight, number > 0))
        if not (title_parts or excerpt_parts):
            return
        best_title, best_any = scratch
        for best, parts in ((best_title, title_parts), (best_any, excerpt_parts)):
            for docs, weight, overlaps in parts:
                if overlaps:
                    best[docs] = np.maximum(best[docs], weight)
                else:
                    # The word's first term: its documents are still 0 here (a term's
                    # documents are distinct, in every segment), so the maximum is the weight
                    # itself, set without reading them first.
                    best[docs] = max(weight, 0.0)
        postings = sum(len(part[0]) for part in title_parts + excerpt_parts)
        if postings * DENSE_TALLY_SHARE > len(anywhere):
            np.maximum(best_any, best_title, out=best_any)
            anywhere += best_any
            in_title += best_title
            best_any.fill(0.0)
            best_title.fill(0.0)
            return
        # A document listed twice gets the same sum twice: the last write wins, and it is
        # the same value.
        docs = np.concatenate([part[0] for part in title_parts + excerpt_parts])
        in_title_docs = np.concatenate([part[0] for part in title_parts]) if title_parts else None
        anywhere[docs] += np.maximum(best_any[docs], best_title[docs])
        if in_title_docs is not None:
            in_title[in_title_docs] += best_title[in_title_docs]
            best_title[in_title_docs] = 0.0
        best_any[docs] = 0.0

    def _cosines(self, docs: np.ndarray, vector: np.ndarray) -> list[float]:
        """The cosine of ``vector`` with each of ``docs`` (8-bit vectors)."""
        cosine = np.empty(len(docs), dtype=np.float32)
        owner = np.searchsorted(self._bases, docs, side="right") - 1
        for number in np.unique(owner).tolist():
            mine = owner == number
            meaning = self._segments[number].meaning
            assert meaning is not None
            cosine[mine] = meaning.cosine(docs[mine] - self._bases[number], vector)
        return cosine.tolist()

    def _shortlist(self, scores: np.ndarray, spare: np.ndarray) -> np.ndarray:
        """The RERANK_DEPTH best-scored documents; ties at the cut broken by the article.
        ``spare``: an array like ``scores`` to partition a copy in (scores are never < 0, so
        the cut among all documents is the cut among those that scored)."""
        if np.count_nonzero(scores) <= RERANK_DEPTH:
            return np.flatnonzero(scores)
        np.copyto(spare, scores)
        at = len(spare) - RERANK_DEPTH
        spare.partition(at)
        cut = spare[at]
        above = np.flatnonzero(scores > cut)
        tied = np.flatnonzero(scores == cut)
        wanted = RERANK_DEPTH - len(above)
        if len(tied) > wanted:
            tied = tied[self._best_first(tied)[:wanted]]
        return np.concatenate([above, tied])

    def _best_first(self, docs: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """The order of ``docs`` by ``values`` (highest first), ties by the article itself:
        quality, then date, then URL, never its place in the index."""
        keys = (self._url_keys[docs], -self._published[docs], -self._quality[docs])
        return np.lexsort(keys if values is None else (*keys, -values))

    def _rerank_bonus(self, doc: int, qtext: str, slots: dict[int, int], n: int) -> float:
        """Evidence a bag of words misses; ``slots`` maps a term to the query positions it fills
        (bit k: position k)."""
        segment, local = self._locate(doc)
        title = segment.title.of(local).tolist()
        excerpt = segment.excerpt.of(local).tolist()
        pairs = max(n - 1, 1)
        title_hits, title_pairs = _adjacency(title, slots)
        _, excerpt_pairs = _adjacency(excerpt, slots)
        title_adjacent = title_pairs / pairs
        excerpt_adjacent = excerpt_pairs / pairs
        # The whole query, in order, in one field: the strongest evidence there is.
        whole = n > 1 and max(title_adjacent, excerpt_adjacent) >= 1
        phrase = 1.0 if whole else 0.0
        title_cover = title_hits / len(title) if title else 0.0
        terms = self._vocab.terms
        title_text = " ".join(terms[t] for t in title)
        ratio = fuzz.ratio(qtext, title_text) / 100.0
        exact = 1.0 if qtext == title_text else 0.0
        return (
            ADJ_TITLE * title_adjacent
            + ADJ_EXCERPT * excerpt_adjacent
            + PHRASE * phrase
            + TITLE_COVER * title_cover
            + RATIO * ratio
            + EXACT * exact
        )

    def _nearest(
        self, vector: np.ndarray, allowed: np.ndarray | None, depth: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``depth`` live documents nearest ``vector`` in meaning, nearest first, with
        their cosines. Shortlisted by sign bits (Hamming distance), ranked by the 8-bit cosine."""
        n_docs = int(self._bases[-1])
        signs = query_signs(vector)
        distance = np.empty(n_docs, dtype=np.uint16)
        for segment, base in self._placed:
            assert segment.meaning is not None
            distance[base : base + segment.size] = segment.meaning.hamming(signs)
        eligible = self._alive if allowed is None else self._alive & allowed
        if self._n_live < n_docs or allowed is not None:
            distance[~eligible] = _FAR  # never shortlisted
        if n_docs <= MEANING_SHORTLIST:
            pool = np.flatnonzero(distance < _FAR)
        else:
            # Every document closer than the cut, then those at the cut by the article itself:
            # the shortlist never depends on where a document sits in the index.
            cut = min(
                int(np.partition(distance, MEANING_SHORTLIST - 1)[MEANING_SHORTLIST - 1]), _FAR - 1
            )
            within = np.flatnonzero(distance <= cut)  # one pass over the collection
            at_cut = distance[within] == cut
            closer, tied = within[~at_cut], within[at_cut]
            order = np.argsort(self._url_keys[tied], kind="stable")
            pool = np.concatenate([closer, tied[order[: MEANING_SHORTLIST - len(closer)]]])
        if not len(pool):
            return pool, np.zeros(0, dtype=np.float32)
        cosine = np.asarray(self._cosines(pool, vector), dtype=np.float32)
        order = self._best_first(pool, cosine)[:depth]
        return pool[order], cosine[order]

    def _variants(self, word: str, *, prefix_ok: bool) -> list[tuple[int, float]]:
        """Vocabulary terms ``word`` may stand for, with how sure we are (1.0 = as typed)."""
        found: dict[int, float] = {}
        exact = self._live_term(word)
        if exact is not None:
            found[exact] = 1.0
        if MIN_TYPO_LENGTH <= len(word) <= MAX_TYPO_LENGTH + 1:
            # One letter over the limit may still be an indexed word plus a typed extra letter.
            quality = TYPO_QUALITY if exact is None else TYPO_QUALITY_WHEN_EXACT
            for term in self._typo_neighbours(word):
                if term != exact:
                    found.setdefault(term, quality)
        elif exact is None and len(word) == MIN_TYPO_LENGTH - 1:
            # A four-letter word that lost a letter ("beta" -> "eta"): only that edit, since
            # any three letters are one substitution away from too many words.
            terms = self._vocab.terms
            for term in self._live(self._shared.typos.lookup([word])):
                if len(terms[term]) == MIN_TYPO_LENGTH and word in one_deletions(terms[term]):
                    found.setdefault(term, TYPO_QUALITY)
        if prefix_ok:
            terms = self._vocab.terms
            for term in self._prefix_matches(word):
                if term not in found:
                    # "recog" -> "recognition": surer the more of the word was typed.
                    found[term] = 0.5 + 0.4 * len(word) / len(terms[term])
        return list(found.items())

    def _typo_neighbours(self, word: str) -> list[int]:
        probes = [word, *one_deletions(word)]
        candidates = set(self._live(self._shared.typos.lookup(probes)))
        for probe in probes:
            if len(probe) >= MIN_TYPO_LENGTH - 1:
                exact = self._live_term(probe)
                if exact is not None:
                    candidates.add(exact)  # the word had one letter too many
        terms = self._vocab.terms
        return sorted(t for t in candidates if OSA.distance(word, terms[t], score_cutoff=1) <= 1)

    def _prefix_matches(self, word: str) -> list[int]:
        matches: list[int] = []
        shared = self._shared
        start = bisect.bisect_left(shared.sorted_terms, word)
        for i in range(start, len(shared.sorted_terms)):
            term = shared.sorted_terms[i]
            if not term.startswith(word):
                break
            if term != word:
                matches.append(shared.sorted_ids[i])
        start = bisect.bisect_left(self._recent_terms, (word, -1))
        for term, tid in itertools.islice(self._recent_terms, start, None):
            if not term.startswith(word):
                break
            if term != word:
                matches.append(tid)
        matches = [t for t in matches if t < self._n_terms and self._df[t] > 0]
        if len(matches) > MAX_PREFIX_EXPANSION:
            # Keep the commonest completions: the likeliest meaning of a short prefix. Ties
            # alphabetically, so that the choice never depends on when a word arrived.
            terms = self._vocab.terms
            matches.sort(key=lambda t: (-self._df[t], terms[t]))
            matches = matches[:MAX_PREFIX_EXPANSION]
        return matches

    def _far_variants(self, word: str) -> list[tuple[int, float]]:
        """Vocabulary words spelt like ``word`` (two typos or more): shared letter trigrams."""
        if not 3 <= len(word) <= MAX_TYPO_LENGTH:
            return []
        grams = trigrams(word)
        found = self._shared.grams.lookup(grams)
        found = found[found < self._n_terms]
        if not len(found):
            return []
        ids, shared_counts = np.unique(found, return_counts=True)
        live = self._df[ids] > 0
        ids, shared_counts = ids[live], shared_counts[live]
        terms = self._vocab.terms
        scored = []
        for tid, count in zip(ids.tolist(), shared_counts.tolist(), strict=True):
            # Dice: shared trigrams over the trigrams of both words (padded: len + 2 - 2).
            similarity = 2.0 * count / (len(grams) + len(terms[tid]))
            if similarity >= FAR_MIN_SIMILARITY:
                scored.append((similarity, terms[tid], tid))
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [(tid, TYPO_QUALITY * sim) for sim, _term, tid in scored[:FAR_CANDIDATES]]

    def _filter_mask(
        self, topic: str | None, provider: str | None, since: datetime | None
    ) -> np.ndarray | None:
        if topic is None and provider is None and since is None:
            return None
        mask = np.ones(int(self._bases[-1]), dtype=bool)
        if topic is not None:
            wanted = self._shared.topics.ids.get(fold(topic))
            in_topic = np.zeros_like(mask)
            if wanted is not None:
                for segment, base in self._placed:
                    holders = segment.topic.docs()[segment.topic.flat == wanted]
                    in_topic[holders + base] = True
            mask &= in_topic
        if provider is not None:
            matching = sorted(self._source_ids(provider))
            mask &= np.isin(self._provider, np.asarray(matching, dtype=np.int32))
        if since is not None:
            mask &= self._published >= since.timestamp()
        return mask


def unique_docs(items: Iterable[IndexDoc | Article]) -> list[IndexDoc]:
    """One document per URL, the last given winning."""
    return list({d.url: d for d in map(as_doc, items)}.values())


def _joined(parts: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def _grown(values: np.ndarray, size: int) -> np.ndarray:
    """A copy of ``values`` zero-padded to ``size``."""
    grown = np.zeros(size, dtype=values.dtype)
    grown[: len(values)] = values
    return grown


def _counts(ids: np.ndarray, size: int) -> np.ndarray:
    return (
        np.bincount(ids, minlength=size).astype(np.int64)[:size]
        if len(ids)
        else np.zeros(size, dtype=np.int64)
    )


_THREAD_ARRAYS = threading.local()


def _query_arrays(size: int) -> list[np.ndarray]:
    """Five float32 arrays of ``size`` for one query, this thread's own, reused: four of
    zeros, and a spare one for a copy.

    A query over 100,000 articles needs several arrays of 400 KB; allocated anew, each is a
    fresh mapping (see bot.memory.map_large_allocations) whose pages fault in one by one and
    whose unmapping interrupts the other cores, every query. Zeroing them costs far less.
    """
    arrays: list[np.ndarray] | None = getattr(_THREAD_ARRAYS, "arrays", None)
    if arrays is None or len(arrays[0]) != size:
        arrays = [np.zeros(size, dtype=np.float32) for _ in range(5)]
        _THREAD_ARRAYS.arrays = arrays
    else:
        for array in arrays[:4]:  # all four: a query that raised may have left any one dirty
            array.fill(0.0)
    return arrays


def _adjacency(field: list[int], slots: dict[int, int]) -> tuple[int, int]:
    """(tokens of ``field`` that match a query word, query-word pairs found side by side).

    ``slots`` maps a term to the query positions it can fill, bit k for position k. A token
    filling position k right after one filling k - 1 finds the pair (k - 1, k): the bits of
    ``(mask before << 1) & mask`` over the field, each pair counted once. Every step is a C
    loop (map, reduce): this runs twice for each of the re-ranked candidates of every query.
    """
    masks = list(map(slots.get, field, itertools.repeat(0)))
    hits = len(masks) - masks.count(0)
    if hits < 2:
        return hits, 0
    shifted = map(operator.lshift, masks, itertools.repeat(1))
    pairs = functools.reduce(operator.or_, map(operator.and_, shifted, masks[1:]), 0)
    return hits, pairs.bit_count()
