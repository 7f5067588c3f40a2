"""Benchmark corpora and query sets for newsbot's search.

Importable on its own (no timing, no printing): load the real corpora, scale them up
synthetically, and generate a deterministic, balanced set of queries whose answer is known.

Query kinds (each query names the URL of its target article):

* ``typo``: 3-5 consecutive title words, 1-2 of them with a one-letter edit (insert, delete,
  substitute or transpose), only in words of at least 4 letters.
* ``partial``: 2-4 content words of the title (no stopwords, no words under 3 chars), shuffled.
* ``excerpt``: 4-6 consecutive words of the excerpt only (excerpts of at least 8 words).
* ``exact``: the whole title, lower-cased, punctuation removed.
"""

from __future__ import annotations

import json
import random
import re
import string
import unicodedata
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bot.articles import Article, SeedError, parse_seed

KINDS: tuple[str, ...] = ("typo", "partial", "excerpt", "exact")
SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_CORPORA = SHARED / "corpora"
# What a fresh clone has: five articles, enough to check a benchmark runs (the scale-ups grow
# them to any size), not to quote its figures.
SHIPPED_SEEDS = Path(__file__).resolve().parents[1] / "seeds"
CORPUS_HELP = (
    "folder of seed files (*.md, */_news/*.md or _news/*.md); may be repeated; default: "
    f"{DEFAULT_CORPORA} when it holds any, else the shipped seeds/"
)


def default_corpora() -> list[Path]:
    """The real corpora beside the repository (the development setup), else ``seeds/``."""
    return [DEFAULT_CORPORA] if seed_files([DEFAULT_CORPORA]) else [SHIPPED_SEEDS]


# Small on purpose: the point is to drop words a user would not type to find a title.
STOPWORDS = frozenset(
    """
    a about after again all also an and any are as at be because been before being but by can
    could did do does doing down during each few for from further had has have having he her
    here hers him his how i if in into is it its just me more most my no nor not now of off on
    once only or other our ours out over own same she should so some such than that the their
    theirs them then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours
    """.split()  # noqa: SIM905 - a word list is easier to read and edit as text
)


@dataclass(frozen=True, slots=True)
class Query:
    kind: str
    query: str
    url: str  # the target article: a hit@k means this URL is among the top k results

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "query": self.query, "url": self.url})


@dataclass(frozen=True, slots=True)
class Corpus:
    articles: tuple[Article, ...]  # distinct URLs, first by sorted path wins
    files: int
    rejected: tuple[str, ...]  # one "path: reason" line per file parse_seed refused
    duplicate_urls: int  # files dropped because an earlier file had the same URL


# --- loading ---------------------------------------------------------------------------------


def seed_files(dirs: Iterable[Path]) -> list[Path]:
    """Every ``*.md`` under each dir, sorted so that URL de-duplication is deterministic.

    A dir may be a corpus (holding ``_news/``), a folder of corpora (``*/_news/``) or a plain
    folder of ``.md`` files: the first two are how ``../shared/corpora`` is laid out.
    """
    found: set[Path] = set()
    for folder in dirs:
        if (folder / "_news").is_dir():
            found.update(folder.glob("_news/*.md"))
        elif any(folder.glob("*/_news")):
            found.update(folder.glob("*/_news/*.md"))
        else:
            found.update(folder.glob("*.md"))
    return sorted(p.resolve() for p in found)


def load_corpus(dirs: Iterable[Path]) -> Corpus:
    paths = seed_files(dirs)
    by_url: dict[str, Article] = {}
    rejected: list[str] = []
    duplicates = 0
    for path in paths:
        try:
            article = parse_seed(path.read_bytes(), str(path))
        except SeedError as exc:
            rejected.append(str(exc))
            continue
        if article.url in by_url:
            duplicates += 1  # the corpora repeat URLs, sometimes with other content
            continue
        by_url[article.url] = article
    return Corpus(tuple(by_url.values()), len(paths), tuple(rejected), duplicates)


# --- tokenising ------------------------------------------------------------------------------


def _is_punct(char: str) -> bool:
    # Punctuation *and* symbols: curly quotes, dashes, "|", emoji all count as word edges.
    return unicodedata.category(char)[0] in "PS"


def strip_punct(word: str) -> str:
    start, end = 0, len(word)
    while start < end and _is_punct(word[start]):
        start += 1
    while end > start and _is_punct(word[end - 1]):
        end -= 1
    return word[start:end]


def words(text: str) -> list[str]:
    """Whitespace-separated words with punctuation stripped from their edges; empties dropped."""
    return [w for w in (strip_punct(raw) for raw in text.split()) if w]


def content_words(title: str) -> list[str]:
    """Distinct lower-cased title words a user would type: no stopwords, at least 3 chars."""
    kept = (w.lower() for w in words(title))
    return list(dict.fromkeys(w for w in kept if len(w) >= 3 and w not in STOPWORDS))


def normalise_title(title: str) -> str:
    """The ``exact`` query for a title; also used to spot titles shared by several URLs."""
    return " ".join(words(title)).lower()


def _letters(word: str) -> int:
    return sum(ch.isalpha() for ch in word)


# --- one query per kind ----------------------------------------------------------------------


def _random_letter(rng: random.Random, upper: bool) -> str:
    letter = rng.choice(string.ascii_lowercase)
    return letter.upper() if upper else letter


def one_letter_edit(word: str, rng: random.Random) -> str:
    """Insert, delete, substitute or transpose one letter; the result always differs."""
    alpha = [i for i, ch in enumerate(word) if ch.isalpha()]
    swaps = [
        i for i in alpha if i + 1 < len(word) and word[i + 1].isalpha() and word[i] != word[i + 1]
    ]
    ops = ["insert", "delete", "substitute"] + (["transpose"] if swaps else [])
    op = rng.choice(ops)
    if op == "insert":
        at = rng.randint(0, len(word))
        # Upper case only inside an all-caps word: "Reelease", not "RElease", as people type.
        return word[:at] + _random_letter(rng, word.isupper()) + word[at:]
    if op == "delete":
        at = rng.choice(alpha)
        return word[:at] + word[at + 1 :]
    if op == "substitute":
        at = rng.choice(alpha)
        new = _random_letter(rng, word[at].isupper())
        while new.lower() == word[at].lower():
            new = _random_letter(rng, word[at].isupper())
        return word[:at] + new + word[at + 1 :]
    at = rng.choice(swaps)
    return word[:at] + word[at + 1] + word[at] + word[at + 2 :]


def typo_query(article: Article, rng: random.Random) -> str | None:
    title = words(article.title)
    if len(title) < 3:
        return None
    editable = [i for i, w in enumerate(title) if _letters(w) >= 4]
    if not editable:
        return None
    size = rng.randint(3, min(5, len(title)))
    # Only windows holding an editable word; one always exists since len(title) >= size.
    starts = [s for s in range(len(title) - size + 1) if any(s <= i < s + size for i in editable)]
    start = rng.choice(starts)
    window = title[start : start + size]
    candidates = [i - start for i in editable if start <= i < start + size]
    for i in rng.sample(candidates, min(rng.randint(1, 2), len(candidates))):
        window[i] = one_letter_edit(window[i], rng)
    return " ".join(window)


def partial_query(article: Article, rng: random.Random) -> str | None:
    content = content_words(article.title)
    if len(content) < 2:
        return None
    return " ".join(rng.sample(content, rng.randint(2, min(4, len(content)))))  # random order


def excerpt_query(article: Article, rng: random.Random) -> str | None:
    excerpt = words(article.excerpt)
    if len(excerpt) < 8:
        return None
    size = rng.randint(4, 6)
    start = rng.randint(0, len(excerpt) - size)
    return " ".join(excerpt[start : start + size])


def exact_query(article: Article, rng: random.Random) -> str | None:
    return normalise_title(article.title) or None


MAKERS: dict[str, Callable[[Article, random.Random], str | None]] = {
    "typo": typo_query,
    "partial": partial_query,
    "excerpt": excerpt_query,
    "exact": exact_query,
}


def eligible(kind: str, article: Article) -> bool:
    # Deterministic eligibility (independent of the random draw) so sampling stays balanced.
    if kind == "typo":
        title = words(article.title)
        return len(title) >= 3 and any(_letters(w) >= 4 for w in title)
    if kind == "partial":
        return len(content_words(article.title)) >= 2
    if kind == "excerpt":
        return len(words(article.excerpt)) >= 8
    return bool(normalise_title(article.title))


# --- the query set ---------------------------------------------------------------------------


def generate_queries(articles: Sequence[Article], total: int, seed: int) -> list[Query]:
    """A balanced query set (``total // 4`` per kind, remainder to the first kinds).

    Deterministic for a given ``seed`` and article order. Each kind has its own RNG so changing
    one kind's rules does not reshuffle the others. Targets are distinct within a kind unless
    more queries are asked for than there are eligible articles. The result interleaves kinds
    (typo, partial, excerpt, exact, typo, ...) so that any prefix, e.g. a warm-up, is balanced.
    """
    urls = [a.url for a in articles]
    if len(set(urls)) != len(urls):
        raise ValueError("articles must have distinct URLs: de-duplicate them first")
    per_kind: list[list[Query]] = []
    for position, kind in enumerate(KINDS):
        want = total // len(KINDS) + (1 if position < total % len(KINDS) else 0)
        rng = random.Random(f"newsbot-bench:{seed}:{kind}")
        pool = [a for a in articles if eligible(kind, a)]
        queries: list[Query] = []
        while pool and len(queries) < want:
            # A fresh permutation per pass: targets repeat only once every article was used.
            for article in rng.sample(pool, len(pool)):
                text = MAKERS[kind](article, rng)
                if text:
                    queries.append(Query(kind, text, article.url))
                if len(queries) == want:
                    break
        per_kind.append(queries)
    return [q for group in _round_robin(per_kind) for q in group]


def _round_robin(groups: list[list[Query]]) -> Iterator[list[Query]]:
    for i in range(max((len(g) for g in groups), default=0)):
        yield [g[i] for g in groups if i < len(g)]


def write_jsonl(queries: Iterable[Query], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for query in queries:
            out.write(query.to_json() + "\n")


def read_jsonl(path: Path) -> list[Query]:
    queries: list[Query] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not all(isinstance(row.get(k), str) for k in ("kind", "query", "url")):
                raise ValueError(f"{path}:{number}: need string keys kind, query, url")
            queries.append(Query(row["kind"], row["query"], row["url"]))
    return queries


@dataclass(frozen=True, slots=True)
class Paraphrase:
    """A query in other words than its target's title (``bench/paraphrases.jsonl``)."""

    kind: str
    query: str
    url: str  # the article the query was written for
    urls: tuple[str, ...]  # every URL that counts as a hit (``url`` and same-story articles)
    title: str  # the target's title, for reading the file; never searched


def read_paraphrases(path: Path) -> list[Paraphrase]:
    """The paraphrase queries of a JSONL file; a bad line raises ``ValueError`` naming it."""
    found: list[Paraphrase] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected an object, got {type(row).__name__}")
            bad = [k for k in ("kind", "query", "url", "title") if not isinstance(row.get(k), str)]
            if bad or not row["query"].strip():
                raise ValueError(f"{where}: need non-empty string keys kind, query, url, title")
            urls = row.get("urls", [row["url"]])
            if not isinstance(urls, list) or not all(isinstance(u, str) and u for u in urls):
                raise ValueError(f"{where}: 'urls' must be a list of URL strings")
            accepted = tuple(dict.fromkeys([row["url"], *urls]))
            found.append(Paraphrase(row["kind"], row["query"], row["url"], accepted, row["title"]))
    return found


# --- synthetic scale-up ----------------------------------------------------------------------

_WORD = re.compile(r"\S+")


def vocabulary(articles: Iterable[Article]) -> list[str]:
    """Distinct words of all titles and excerpts, sorted so that draws are deterministic."""
    vocab: set[str] = set()
    for article in articles:
        vocab.update(w for w in words(article.title) if len(w) >= 3)
        vocab.update(w for w in words(article.excerpt) if len(w) >= 3)
    return sorted(vocab)


def _word_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the words that have something besides punctuation: the replaceable ones."""
    return [m.span() for m in _WORD.finditer(text) if strip_punct(m.group())]


def _substitute(
    text: str,
    spans: Sequence[tuple[int, int]],
    vocab: Sequence[str],
    rng: random.Random,
    low: int,
    high: int,
) -> str:
    """Replace ``low..high`` words of ``text`` by vocabulary words, keeping edge punctuation.

    Works on spans (from :func:`_word_spans`) so excerpt newlines survive.
    """
    if not spans:
        return text
    chosen = sorted(rng.sample(spans, min(rng.randint(low, high), len(spans))), reverse=True)
    for start, end in chosen:  # right to left, so earlier spans stay valid
        raw = text[start:end]
        core = strip_punct(raw)
        left = raw.index(core)
        new = rng.choice(vocab)
        if new.lower() == core.lower():
            new = rng.choice(vocab)  # one redraw is enough: vocab has thousands of words
        text = text[:start] + raw[:left] + new + raw[left + len(core) :] + text[end:]
    return text


def _clone_url(url: str, version: int) -> str:
    base, hash_, fragment = url.partition("#")
    joined = f"{base}{'&' if '?' in base else '?'}v={version}"
    return f"{joined}{hash_}{fragment}"


_CLONE_SUFFIX = re.compile(r"[?&]v=\d+(#.*)?$")


def clone_origin(url: str, originals: Container[str]) -> str:
    """The original URL a clone was made from; ``url`` itself for an original."""
    base = _CLONE_SUFFIX.sub(lambda m: m.group(1) or "", url)
    return base if base != url and base in originals else url


def scale_corpus(articles: Sequence[Article], size: int, seed: int) -> list[Article]:
    """The originals plus clones up to ``size`` articles, in a seeded random order.

    Clones are round-robin over the originals (each gets about ``size / len`` of them), with a
    new URL (``?v=N``), 1-3 title words and 1-3 excerpt words replaced by corpus words (both, so
    that a clone never has its original's exact title), and the topics of another random
    article. The result is shuffled so that no engine can win ties by insertion order
    (originals first would favour the queries' targets).
    """
    originals = list(articles)
    if size <= len(originals) or not originals:
        return originals
    rng = random.Random(f"newsbot-bench:{seed}:scale")
    vocab = vocabulary(originals)
    topic_pool = [a.topics for a in originals]
    urls = {a.url for a in originals}
    # Word spans per original, computed once: each original is cloned ~size/len times.
    spans = [(_word_spans(a.title), _word_spans(a.excerpt)) for a in originals]
    scaled = list(originals)
    for i in range(size - len(originals)):
        source = originals[i % len(originals)]
        title_spans, excerpt_spans = spans[i % len(originals)]
        url = _clone_url(source.url, i // len(originals) + 1)
        if url in urls:  # a real URL already ending in ?v=N: make it unique anyway
            url = _clone_url(source.url, size + i)
        urls.add(url)
        scaled.append(
            replace(
                source,
                url=url,
                title=_substitute(source.title, title_spans, vocab, rng, 1, 3),
                excerpt=_substitute(source.excerpt, excerpt_spans, vocab, rng, 1, 3),
                topics=rng.choice(topic_pool),
            )
        )
    rng.shuffle(scaled)
    return scaled
