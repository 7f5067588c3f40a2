"""The search index stays linear in the corpus whatever one seed file holds.

A long unbroken token (an inline base64 or hex blob) used to make the index grow with the square
of its length: every vocabulary word got all its one-letter deletions (the typo table), and the
compound-word pattern re-scanned a run of letters from each of its positions. The bounds are
asserted on the index's own tables (deterministic sizes), never on seconds.
"""

from __future__ import annotations

import random
import string
import tracemalloc
from datetime import UTC, datetime

import pytest

from bot.articles import DEFAULT_MAX_BYTES, Article, parse_seed
from bot.search import MAX_EXCERPT_WORDS, MAX_TITLE_WORDS, MAX_TYPO_LENGTH, SearchIndex
from bot.tokens import MAX_WORD_LENGTH, compounds, folded_words, words

MIB = 1024 * 1024
# What one article may add: its title's words and compounds, its excerpt's words.
WORDS_PER_ARTICLE = 2 * MAX_TITLE_WORDS + MAX_EXCERPT_WORDS


def article(slug: str, title: str, excerpt: str = "") -> Article:
    return Article(
        url=f"https://example.com/{slug}",
        title=title,
        excerpt=excerpt,
        published=datetime(2024, 5, 1, tzinfo=UTC),
    )


NORMAL = article(
    "normal",
    "Amazon pauses police use of its facial recognition software",
    "The company will stop selling Rekognition to police departments for a year.",
)


def blob(alphabet: str, size: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choices(alphabet, k=size))


PATHOLOGICAL = {
    "a 1 MiB hex excerpt": lambda: article("hex", "Blob", blob("0123456789abcdef", MIB, 1)),
    "a 1 MiB base64 excerpt": lambda: article(
        "b64", "Blob", blob(string.ascii_letters + string.digits + "+/", MIB, 2)
    ),
    "a 1 MiB title-less blob": lambda: article("bare", "x", blob("0123456789abcdef", MIB, 3)),
    "a title of 900,000 A": lambda: article("aaa", "A" * 900_000),
    "200k short distinct words": lambda: article(
        "many", "Many words", " ".join(f"w{n:x}" for n in range(200_000))
    ),
    "a compound of 900,000 characters": lambda: article("dash", "a-" * 450_000),
    "a long accented word": lambda: article("acc", "é" * 300_000, "ü" * 300_000),
}


@pytest.mark.parametrize("kind", list(PATHOLOGICAL))
def test_one_pathological_article_costs_a_bounded_share_of_the_index(kind: str) -> None:
    articles = [NORMAL, PATHOLOGICAL[kind]()]
    tracemalloc.start()
    try:
        index = SearchIndex.build(articles)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    terms = index._vocab.terms
    assert len(terms) <= len(articles) * WORDS_PER_ARTICLE
    assert max(map(len, terms)) <= MAX_WORD_LENGTH
    # One-letter deletions: at most MAX_TYPO_LENGTH per word, and only for words that short.
    typo_entries = len(index._shared.typos._keys) + index._shared.typos.pending
    assert typo_entries <= len(articles) * WORDS_PER_ARTICLE * MAX_TYPO_LENGTH
    (segment,) = index._segments
    assert len(segment.title.flat) <= len(articles) * MAX_TITLE_WORDS
    assert len(segment.excerpt.flat) <= len(articles) * MAX_EXCERPT_WORDS
    assert peak < 50 * MIB
    # Normal text is found as before: exactly, with a typo, by a prefix being typed.
    for query in ("facial recognition", "facial recognitoin", "rekognition police"):
        assert [h.url for h in index.search(query)][:1] == [NORMAL.url], query
    assert index.suggest_titles("amaz")[0].url == NORMAL.url


def test_a_blob_is_still_found_by_itself() -> None:
    # Cut to MAX_WORD_LENGTH on both sides: the whole blob (or its start) finds its article.
    hex_blob = blob("0123456789abcdef", MIB, 4)
    index = SearchIndex.build([NORMAL, article("hex", "Blob", hex_blob)])
    assert [h.url for h in index.search(hex_blob[:200])] == ["https://example.com/hex"]
    assert [h.url for h in index.search(hex_blob[:MAX_WORD_LENGTH])] == ["https://example.com/hex"]


@pytest.mark.parametrize(
    ("title", "excerpt"),
    [
        ("A" * 900_000, ""),
        ("Blob", blob("0123456789abcdef", DEFAULT_MAX_BYTES - 200, 5)),
        ("Words", " ".join(f"w{n:x}" for n in range(150_000))),
    ],
)
def test_a_seed_file_of_the_maximum_size_parses_and_indexes_within_bounds(
    title: str, excerpt: str
) -> None:
    data = (
        f'---\ntitle: "{title}"\nexcerpt: "{excerpt}"\n'
        'publishedDateTime: 2024-05-01T00:00:00Z\nwebUrl: "https://example.com/big"\n---\n'
    ).encode()
    assert len(data) <= DEFAULT_MAX_BYTES
    big = parse_seed(data, "big.md")
    tracemalloc.start()
    try:
        index = SearchIndex.build([NORMAL, big])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(index._vocab) <= 2 * WORDS_PER_ARTICLE
    assert peak < 50 * MIB
    assert index.search("facial recognition")[0].url == NORMAL.url


def test_words_are_cut_and_counted_without_reading_past_the_limit() -> None:
    assert words("x" * 100 + " short") == ["x" * MAX_WORD_LENGTH, "short"]
    assert folded_words("a b c d e", 3) == ["a", "b", "c"]
    assert folded_words("b" * 100, 1) == ["b" * MAX_WORD_LENGTH]
    # Compounds as before, each cut like a word.
    assert compounds("e-mail co-op 4.0 a_b-c x--y") == ["email", "coop", "40", "bc", "xy"]
    assert compounds("-".join(["ab"] * 100)) == ["ab" * (MAX_WORD_LENGTH // 2)]
    assert compounds("a-b c-d e-f", 2) == ["ab", "cd"]
