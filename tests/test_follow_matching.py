"""What a follow matches: defined once, in the search core (SearchIndex.follow_matches)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.articles import Article
from bot.search import FollowQuery, SearchIndex

BASE = datetime(2026, 11, 1, tzinfo=UTC)


def article(n: int, title: str, excerpt: str = "", *, topics: tuple[str, ...] = (),
            provider: str = "Wire", domain: str = "wire.example") -> Article:  # fmt: skip
    return Article(
        url=f"https://news.example/{n}",
        title=title,
        excerpt=excerpt,
        published=BASE + timedelta(hours=n),
        provider=provider,
        provider_domain=domain,
        topics=topics,
    )


ARTICLES = [
    article(1, "Amazon pauses police use of facial recognition", topics=("AI",),
            provider="Quartz", domain="qz.com"),
    article(2, "Microsoft bans sales of face recognition to police", "Facial recognition "
            "software will not be sold to police departments.", topics=("AI",),
            provider="Wired", domain="wired.com"),
    article(3, "Singapore robots enforce social distancing in parks", topics=("Robotics",)),
    article(4, "Farmer dies in grain bin accident in Palmyra", topics=("Agriculture",)),
    # Filler, so that "in" and "the" are common words of this collection.
    *[article(10 + i, f"The weather in town number {i}", "the usual in the usual")
      for i in range(30)],
]  # fmt: skip
INDEX = SearchIndex.build(ARTICLES)
URLS = [a.url for a in ARTICLES]


def matched(query: str, topic: str | None = None, source: str | None = None) -> list[int]:
    found = INDEX.follow_matches([FollowQuery(query, topic, source)], URLS)[0]
    return [int(url.rsplit("/", 1)[1]) for url in found]


@pytest.mark.parametrize(
    ("query", "topic", "source", "expected"),
    [
        ("facial recognition", None, None, [1, 2]),  # title or excerpt
        ("facial recognition police", None, None, [1, 2]),
        ("facial recogntion", None, None, [1, 2]),  # one typo, as /news
        ("Facial RECOGNITION", None, None, [1, 2]),  # case and accents folded
        ("facial recog", None, None, [1, 2]),  # the start of a longer word
        ("facial recognition", "AI", None, [1, 2]),
        ("facial recognition", "Robotics", None, []),  # the topic filter
        ("facial recognition", None, "wired", [2]),  # the source filter, as /news's
        ("facial recognition", None, "qz.com", [1]),
        ("robots parks", None, None, [3]),
        ("robots beaches", None, None, []),  # every word is needed
        ("grain bin in the Palmyra", None, None, [4]),  # "in", "the": common, not required
        ("face scanning", None, None, []),  # meaning is for /news; a follow wants the words
        ("zzqx", None, None, []),
        ("", None, None, []),
    ],
)
def test_a_follow_matches_articles_holding_every_query_word(
    query: str, topic: str | None, source: str | None, expected: list[int]
) -> None:
    assert matched(query, topic, source) == expected


def test_many_follows_at_once_and_urls_the_index_does_not_hold() -> None:
    follows = [FollowQuery("police"), FollowQuery("robots"), FollowQuery("farmer", "AI")]
    urls = ["https://news.example/missing", *URLS]
    found = INDEX.follow_matches(follows, urls)
    assert found == [
        ["https://news.example/1", "https://news.example/2"],
        ["https://news.example/3"],
        [],
    ]
    assert INDEX.holds("https://news.example/3") and not INDEX.holds("https://news.example/x")


def test_newest_urls_are_newest_first_within_the_filters() -> None:
    assert INDEX.newest_urls("AI") == ["https://news.example/2", "https://news.example/1"]
    assert INDEX.newest_urls()[0] == "https://news.example/39"
