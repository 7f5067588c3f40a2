"""The search index: each kind of query on small fixture corpora, filters, autocomplete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.articles import Article
from bot.search import SearchIndex
from tests.botharness import SHARED

BASE = datetime(2024, 5, 1, tzinfo=UTC)


def article(
    slug: str,
    title: str,
    excerpt: str = "",
    *,
    days: int = 0,
    topics: tuple[str, ...] = (),
    provider: str = "Example News",
    domain: str = "example.com",
    quality: float | None = None,
) -> Article:
    return Article(
        url=f"https://{domain}/{slug}",
        title=title,
        excerpt=excerpt,
        published=BASE + timedelta(days=days),
        provider=provider,
        provider_domain=domain,
        topics=topics,
        quality=quality,
    )


CORPUS = [
    article(
        "amazon-pause",
        "Amazon and Microsoft pause police facial recognition and demand regulation",
        "Amazon's moratorium will have a greater impact than IBM or Microsoft.",
        topics=("AI", "Computer Vision"),
        provider="Quartz",
        domain="qz.com",
        days=1,
    ),
    article(
        "ibm-exits",
        "IBM exits the facial recognition business",
        "The company will no longer offer general purpose software.",
        topics=("AI",),
        provider="The Verge",
        domain="theverge.com",
        days=2,
    ),
    article(
        "cafe",
        "Café owners rethink the morning rush",
        "Espresso machines and loyalty apps change how small shops work.",
        topics=("Business",),
        days=3,
    ),
    article(
        "ev-batteries",
        "Solid-state batteries promise cheaper electric cars",
        "Researchers say production could start within five years.",
        topics=("Energy", "Cars"),
        days=4,
    ),
    article(
        "congress",
        "Congress weighs limits on police surveillance",
        "Lawmakers want rules for face scanning tools used by departments.",
        topics=("Policy",),
        days=5,
    ),
    article(
        "weather",
        "Heavy rain expected across the region this weekend",
        "Forecasters warn of flooding near rivers; the police ask drivers to stay home.",
        topics=("Weather",),
        days=6,
    ),
]


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return SearchIndex.build(CORPUS)


def top(index: SearchIndex, query: str, **options: object) -> str | None:
    hits = index.search(query, **options)  # type: ignore[arg-type]
    return hits[0].url.rsplit("/", 1)[1] if hits else None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # typos: one-letter edits inside words, and a transposition
        ("police facial recogniton", "amazon-pause"),
        ("ibm exits the facial recgonition", "ibm-exits"),
        ("solid stat bateries", "ev-batteries"),
        ("Congres weighs limts", "congress"),
        # word order
        ("recognition facial IBM", "ibm-exits"),
        ("cars electric cheaper", "ev-batteries"),
        # partial words (prefixes)
        ("espress loyal", "cafe"),
        ("surveil", "congress"),
        # case, accents and punctuation
        ("CAFE OWNERS", "cafe"),
        ("café", "cafe"),
        ("amazons moratorium", "amazon-pause"),
        ("solid state", "ev-batteries"),
        ("solidstate batteries", "ev-batteries"),
        # the whole title, lower-cased and without punctuation
        ("heavy rain expected across the region this weekend", "weather"),
        # consecutive words of an excerpt only
        ("ask drivers to stay home", "weather"),
        ("face scanning tools used", "congress"),
    ],
)
def test_query_kinds_find_their_article(index: SearchIndex, query: str, expected: str) -> None:
    assert top(index, query) == expected


def test_a_title_match_outranks_the_same_word_in_an_excerpt(index: SearchIndex) -> None:
    # "police" is in three titles... and in the weather story's excerpt only.
    urls = [h.url for h in index.search("police", limit=10)]
    assert urls[-1].endswith("/weather")


def test_scores_run_from_best_to_worst(index: SearchIndex) -> None:
    hits = index.search("facial recognition", limit=10)
    assert [h.url.rsplit("/", 1)[1] for h in hits[:2]] == ["ibm-exits", "amazon-pause"]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 100 for s in scores)


def test_nonsense_finds_nothing_but_suggests_titles(index: SearchIndex) -> None:
    assert index.search("zzqx blorft") == []
    assert index.search("") == []
    assert index.search("   ...  ") == []
    assert index.suggestions("facial zzqx blorft")  # one real word: something to suggest


def test_limit_is_respected(index: SearchIndex) -> None:
    assert len(index.search("the", limit=2)) <= 2
    assert index.search("police", limit=0) == []


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"topic": "computer vision"}, ["amazon-pause"]),
        ({"topic": "AI"}, ["ibm-exits", "amazon-pause"]),
        ({"topic": "Nope"}, []),
        ({"provider": "verge"}, ["ibm-exits"]),
        ({"provider": "qz.com"}, ["amazon-pause"]),
        ({"since": BASE + timedelta(days=2)}, ["ibm-exits"]),
    ],
)
def test_filters(index: SearchIndex, options: dict[str, object], expected: list[str]) -> None:
    hits = index.search("facial recognition", **options)  # type: ignore[arg-type]
    assert [h.url.rsplit("/", 1)[1] for h in hits] == expected


def test_autocomplete_is_newest_first_when_empty_and_matches_a_word_being_typed(
    index: SearchIndex,
) -> None:
    assert [a.url.rsplit("/", 1)[1] for a in index.suggest_titles("", 3)] == [
        "weather",
        "congress",
        "ev-batteries",
    ]
    assert index.suggest_titles("solid-sta")[0].url.endswith("/ev-batteries")
    assert index.suggest_titles("i")  # a single letter being typed still offers titles
    assert len(index.suggest_titles("the", 2)) <= 2


def test_topics_most_used_first(index: SearchIndex) -> None:
    assert index.topics()[0] == "AI"
    assert set(index.topics()) == {
        "AI",
        "Computer Vision",
        "Business",
        "Energy",
        "Cars",
        "Policy",
        "Weather",
    }


def test_providers_most_used_first(index: SearchIndex) -> None:
    assert index.providers() == ["Example News", "Quartz", "The Verge"]


def test_an_empty_index_answers_nothing() -> None:
    empty = SearchIndex.build([])
    assert len(empty) == 0
    assert empty.search("anything") == []
    assert empty.suggest_titles("") == []
    assert empty.topics() == []
    assert empty.providers() == []
    assert empty.find("https://example.com/x") is None


@pytest.mark.skipif(
    not (SHARED / "corpora").is_dir(), reason="../shared/corpora is not beside the repo"
)
def test_relevance_on_the_real_corpora_stays_above_its_floor() -> None:
    """A regression floor, well below the figures bench/search.py reports."""
    import bench.queries as bq

    corpus = bq.load_corpus([SHARED / "corpora"])
    index = SearchIndex.build(corpus.articles)
    queries = bq.generate_queries(corpus.articles, 400, seed=5)
    found: dict[str, list[bool]] = {}
    for query in queries:
        hits = index.search(query.query, limit=5)
        found.setdefault(query.kind, []).append(bool(hits) and hits[0].url == query.url)
    rates = {kind: sum(v) / len(v) for kind, v in found.items()}
    floors = {"typo": 0.72, "partial": 0.62, "excerpt": 0.80, "exact": 0.92}
    assert all(rates[kind] >= floor for kind, floor in floors.items()), rates


@pytest.mark.skipif(
    not (SHARED / "corpora").is_dir(), reason="../shared/corpora is not beside the repo"
)
def test_a_word_tallied_over_its_documents_scores_as_over_whole_arrays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rare words are tallied over their postings alone, common ones over whole arrays
    (search.DENSE_TALLY_SHARE): every query ranks and scores the same either way, typos
    (several terms per word) and words in two segments included."""
    import bench.queries as bq
    from bot import search

    corpus = bq.load_corpus([SHARED / "corpora"])
    half = len(corpus.articles) // 2
    # Two segments: the second half applied as a change, a few of the first replaced.
    index = SearchIndex.build(corpus.articles[:half]).apply(
        corpus.articles[half:] + corpus.articles[:20], []
    )
    queries = [q.query for q in bq.generate_queries(corpus.articles, 200, seed=11)]

    def answers(share: int) -> list[list[tuple[str, float]]]:
        monkeypatch.setattr(search, "DENSE_TALLY_SHARE", share)
        return [[(h.url, h.score) for h in index.search(q, limit=10)] for q in queries]

    sparse, dense = answers(0), answers(10**9)
    assert sum(map(len, dense)) > 1000  # the queries find things
    assert sparse == dense


def _adjacency_reference(field: list[int], slots: dict[int, int]) -> tuple[int, int]:
    """Side-by-side query-word pairs, the plain way: positions of each query word."""
    n = max((mask.bit_length() for mask in slots.values()), default=0)
    positions: list[set[int]] = [set() for _ in range(n)]
    hits = 0
    for place, term in enumerate(field):
        if term in slots:
            hits += 1
            for k in range(n):
                if slots[term] >> k & 1:
                    positions[k].add(place)
    pairs = sum(1 for k in range(n - 1) if any(p + 1 in positions[k + 1] for p in positions[k]))
    return hits, pairs


@given(
    field=st.lists(st.integers(0, 6), max_size=30),
    slots=st.dictionaries(st.integers(0, 6), st.integers(1, 2**8 - 1), max_size=6),
)
def test_adjacency_counts_each_side_by_side_pair_once(
    field: list[int], slots: dict[int, int]
) -> None:
    from bot.search import _adjacency

    assert _adjacency(field, slots) == _adjacency_reference(field, slots)


@pytest.mark.skipif(
    not (SHARED / "corpora").is_dir(), reason="../shared/corpora is not beside the repo"
)
def test_queries_from_several_threads_answer_as_one_at_a_time() -> None:
    """Each thread reuses arrays of its own for its queries (the loop, follow matching and
    suggestions search from different threads): answers never mix, and an index of another
    size beside it (each change makes one) gets its own."""
    from concurrent.futures import ThreadPoolExecutor

    import bench.queries as bq

    corpus = bq.load_corpus([SHARED / "corpora"])
    big, small = SearchIndex.build(corpus.articles), SearchIndex.build(corpus.articles[:500])
    queries = [q.query for q in bq.generate_queries(corpus.articles, 120, seed=3)]

    def answers(index: SearchIndex, chunk: list[str]) -> list[list[tuple[str, float]]]:
        return [[(h.url, h.score) for h in index.search(q)] for q in chunk]

    expected = {id(i): answers(i, queries) for i in (big, small)}
    with ThreadPoolExecutor(4) as pool:
        jobs = [(i, pool.submit(answers, i, queries)) for i in (big, small, big, small)]
        for index, job in jobs:
            assert job.result() == expected[id(index)]
    assert any(expected[id(big)]) and expected[id(big)] != expected[id(small)]
