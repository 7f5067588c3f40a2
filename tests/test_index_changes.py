"""The index takes changes: after any sequence of adds, changes and removals, applied in batches
and merged at any point, it answers exactly what a fresh build of the same articles answers."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bot.search
from bot.articles import IndexDoc
from bot.search import SearchIndex
from tests.botharness import SHARED

WORDS = tuple(
    """
    police facial recognition amazon microsoft ban pause regulation congress camera privacy
    diablo blizzard beta season patch release power apps platform teams automate copilot
    battery solid state electric vehicle charging range price market launch review guide
    e-mail co-op 4.0 cafe naive resume update leak rumor trailer server outage fix
    """.split()  # noqa: SIM905 - a word list reads better as text
)
TOPICS = ("AI", "Games", "Cars", "Privacy", "Cloud", "Policy")
PROVIDERS = (("Reuters", "reuters.com"), ("Wired", "wired.com"), ("", "example.org"), ("Qz", ""))


def make_doc(rng: random.Random, n: int) -> IndexDoc:
    # A skewed draw, so that common and rare words (and many ties) both occur.
    def phrase(lo: int, hi: int) -> str:
        return " ".join(
            WORDS[int(rng.paretovariate(1.2)) % len(WORDS)] for _ in range(rng.randint(lo, hi))
        )

    provider, domain = rng.choice(PROVIDERS)
    return IndexDoc(
        url=f"https://example.com/{n}",
        title=phrase(2, 8).capitalize(),
        excerpt=phrase(0, 20),
        published=1_700_000_000.0 + rng.choice((0, 3600, 86400 * rng.randint(0, 30))),
        quality=rng.choice((None, 0.5, 0.8, 0.8, 1.0)),
        provider=provider,
        provider_domain=domain,
        topics=tuple(rng.sample(TOPICS, rng.randint(0, 2))),
    )


def queries(rng: random.Random) -> list[str]:
    found = [" ".join(rng.sample(WORDS, rng.randint(1, 3))) for _ in range(25)]
    found += ["recogniton", "polise camra", "diab", "mic", "e-mail", "email", "zzzz qqq", "the"]
    found += ["recgnitoin", "patchh relese"]  # two typos: only the far suggestions find them
    return found


def answers(index: SearchIndex, asked: list[str]) -> list[object]:
    since = datetime.fromtimestamp(1_700_000_000 + 86400 * 10, UTC)
    out: list[object] = [len(index), sorted(index.urls()), index.topics(), index.providers()]
    for query in asked:
        out.append(index.search(query))
        out.append(index.search(query, topic="games", limit=3))
        out.append(index.search(query, provider="wired", since=since))
        out.append(index.suggestions(query))
        out.append(index.suggest_titles(query[:4], 5))
    out.append(index.suggest_titles("", 5))
    return out


OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "change", "remove", "merge", "full merge"]),
        st.integers(min_value=1, max_value=12),
        st.integers(min_value=0, max_value=2**32),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None)
@given(ops=OPS, start=st.integers(min_value=0, max_value=60))
def test_any_sequence_of_changes_ranks_like_a_fresh_build(
    ops: list[tuple[str, int, int]], start: int
) -> None:
    rng = random.Random(start)
    live = {d.url: d for d in (make_doc(rng, n) for n in range(start))}
    index = SearchIndex.build(live.values())
    counter = start
    asked = queries(rng)
    for op, count, seed in ops:
        r = random.Random(seed)
        if op in ("merge", "full merge"):
            index = index.merged(full=op == "full merge")
            continue
        upserts: list[IndexDoc] = []
        removed: list[str] = []
        for _ in range(count):
            if op == "add" or not live:
                counter += 1
                doc = make_doc(r, counter)
                upserts.append(doc)
                live[doc.url] = doc
            elif op == "change":
                url = r.choice(sorted(live))
                doc = replace(make_doc(r, 0), url=url)
                upserts.append(doc)
                live[url] = doc
            else:
                url = r.choice(sorted(live))
                removed.append(url)
                del live[url]
        # A URL changed and then removed in one batch is only removed, and vice versa.
        upserts = [d for d in upserts if live.get(d.url) is d]
        removed = [u for u in removed if u not in live]
        index = index.apply(upserts, removed)
        if index.needs_merge:
            index = index.merged()
        assert answers(index, asked) == answers(SearchIndex.build(live.values()), asked)


def test_a_version_is_unchanged_by_the_versions_made_from_it() -> None:
    rng = random.Random(7)
    docs = [make_doc(rng, n) for n in range(200)]
    old = SearchIndex.build(docs)
    before = answers(old, queries(random.Random(1)))
    newer = old.apply(
        [replace(docs[0], title="Quantum marmalade"), make_doc(rng, 999)], [docs[1].url]
    )
    newer.merged()
    assert answers(old, queries(random.Random(1))) == before  # queries in flight are safe
    assert newer.search("quantum marmalade")[0].url == docs[0].url
    assert old.search("quantum marmalade") == []
    assert newer.find(docs[1].url) is None and old.find(docs[1].url) is not None


def test_small_changes_pile_up_until_a_merge_folds_them_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(3)
    docs = [make_doc(rng, n) for n in range(3000)]
    index = SearchIndex.build(docs)
    for step in range(9):
        index = index.apply([replace(docs[step], title=f"Edited story number{step}")])
    assert index.segment_count == 10
    assert index.needs_merge  # more than MAX_SMALL_SEGMENTS small segments
    tiered = index.merged()  # few changes: only the small segments are merged
    assert tiered.segment_count == 2 and tiered._segments[0] is index._segments[0]
    merged = index.merged(full=True)
    assert merged.segment_count == 1
    assert len(merged) == len(tiered) == len(index) == 3000
    for version in (tiered, merged):
        assert version.search("edited story number4")[0].url == docs[4].url
    # Once the changes pass a tenth of the collection, a merge takes everything.
    monkeypatch.setattr(bot.search, "MERGE_FLOOR", 10)
    many = SearchIndex.build(docs[:300]).apply(
        [replace(d, title=f"{d.title} again") for d in docs[:40]]
    )
    assert many.needs_merge and many.merged().segment_count == 1


def test_a_term_whose_last_holder_left_is_no_longer_a_word() -> None:
    # "zeppelin" leaves with its only article: a query for it must behave as for any unknown
    # word (typo and prefix expansion, no phantom weight), as in a fresh build.
    base = [
        IndexDoc("https://e.com/1", "Zeppelin returns", "", 1.0, None, "", "e.com", ()),
        IndexDoc("https://e.com/2", "Zeppelins over the city", "", 2.0, None, "", "e.com", ()),
        IndexDoc("https://e.com/3", "City council meets", "", 3.0, None, "", "e.com", ()),
    ]
    index = SearchIndex.build(base).apply([], ["https://e.com/1"])
    fresh = SearchIndex.build(base[1:])
    for query in ("zeppelin", "zeppelin city", "zepp", "returns"):
        assert index.search(query) == fresh.search(query), query
    assert [h.url for h in index.search("zeppelin")] == ["https://e.com/2"]


@pytest.mark.skipif(
    not (SHARED / "corpora").is_dir(), reason="../shared/corpora is not beside the repo"
)
def test_real_articles_rank_like_a_fresh_build_after_changes() -> None:
    from bench.queries import generate_queries, load_corpus

    corpus = load_corpus([SHARED / "corpora"])
    rng = random.Random(11)
    pool = [IndexDoc.of(a) for a in corpus.articles]
    live = {d.url: d for d in rng.sample(pool, 500)}
    index = SearchIndex.build(live.values())
    asked = [q.query for q in generate_queries(corpus.articles, 40, 2)] + ["diablo", "power"]
    for step in range(8):
        touched: set[str] = set()
        for _ in range(rng.randint(1, 40)):
            doc = rng.choice(pool)
            if rng.random() < 0.3 and doc.url in live:
                del live[doc.url]
            else:
                live[doc.url] = replace(
                    doc, title=doc.title + rng.choice(["", " beta", f" {step}"])
                )
            touched.add(doc.url)
        index = index.apply(
            [live[u] for u in touched if u in live], [u for u in touched if u not in live]
        )
        if index.needs_merge or step == 5:
            index = index.merged(full=step == 5)
        fresh = SearchIndex.build(live.values())
        for query in asked:
            assert index.search(query) == fresh.search(query), (step, query)


def test_a_merge_that_rebuilds_the_word_tables_answers_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(9)
    docs = [make_doc(rng, n) for n in range(300)]
    index = SearchIndex.build(docs)
    extra = [replace(make_doc(rng, 1000 + n), title=f"Zeppelin{n} airship{n}") for n in range(20)]
    index = index.apply(extra)
    asked = [*queries(random.Random(4)), "zeppelin3", "zepelin3 airshp4", "airsh"]
    kept = index.merged(full=True)  # few new words: the side tables stay
    monkeypatch.setattr(bot.search, "COMPACT_FLOOR", 0)
    rebuilt = index.merged(full=True)  # every new word moves into the compact tables
    assert kept._shared is index._shared and rebuilt._shared is not index._shared
    fresh = SearchIndex.build(docs + extra)
    assert answers(kept, asked) == answers(rebuilt, asked) == answers(fresh, asked)
