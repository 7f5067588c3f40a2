"""Meaning: one vector per article and per query, from a static word-embedding model.

The model is WordLlama's ``l2_supercat`` (MIT; its 32,000 x 256 token table and its tokenizer
ship inside the ``wordllama`` wheel, so nothing is downloaded at run time). A text's vector is
the mean of its tokens' rows, normalised: no network of layers, so an article costs about a
tenth of a millisecond and a query a few microseconds.

The package itself is never imported: importing it configures the root logger and pulls in
its training code. Its two files are found through the import system and read here; the token
table is memory-mapped (32,000 rows of float16, 16 MB, shared by every process on the host and
paged in only for the tokens that occur).

An index keeps each article's vector in 8 bits per dimension plus one scale (:class:`Vectors`),
and its signs as 256 bits: the nearest neighbours of a query are shortlisted by Hamming distance
over the bits (four 64-bit words per article) and the shortlist ranked by the 8-bit cosine. At
100,000 articles that is 29 MB and a few milliseconds.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Names the model and the way vectors are made from it: a saved index made with anything
#: else is not used (its vectors would not be comparable with a query's).
MODEL = "wordllama-l2_supercat-256-mean/int8"
DIM = 256
#: Texts longer than this are cut before tokenizing: a title and an excerpt fit many times
#: over, and one huge seed must not cost more than a page of text.
MAX_TEXT_CHARS = 2_000
#: Texts tokenized and pooled together. Small: the tokenizer holds the GIL for a whole call,
#: and 128 texts (12 ms) stalled a bot's event loop every 40 ms while a change was embedded
#: in a worker thread; 16 cost no more CPU and hold it about 1 ms.
BATCH = 16
#: Words the tokenizer keeps tokenized. Its default, 10,000, fills with the first words it
#: sees and is never emptied: about 19 MB in a running bot, which a soak saw as growth (a
#: bot that loaded its saved index fills it from queries and changes over hours). 2,000 take
#: about 1 MB and cost about 9% more CPU to embed a corpus.
TOKENIZER_CACHE_WORDS = 2_000
_WORDS = DIM // 64


class MeaningUnavailable(RuntimeError):
    """The model's package is not installed, or its files are not where they should be."""


@dataclass(frozen=True, slots=True)
class Vectors:
    """Unit vectors of some articles, in 8 bits per dimension, with their sign bits."""

    codes: np.ndarray  # int8 (n, DIM): round(vector / scale)
    scales: np.ndarray  # float32 (n,): max |component| / 127, 0 for a text without tokens
    # uint64 (DIM // 64, n): bit set where the component is positive. Word by word, not
    # article by article: a Hamming pass over 100,000 articles is then four contiguous sweeps
    # (0.3 ms) instead of a strided sum (2.7 ms).
    signs: np.ndarray

    def __len__(self) -> int:
        return len(self.scales)

    @classmethod
    def of(cls, vectors: np.ndarray) -> Vectors:
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, DIM)
        peak = np.abs(vectors).max(axis=1, initial=0.0)
        scales = (peak / 127.0).astype(np.float32)
        safe = np.where(scales > 0, scales, 1.0)[:, None]
        codes = np.rint(vectors / safe).astype(np.int8)
        signs = np.packbits(vectors > 0, axis=1).view(np.uint64).reshape(-1, _WORDS)
        return cls(codes, scales, np.ascontiguousarray(signs.T))

    @classmethod
    def empty(cls) -> Vectors:
        return cls.of(np.zeros((0, DIM), dtype=np.float32))

    def take(self, rows: np.ndarray) -> Vectors:
        return Vectors(self.codes[rows], self.scales[rows], self.signs[:, rows])

    @staticmethod
    def concat(parts: Sequence[Vectors]) -> Vectors:
        if not parts:
            return Vectors.empty()
        return Vectors(
            np.concatenate([p.codes for p in parts]),
            np.concatenate([p.scales for p in parts]),
            np.concatenate([p.signs for p in parts], axis=1),
        )

    def cosine(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Cosine of ``query`` (a unit float32 vector) with the articles at ``rows``."""
        return (self.codes[rows].astype(np.float32) @ query) * self.scales[rows]

    def hamming(self, query_signs: np.ndarray) -> np.ndarray:
        """Differing sign bits between every article and the query (0..DIM)."""
        distance = np.bitwise_count(self.signs[0] ^ query_signs[0]).astype(np.uint16)
        for word in range(1, _WORDS):
            distance += np.bitwise_count(self.signs[word] ^ query_signs[word])
        return distance


def query_signs(vector: np.ndarray) -> np.ndarray:
    return np.packbits(vector > 0).view(np.uint64)


def article_text(title: str, excerpt: str) -> str:
    """What an article's vector is made of: its title, then its excerpt."""
    return f"{title}. {excerpt}" if excerpt else title


class Embedder:
    """Turns texts into unit vectors with WordLlama's token table (mean of token rows)."""

    def __init__(self, tokenizer: object, table: np.ndarray) -> None:
        self._tokenizer = tokenizer
        self._table = table  # (vocabulary, DIM) float16, memory-mapped

    def embed(
        self, texts: Sequence[str], *, between: Callable[[], object] | None = None
    ) -> np.ndarray:
        """Unit float32 vectors, one row per text (all zero for a text with no tokens).
        ``between`` is called between batches (background work lets replies go first)."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            if between is not None and start:
                between()
            # Runs of whitespace as one space: the pre-tokenizer below then splits exactly
            # where SentencePiece would, so the tokens are the model's own.
            chunk = [" ".join(t[:MAX_TEXT_CHARS].split()) for t in texts[start : start + BATCH]]
            out[start : start + len(chunk)] = self._pooled(chunk)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def _pooled(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)  # type: ignore[attr-defined]
        id_lists = [e.ids for e in encodings]  # each .ids makes a new list: once per text
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(texts))
        pooled = np.zeros((len(texts), DIM), dtype=np.float32)
        if not lengths.sum():
            return pooled
        ids = np.fromiter(
            itertools.chain.from_iterable(id_lists), dtype=np.int64, count=int(lengths.sum())
        )
        np.clip(ids, 0, len(self._table) - 1, out=ids)
        rows = self._table[ids].astype(np.float32)
        has = lengths > 0
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[has]
        pooled[has] = np.add.reduceat(rows, starts, axis=0) / lengths[has, None]
        return pooled


_lock = threading.Lock()
_embedder: Embedder | None = None


def embedder() -> Embedder:
    """The process's embedder, loaded on first use (about 0.2 s: the tokenizer's vocabulary).

    Raises :class:`MeaningUnavailable` when the model's package is missing or damaged.
    """
    global _embedder
    with _lock:
        if _embedder is None:
            _embedder = _load()
        return _embedder


def _files() -> tuple[Path, Path]:
    spec = importlib.util.find_spec("wordllama")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise MeaningUnavailable(
            "search by meaning needs the 'wordllama' package (pip install wordllama), "
            "or set search.semantic: false"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    weights = root / "weights" / "l2_supercat_256.safetensors"
    tokenizer = root / "tokenizers" / "l2_supercat_tokenizer_config.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise MeaningUnavailable(f"{path}: missing from the wordllama package")
    return weights, tokenizer


def _load() -> Embedder:
    # One thread: tokenizers would otherwise spread a batch over every core, and a bot's event
    # loop (and, on a small host, the other processes) would wait for it. An operator's own
    # setting wins.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tokenizers import Tokenizer, pre_tokenizers  # wordllama's dependency; needed here only

    weights, tokenizer_file = _files()
    try:
        table = _token_table(weights)
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:  # a damaged file raises whatever its reader raises
        raise MeaningUnavailable(f"{weights.parent.parent}: cannot read the model: {exc}") from exc
    tokenizer.no_padding()
    tokenizer.no_truncation()
    # The tokenizer as shipped has no pre-tokenizer: a whole text is one "word" to BPE, and
    # its cache (10,000 words) then keeps whole article texts, 80 MB after 100,000 articles.
    # Split before each word-start marker instead, as SentencePiece does: the same tokens,
    # and the cache holds words.
    tokenizer.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    resize = getattr(tokenizer.model, "_resize_cache", None)  # private; older releases lack it
    if resize is not None:
        resize(TOKENIZER_CACHE_WORDS)
    return Embedder(tokenizer, table)


def _token_table(path: Path) -> np.ndarray:
    """The safetensors file's one tensor, memory-mapped (header: 8-byte length, then JSON)."""
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    meta = header["embedding.weight"]
    if meta["dtype"] != "F16" or len(meta["shape"]) != 2 or meta["shape"][1] != DIM:
        raise ValueError(f"unexpected tensor {meta['dtype']} {meta['shape']}")
    start, _end = meta["data_offsets"]
    rows, cols = meta["shape"]
    offset = 8 + length + start
    return np.memmap(path, dtype=np.float16, mode="r", offset=offset, shape=(rows, cols))
