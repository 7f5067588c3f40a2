"""The in-memory search index: pure and synchronous, built once per corpus, then read-only.

How a query is answered, and why:

1. **Words, not strings.** Whole-string fuzzy ratios drown a one-letter typo in a long title, so
   titles and excerpts are split into folded words (:mod:`bot.tokens`) and each query word is
   matched against the *vocabulary*: exactly, within one edit (insert, delete, substitute or
   swap two letters; found through a SymSpell-style table of one-letter deletions, so a lookup
   costs a few dictionary probes however large the vocabulary), or as the start of a longer word.
2. **Rarity.** Each matched word adds its inverse document frequency; a title match weighs more
   than an excerpt match. Postings are numpy arrays, so scoring the whole corpus is a handful of
   vector operations per query word rather than a Python loop over documents.
3. **Re-ranking a short list.** The best few dozen candidates are re-scored with what a bag of
   words misses: query words found next to each other and in order (in the title or the
   excerpt), how much of the title the query covers, and rapidfuzz's ratio between the query
   and the title, which is good at exactly this: ranking a short list.

The index is immutable; a reload builds a new one and the caller swaps the reference, so a query
always sees one whole corpus.

**Bounded per article.** Whatever one seed file holds (a megabyte of base64, a title of 900,000
letters, 200,000 distinct words), building stays linear in the corpus: only the first
:data:`MAX_TITLE_WORDS` words of a title and :data:`MAX_EXCERPT_WORDS` of an excerpt are indexed,
a word is cut to :data:`bot.tokens.MAX_WORD_LENGTH` characters, and a word that long gets no
typo variants (it is a blob, not a word anyone mistypes). So one article adds at most
``MAX_TITLE_WORDS * 2 + MAX_EXCERPT_WORDS`` words to the vocabulary (its title's words and
compounds, its excerpt's words), each with at most ``MAX_TYPO_LENGTH`` deletions.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from .articles import Article
from .tokens import MAX_WORD_LENGTH, compounds, fold, folded_words, query_words, words

# A query word found in the title counts this much extra over one found only in the excerpt.
TITLE_WEIGHT = 0.5
TYPO_QUALITY = 0.8
# A typo variant of a word that exists as typed is less likely to be what the user meant.
TYPO_QUALITY_WHEN_EXACT = 0.55
MIN_TYPO_LENGTH = 4
# A word of MAX_WORD_LENGTH characters (maybe cut from a longer blob) is matched exactly only: its
# deletion variants would cost MAX_WORD_LENGTH entries each, for a word no one types by hand.
MAX_TYPO_LENGTH = MAX_WORD_LENGTH - 1
# Words indexed per field of one article. Real titles have at most 27 words, real excerpts 59
# (2,285 files); these caps leave room for far longer ones and bound what one file can cost.
MAX_TITLE_WORDS = 64
MAX_EXCERPT_WORDS = 256
MAX_PREFIX_EXPANSION = 40
RERANK_DEPTH = 40
# Below this share of the query's weight matched, a document is not a hit, only a suggestion.
MIN_COVERAGE = 0.45

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


@dataclass(frozen=True, slots=True)
class Hit:
    article: Article
    score: float  # 0..100, higher is better


@dataclass(frozen=True, slots=True)
class _Postings:
    """Compressed-sparse-row postings: docs of term t are ``docs[ptr[t]:ptr[t + 1]]``."""

    ptr: np.ndarray
    docs: np.ndarray

    def of(self, term: int) -> np.ndarray:
        return self.docs[self.ptr[term] : self.ptr[term + 1]]


class SearchIndex:
    """Build with :meth:`build`; then :meth:`search`, :meth:`suggest_titles`, :meth:`topics`."""

    def __init__(self, articles: list[Article]) -> None:
        self._articles = articles
        self._by_url = {a.url: i for i, a in enumerate(articles)}
        self._vocab: dict[str, int] = {}
        self._titles_text: list[str] | None = None
        self._build_text_index(articles)
        self._build_filters(articles)

    @classmethod
    def build(cls, articles: Iterable[Article]) -> SearchIndex:
        return cls(list(articles))

    # --- building ---------------------------------------------------------------------------

    def _build_text_index(self, articles: list[Article]) -> None:
        vocab = self._vocab
        title_flat: list[int] = []
        excerpt_flat: list[int] = []
        title_off = [0]
        excerpt_off = [0]
        extra_terms: list[int] = []  # (term, doc) pairs for joined compounds, title field
        extra_docs: list[int] = []
        intern = vocab.setdefault
        for doc, article in enumerate(articles):
            title = fold(article.title)
            title_words = folded_words(title, MAX_TITLE_WORDS)
            title_flat.extend([intern(w, len(vocab)) for w in title_words])
            title_off.append(len(title_flat))
            excerpt_words = folded_words(fold(article.excerpt), MAX_EXCERPT_WORDS)
            excerpt_flat.extend([intern(w, len(vocab)) for w in excerpt_words])
            excerpt_off.append(len(excerpt_flat))
            for word in compounds(title, MAX_TITLE_WORDS):
                extra_terms.append(intern(word, len(vocab)))
                extra_docs.append(doc)

        self._terms = list(vocab)
        n_docs, n_terms = len(articles), len(vocab)
        self._title_flat = np.asarray(title_flat, dtype=np.int32)
        self._title_off = np.asarray(title_off, dtype=np.int64)
        self._excerpt_flat = np.asarray(excerpt_flat, dtype=np.int32)
        self._excerpt_off = np.asarray(excerpt_off, dtype=np.int64)

        title_docs = np.repeat(np.arange(n_docs, dtype=np.int32), np.diff(self._title_off))
        excerpt_docs = np.repeat(np.arange(n_docs, dtype=np.int32), np.diff(self._excerpt_off))
        t_terms = np.concatenate([self._title_flat, np.asarray(extra_terms, dtype=np.int32)])
        t_docs = np.concatenate([title_docs, np.asarray(extra_docs, dtype=np.int32)])
        self._title_post = _postings(t_terms, t_docs, n_terms)
        self._excerpt_post = _postings(self._excerpt_flat, excerpt_docs, n_terms)

        # Document frequency over both fields: a term in the title and the excerpt counts once.
        pairs = _sorted_unique(
            np.concatenate([t_terms, self._excerpt_flat]).astype(np.int64) * max(n_docs, 1)
            + np.concatenate([t_docs, excerpt_docs])
        )
        df = np.bincount(pairs // max(n_docs, 1), minlength=n_terms).astype(np.float64)
        self._df = df
        self._idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)

        # One-deletion neighbourhoods (SymSpell, distance 1): "recognition" and "recognitoin"
        # share the deletion "recogniton", so a typo is found with a few dictionary probes.
        deletes: dict[str, int | list[int]] = {}
        for term, tid in vocab.items():
            if not MIN_TYPO_LENGTH <= len(term) <= MAX_TYPO_LENGTH:
                continue
            for variant in _one_deletions(term):
                found = deletes.get(variant)
                if found is None:
                    deletes[variant] = tid
                elif isinstance(found, int):
                    if found != tid:
                        deletes[variant] = [found, tid]
                elif found[-1] != tid:
                    found.append(tid)
        self._deletes = deletes
        order = sorted(range(n_terms), key=self._terms.__getitem__)
        self._sorted_terms = [self._terms[i] for i in order]
        self._sorted_ids = order

    def _build_filters(self, articles: list[Article]) -> None:
        self._published = np.asarray([a.published.timestamp() for a in articles], dtype=np.float64)
        quality = [a.quality if a.quality is not None else -1.0 for a in articles]
        self._quality = np.asarray(quality, dtype=np.float32)
        topic_docs: dict[str, list[int]] = {}
        self._topic_names: dict[str, str] = {}
        for doc, article in enumerate(articles):
            for topic in article.topics:
                key = fold(topic)
                topic_docs.setdefault(key, []).append(doc)
                self._topic_names.setdefault(key, topic)
        self._topic_docs = {k: np.asarray(v, dtype=np.int32) for k, v in topic_docs.items()}
        self._provider_keys = [fold(f"{a.provider} {a.provider_domain}") for a in articles]
        counts = Counter(a.provider or a.provider_domain for a in articles)
        counts.pop("", None)
        self._providers = [name for name, _ in sorted(counts.items(), key=lambda p: (-p[1], p[0]))]
        # Recency order for autocomplete with an empty box: newest first.
        self._newest_first = np.argsort(-self._published, kind="stable")

    # --- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._articles)

    @property
    def articles(self) -> Sequence[Article]:
        return self._articles

    def get(self, url: str) -> Article | None:
        doc = self._by_url.get(url)
        return None if doc is None else self._articles[doc]

    def topics(self) -> list[str]:
        """Every topic, most used first."""
        ranked = sorted(self._topic_docs, key=lambda k: (-len(self._topic_docs[k]), k))
        return [self._topic_names[k] for k in ranked]

    def providers(self) -> list[str]:
        """Every source's name (its domain when it has none), most used first."""
        return list(self._providers)

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
        hits, _ = self._ranked(query, limit, topic, provider, since)
        return hits

    def suggestions(self, query: str, limit: int = 3) -> list[Article]:
        """Closest titles for a query that found nothing good enough (for a no-hit reply)."""
        hits, near = self._ranked(query, limit, None, None, None)
        found = [h.article for h in hits] + near
        if found:
            return found[:limit]
        # Nothing shares even a word: fall back on whole-title similarity.
        folded = " ".join(words(query))
        if not folded:
            return []
        # rapidfuzz's own loop over every title: C speed, a few ms at 10k titles.
        best = process.extract(
            folded, self._folded_titles(), scorer=fuzz.partial_ratio, limit=limit
        )
        return [self._articles[doc] for _title, _score, doc in best]

    def _folded_titles(self) -> list[str]:
        # Built on first need: most indexes never meet a query that shares no word at all.
        if self._titles_text is None:
            self._titles_text = [self._title_text(d) for d in range(len(self._articles))]
        return self._titles_text

    def suggest_titles(self, text: str, limit: int = 25) -> list[Article]:
        """Titles for autocomplete: newest first when empty, else the best matches so far."""
        if not words(text):
            return [self._articles[d] for d in self._newest_first[:limit]]
        hits, near = self._ranked(text, limit, None, None, None, partial_last=True)
        return ([h.article for h in hits] + near)[:limit]

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
    ) -> tuple[list[Hit], list[Article]]:
        qwords = query_words(query)
        if not qwords or not self._articles or limit <= 0:
            return [], []
        unique = list(dict.fromkeys(qwords))
        # A word being typed (the last one, in autocomplete) or not in the vocabulary at all
        # may be the start of a longer word; a complete known word is taken as it is.
        variants = {
            w: self._variants(
                w,
                prefix_ok=(partial_last and w == qwords[-1])
                or (len(w) >= 3 and w not in self._vocab),
            )
            for w in unique
        }
        # Two tallies: how much of the query a document matches anywhere, and in its title.
        anywhere = np.zeros(len(self._articles), dtype=np.float32)
        in_title = np.zeros_like(anywhere)
        best_possible = 0.0
        unknown = 0
        for word in unique:
            if not variants[word]:
                unknown += 1
                continue
            best_any = np.zeros_like(anywhere)
            best_title = np.zeros_like(anywhere)
            # A stand-in never outweighs the word as typed: "for" must not count as "forbes".
            # For a word that is not in the vocabulary every correction weighs the same as the
            # commonest one: a typo is likelier to be of a common word than of a rare one.
            exact = self._vocab.get(word)
            if exact is not None:
                ceiling = float(self._idf[exact])
            else:
                ceiling = min(float(self._idf[t]) for t, _ in variants[word])
            top_weight = 0.0
            for term, quality in variants[word]:
                weight = min(float(self._idf[term]), ceiling) * quality
                top_weight = max(top_weight, weight)
                docs = self._title_post.of(term)
                if len(docs):
                    best_title[docs] = np.maximum(best_title[docs], weight)
                docs = self._excerpt_post.of(term)
                if len(docs):
                    best_any[docs] = np.maximum(best_any[docs], weight)
            np.maximum(best_any, best_title, out=best_any)
            anywhere += best_any
            in_title += best_title
            best_possible += top_weight
        if unknown and best_possible:
            # A word found nowhere counts against every document alike, as half an average
            # word: enough to sink weak matches, not enough to hide a good one.
            best_possible += unknown * 0.5 * best_possible / (len(unique) - unknown)
        scale = 1.0 / best_possible if best_possible else 0.0
        coverage_all = anywhere * scale
        scores = coverage_all + TITLE_WEIGHT * in_title * scale

        allowed = self._filter_mask(topic, provider, since)
        if allowed is not None:
            scores[~allowed] = 0.0
        candidates = np.flatnonzero(scores)
        if not len(candidates):
            return [], []
        if len(candidates) > RERANK_DEPTH:
            part = np.argpartition(-scores[candidates], RERANK_DEPTH)[:RERANK_DEPTH]
            candidates = candidates[part]

        qtext = " ".join(qwords)
        # term -> the query positions it can fill (a term may stand for several query words)
        slots: dict[int, list[int]] = {}
        for position, word in enumerate(qwords):
            for term, _ in variants[word]:
                slots.setdefault(term, []).append(position)
        ranked: list[tuple[float, float, int]] = []
        for doc in candidates.tolist():
            coverage = float(coverage_all[doc])
            final = float(scores[doc]) + self._rerank_bonus(doc, qtext, slots, len(qwords))
            ranked.append((final, coverage, doc))
        ranked.sort(key=lambda r: (-r[0], -self._quality[r[2]], -self._published[r[2]]))

        hits: list[Hit] = []
        near: list[Article] = []
        top_final = _MAX_FINAL
        for final, coverage, doc in ranked:
            if coverage >= MIN_COVERAGE and len(hits) < limit:
                score = round(100.0 * min(final / top_final, 1.0), 1)
                hits.append(Hit(self._articles[doc], score))
            elif coverage < MIN_COVERAGE and len(near) < limit:
                near.append(self._articles[doc])
        return hits, near

    def _rerank_bonus(self, doc: int, qtext: str, slots: dict[int, list[int]], n: int) -> float:
        """Evidence a bag of words misses; ``slots`` maps a term to the query positions it fills."""
        title = self._title_flat[self._title_off[doc] : self._title_off[doc + 1]].tolist()
        excerpt = self._excerpt_flat[self._excerpt_off[doc] : self._excerpt_off[doc + 1]].tolist()
        pairs = max(n - 1, 1)
        title_hits, title_pairs = _adjacency(title, slots, n)
        _, excerpt_pairs = _adjacency(excerpt, slots, n)
        title_adjacent = title_pairs / pairs
        excerpt_adjacent = excerpt_pairs / pairs
        # The whole query, in order, in one field: the strongest evidence there is.
        whole = n > 1 and max(title_adjacent, excerpt_adjacent) >= 1
        phrase = 1.0 if whole else 0.0
        title_cover = title_hits / len(title) if title else 0.0
        title_text = " ".join(self._terms[t] for t in title)
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

    def _title_text(self, doc: int) -> str:
        title = self._title_flat[self._title_off[doc] : self._title_off[doc + 1]]
        return " ".join(self._terms[t] for t in title.tolist())

    def _variants(self, word: str, *, prefix_ok: bool) -> list[tuple[int, float]]:
        """Vocabulary terms ``word`` may stand for, with how sure we are (1.0 = as typed)."""
        found: dict[int, float] = {}
        exact = self._vocab.get(word)
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
            for term in _as_list(self._deletes.get(word)):
                found.setdefault(term, TYPO_QUALITY)
        if prefix_ok:
            for term in self._prefix_matches(word):
                if term not in found:
                    # "recog" -> "recognition": surer the more of the word was typed.
                    found[term] = 0.5 + 0.4 * len(word) / len(self._terms[term])
        return list(found.items())

    def _typo_neighbours(self, word: str) -> set[int]:
        probes = [word, *_one_deletions(word)]
        candidates: set[int] = set()
        for probe in probes:
            exact = self._vocab.get(probe)
            if exact is not None and len(probe) >= MIN_TYPO_LENGTH - 1:
                candidates.add(exact)  # the word had one letter too many
            found = self._deletes.get(probe)
            if found is None:
                continue
            if isinstance(found, int):
                candidates.add(found)
            else:
                candidates.update(found)
        return {t for t in candidates if OSA.distance(word, self._terms[t], score_cutoff=1) <= 1}

    def _prefix_matches(self, word: str) -> list[int]:

        start = bisect.bisect_left(self._sorted_terms, word)
        matches: list[int] = []
        for i in range(start, len(self._sorted_terms)):
            term = self._sorted_terms[i]
            if not term.startswith(word):
                break
            if term != word:
                matches.append(self._sorted_ids[i])
        if len(matches) > MAX_PREFIX_EXPANSION:
            # Keep the commonest completions: the likeliest meaning of a short prefix.
            matches.sort(key=lambda t: -self._df[t])
            matches = matches[:MAX_PREFIX_EXPANSION]
        return matches

    def _filter_mask(
        self, topic: str | None, provider: str | None, since: datetime | None
    ) -> np.ndarray | None:
        if topic is None and provider is None and since is None:
            return None
        mask = np.ones(len(self._articles), dtype=bool)
        if topic is not None:
            in_topic = np.zeros_like(mask)
            docs = self._topic_docs.get(fold(topic))
            if docs is not None:
                in_topic[docs] = True
            mask &= in_topic
        if provider is not None:
            wanted = fold(provider).strip()
            mask &= np.fromiter((wanted in k for k in self._provider_keys), dtype=bool)
        if since is not None:
            mask &= self._published >= since.timestamp()
        return mask


def _postings(terms: np.ndarray, docs: np.ndarray, n_terms: int) -> _Postings:
    """Group (term, doc) pairs into sorted, de-duplicated per-term doc arrays."""
    if len(terms):
        n = max(int(docs.max(initial=0)) + 1, 1)
        keys = _sorted_unique(terms.astype(np.int64) * n + docs)
        terms, docs = (keys // n).astype(np.int32), (keys % n).astype(np.int32)
    counts = np.bincount(terms, minlength=n_terms)
    ptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return _Postings(ptr=ptr, docs=docs.astype(np.int32))


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """np.unique by sorting: several times faster than its hash path on int64 keys."""
    keys = np.sort(keys)
    if len(keys) < 2:
        return keys
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def _as_list(found: int | list[int] | None) -> list[int]:
    if found is None:
        return []
    return [found] if isinstance(found, int) else found


def _one_deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _adjacency(field: list[int], slots: dict[int, list[int]], n: int) -> tuple[int, int]:
    """(tokens of ``field`` that match a query word, query-word pairs found side by side)."""
    positions: list[set[int]] = [set() for _ in range(n)]
    hits = 0
    for place, term in enumerate(field):
        filled = slots.get(term)
        if filled is not None:
            hits += 1
            for slot in filled:
                positions[slot].add(place)
    adjacent = sum(
        1 for here, there in itertools.pairwise(positions) if any(p + 1 in there for p in here)
    )
    return hits, adjacent
