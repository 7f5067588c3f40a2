"""Search by meaning: the model's vectors, their 8-bit form, fusion with the words, the same
story across outlets, related stories, and vectors that follow every change and restart."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from bot import snapshot
from bot.digest import select_digest
from bot.meaning import DIM, Embedder, Vectors, article_text, embedder, query_signs
from bot.search import SearchIndex
from tests.botharness import REPO, SHARED
from tests.test_search import BASE, article

CORPUS = [
    article(
        "tattoo",
        "Blizzard offering Diablo 4 beta access if you get a tattoo",
        "Fans who ink the game's logo on their skin get an early invitation to the test.",
        days=0,
        provider="Polygon",
    ),
    article(
        "tattoo-again",
        "Blizzard offering Diablo 4 beta access if you get a tattoo",
        "The studio's promotion trades a permanent mark for a place in the beta weekend.",
        days=1,
        provider="PC Gamer",
    ),
    article(
        "storage",
        "Players tired of having to teleport just to access the storage chest",
        "Going back to town every time the bag is full slows every dungeon run.",
        days=3,
    ),
    article(
        "portals",
        "Power Apps portals misconfiguration exposes 38 million records",
        "Vaccination data and employee details were left open by default settings.",
        days=5,
    ),
    article(
        "recognition",
        "Microsoft declines to sell facial recognition technology to police",
        "The company says it will wait for a national law grounded in human rights.",
        days=7,
    ),
    article(
        "pricing",
        "Microsoft changes the price of Power Apps licences",
        "Per-app plans get cheaper while the premium tier costs more.",
        days=9,
    ),
]


@pytest.fixture(scope="module")
def model() -> Embedder:  # loaded once for the module
    return embedder()


@pytest.fixture(scope="module")
def index(model) -> SearchIndex:
    return SearchIndex.build(CORPUS, embedder=model)


# --- the model and its vectors -----------------------------------------------------------------


def test_vectors_are_unit_length_deterministic_and_independent_of_the_batch(model) -> None:
    texts = [article_text(a.title, a.excerpt) for a in CORPUS]
    together = model.embed(texts)
    alone = np.stack([model.embed_one(t) for t in texts])
    assert together.shape == (len(texts), DIM)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-6)
    assert not model.embed([""]).any()  # no tokens: a zero vector, not NaN


# Run in a process of its own: the anonymous memory (heap, not the mapped token table) that
# embedding 30,000 distinct made-up words leaves behind, in MB. The tokenizer's cache keeps
# the words it tokenized; with its default size it kept about 7 MB of these, and in a
# running bot about 19 MB that grew for hours before it was full.
_TOKENIZER_MEMORY = """
import gc, random, sys
import bot.meaning as meaning
from bot.memory import map_large_allocations, release_free_memory

def anonymous_kb():
    total, anonymous = 0, True
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
            anonymous = not (len(fields) > 5 and fields[5].startswith("/"))
        elif fields[0] == "Rss:" and anonymous:
            total += int(fields[1])
    return total

if sys.argv[1:]:
    meaning.TOKENIZER_CACHE_WORDS = int(sys.argv[1])
map_large_allocations()
model = meaning.embedder()
rng = random.Random(7)
syllables = "ka lo mi ne ru ta shi po ven dor gal rix ton".split()
words = ["".join(rng.choice(syllables) for _ in range(7)) for _ in range(30_000)]
model.embed(["the first call"])
gc.collect(); release_free_memory()
before = anonymous_kb()
for i in range(0, len(words), 48):
    model.embed([" ".join(words[j : j + 3]) for j in range(i, i + 48, 3)])
gc.collect(); release_free_memory()
print((anonymous_kb() - before) / 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")
def test_the_tokenizers_memory_stays_small_however_many_words_it_meets() -> None:
    grown = float(
        subprocess.run(
            [sys.executable, "-c", _TOKENIZER_MEMORY],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert grown < 4.0, f"embedding 30,000 new words kept {grown:.1f} MB"


def test_related_texts_are_closer_than_unrelated_ones(model) -> None:
    face, recognition, apps = model.embed(
        ["face scanning by the police", "facial recognition technology", "spreadsheet formulas"]
    )
    assert face @ recognition > face @ apps + 0.1


def test_eight_bit_vectors_keep_cosine_and_sign_bits(model) -> None:
    rng = random.Random(3)
    words = ["police", "game", "beta", "records", "price", "tattoo", "storage", "licence"]
    texts = [" ".join(rng.sample(words, 4)) for _ in range(40)]
    exact = model.embed(texts)
    packed = Vectors.of(exact)
    query = model.embed_one("police records")
    assert np.allclose(packed.cosine(np.arange(40), query), exact @ query, atol=0.02)
    bits = (exact > 0) != (query > 0)
    assert packed.hamming(query_signs(query)).tolist() == bits.sum(axis=1).tolist()
    taken = packed.take(np.array([5, 1]))
    assert np.array_equal(taken.codes, packed.codes[[5, 1]])
    joined = Vectors.concat([packed.take(np.arange(3)), packed.take(np.arange(3, 40))])
    assert np.array_equal(joined.signs, packed.signs)


# --- search -------------------------------------------------------------------------------------


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/corpora (real articles)")
def test_queries_in_other_words_find_more_stories(model) -> None:
    import json

    from bench.queries import default_corpora, load_corpus

    real = load_corpus(default_corpora()).articles
    lines = (REPO / "bench" / "paraphrases.jsonl").read_text().splitlines()
    queries = [json.loads(line) for line in lines]
    by_meaning = SearchIndex.build(real, embedder=model)
    words_only = SearchIndex.build(real)

    def found(index: SearchIndex) -> int:
        return sum(
            any(h.url in q["urls"] for h in index.search(q["query"], limit=10)) for q in queries
        )

    # Measured: 0.67 of these queries with words alone, 0.74 with meaning (bench/search.py).
    assert found(by_meaning) >= found(words_only) + 0.04 * len(queries)


def test_full_matches_stay_ahead_of_partial_and_meaning_only_ones(index: SearchIndex) -> None:
    hits = index.search("microsoft power apps price licences")
    assert hits[0].url.endswith("/pricing")
    assert len(hits) > 1  # partial matches follow instead of being dropped


def test_partial_matches_are_answers_not_silence() -> None:
    words_only = SearchIndex.build(CORPUS)
    # One word of five: too little for a full match, still better than "no stories match".
    hits = words_only.search("teleport mishaps in dungeon crawlers lately")
    assert hits and hits[0].url.endswith("/storage")


def test_letters_that_mean_nothing_find_nothing(index: SearchIndex) -> None:
    assert index.search("xkcdq vbnmrt zzqpw") == []
    assert index.suggestions("xkcdq vbnmrt zzqpw") == []


def test_filters_apply_to_meaning_too(index: SearchIndex) -> None:
    since = BASE + timedelta(days=4)
    hits = index.search("stash trips back to the city annoy people", since=since)
    assert all(not h.url.endswith("/storage") for h in hits)


# --- the same story, related stories -------------------------------------------------------------


def test_the_same_story_from_two_outlets_is_shown_once(index: SearchIndex) -> None:
    hits = index.search("diablo beta tattoo")
    urls = [h.url for h in hits]
    assert sum(u.endswith(("/tattoo", "/tattoo-again")) for u in urls) == 1
    twins = index.same_story("https://example.com/tattoo")
    assert [h.url for h in twins] == ["https://example.com/tattoo-again"]


def test_the_same_headline_a_year_apart_is_another_story(model) -> None:
    first = article("jan-2023", "What's new: Power Apps January feature update", days=0)
    second = article("jan-2024", "What's new: Power Apps January feature update", days=365)
    index = SearchIndex.build([first, second], embedder=model)
    assert index.same_story(first.url) == []
    assert index.collapse_urls([first.url, second.url]) == [first.url, second.url]


def test_similar_stories_leave_out_the_article_and_its_twins(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.search.MIN_MEANING", -1.0)  # six short texts are all far apart
    similar = [h.url for h in index.similar("https://example.com/tattoo", limit=3)]
    assert len(similar) == 3
    assert "https://example.com/tattoo" not in similar
    assert "https://example.com/tattoo-again" not in similar


def test_the_digest_lists_one_story_per_event(index: SearchIndex) -> None:
    chosen, rest = select_digest(CORPUS, 5, index.collapse_urls)
    urls = [a.url for a in chosen]
    assert sum(u.endswith(("/tattoo", "/tattoo-again")) for u in urls) == 1
    assert rest == 0  # five stories: the retelling is not one more
    assert select_digest(CORPUS, 5)[1] == 1  # without the index's judgement it is


def test_without_vectors_nothing_is_collapsed_or_related() -> None:
    words_only = SearchIndex.build(CORPUS)
    assert not words_only.semantic
    assert words_only.similar(CORPUS[0].url) == []
    assert words_only.collapse_urls([a.url for a in CORPUS]) == [a.url for a in CORPUS]


# --- vectors follow changes and restarts ---------------------------------------------------


QUERIES = [
    "stash trips back to the city annoy people",
    "diablo beta tattoo",
    "face scanning sold to cops",
    "licence cost changes",
    "leaked vaccination records",
]


def answers(index: SearchIndex) -> list[list[tuple[str, float]]]:
    return [[(h.url, h.score) for h in index.search(q)] for q in QUERIES]


def test_changed_index_answers_like_a_fresh_build(model) -> None:
    index = SearchIndex.build(CORPUS[:3], embedder=model)
    changed = [*CORPUS[3:], article("storage", "Storage chest now opens anywhere", days=3)]
    index = index.apply(changed, removed=["https://example.com/tattoo-again"])
    assert index.segment_count == 2
    expected = [a for a in CORPUS if not a.url.endswith(("/storage", "/tattoo-again"))]
    fresh = SearchIndex.build([*expected, changed[-1]], embedder=model)
    assert answers(index) == answers(fresh)
    assert answers(index.merged(full=True)) == answers(fresh)


def test_a_saved_index_keeps_its_vectors(index: SearchIndex, model) -> None:
    loaded = snapshot.load(bytes(snapshot.dump(index)), model)
    assert loaded.semantic
    assert answers(loaded) == answers(index)


def test_a_saved_index_without_vectors_is_not_used_for_meaning(model) -> None:
    data = bytes(snapshot.dump(SearchIndex.build(CORPUS)))
    with pytest.raises(snapshot.SnapshotError, match="no vectors"):
        snapshot.load(data, model)
    assert not snapshot.load(data).semantic  # a words-only process still uses it


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/corpora (real articles)")
def test_real_corpus_changes_keep_meaning_rankings(model) -> None:
    from bench.queries import default_corpora, load_corpus

    real = load_corpus(default_corpora()).articles[:400]
    rng = random.Random(7)
    index = SearchIndex.build(real[:300], embedder=model)
    index = index.apply(real[300:], removed=[a.url for a in rng.sample(real[:300], 40)])
    live = {h for h in index.urls()}
    fresh = SearchIndex.build([a for a in real if a.url in live], embedder=model)
    for a in rng.sample(real, 25):
        query = " ".join(a.title.split()[:3])
        assert [h.url for h in index.search(query)] == [h.url for h in fresh.search(query)]
