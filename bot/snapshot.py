"""A search index as bytes, so that a restart loads it instead of tokenizing every article again.

Stored in the database beside the corpus generation it serves (see
:meth:`bot.store.base.Store.save_index_snapshot`): a process starting up loads the newest one,
then applies the changes logged since its generation, exactly as it follows any other change.
A snapshot from another version of this format, or one that does not decode, is ignored and the
index is built from the articles instead; so is one older than the change log reaches.

The layout: a magic number, a JSON header (the vocabulary, topic and source names, and where
each array lies), then the arrays' raw bytes, each 8-byte aligned, segment by segment (with
their dead-document marks: saving never has to merge first). Loading makes numpy views
into the one bytes object: no copy of the arrays, nothing tokenized. The typo and trigram tables
are rebuilt from the vocabulary on load (they hash with the process's own string hash).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from . import meaning
from .search import SearchIndex, _Shared
from .segments import DensePostings, Names, Ragged, Segment, TextColumn, Vocabulary, _postings

MAGIC = b"NBIX"
FORMAT = 2  # 2: each segment's vectors (search by meaning), and the model that made them
_HEAD = struct.Struct("<4sII")  # magic, format, header length


class SnapshotError(Exception):
    """The bytes are not a snapshot this version of newsbot can read."""


def dump(index: SearchIndex) -> bytearray:
    """The index as bytes, segment by segment (dead documents included, with their marks)."""
    shared = index._shared
    arrays: dict[str, np.ndarray] = {
        "df": index._df,
        "topic_counts": index._topic_counts,
        "provider_counts": index._provider_counts,
    }
    for number, (segment, alive) in enumerate(
        zip(index._segments, index._alive_parts, strict=True)
    ):
        arrays.update(_segment_arrays(f"s{number}.", segment, alive))
    placed: list[list[Any]] = []
    offset = 0
    for name, array in arrays.items():
        placed.append([name, array.dtype.str, len(array), offset])
        offset += array.nbytes + (-array.nbytes % 8)
    header = json.dumps(
        {
            "terms": shared.vocab.terms[: len(index._df)],
            "topics": [shared.topics.keys, shared.topics.shown],
            "providers": [shared.providers.keys, shared.providers.shown],
            "segments": index.segment_count,
            "meaning": meaning.MODEL if index.semantic else None,
            "arrays": placed,
        },
        ensure_ascii=True,  # lone surrogates survive as escapes
    ).encode("ascii")
    header += b" " * (-len(header) % 8)
    start = _HEAD.size + len(header)
    # One buffer, each array copied straight into its place: no second copy of the whole.
    out = bytearray(start + offset)
    _HEAD.pack_into(out, 0, MAGIC, FORMAT, len(header))
    view = memoryview(out)
    view[_HEAD.size : start] = header
    for (_name, _dtype, _count, at), array in zip(placed, arrays.values(), strict=True):
        raw = np.ascontiguousarray(array).view(np.uint8)
        view[start + at : start + at + len(raw)] = raw
    view.release()
    return out


def _segment_arrays(prefix: str, segment: Segment, alive: np.ndarray) -> dict[str, np.ndarray]:
    arrays = {
        "alive": alive,
        "published": segment.published,
        "quality": segment.quality,
        "provider": segment.provider,
        "url_keys": segment.url_keys,
        "urls.off": segment.urls.off,
        "urls.data": np.frombuffer(segment.urls.data, dtype=np.uint8),
        "titles.off": segment.titles.off,
        "titles.data": np.frombuffer(segment.titles.data, dtype=np.uint8),
    }
    for name in ("title", "excerpt", "compound", "topic"):
        ragged: Ragged = getattr(segment, name)
        arrays[f"{name}.flat"], arrays[f"{name}.off"] = ragged.flat, ragged.off
    for name in ("title_post", "excerpt_post"):
        postings = getattr(segment, name)
        if isinstance(postings, DensePostings):
            arrays[f"{name}.ptr"], arrays[f"{name}.docs"] = postings.ptr, postings.docs
    if segment.meaning is not None:
        vectors = segment.meaning
        arrays["codes"] = vectors.codes.reshape(-1)
        arrays["scales"] = vectors.scales
        arrays["signs"] = vectors.signs.reshape(-1)
    return {prefix + name: array for name, array in arrays.items()}


def load(data: bytes, embedder: meaning.Embedder | None = None) -> SearchIndex:
    """The index :func:`dump` wrote; raises :class:`SnapshotError` for anything else.

    With ``embedder`` (search by meaning on), a snapshot saved without vectors, or with
    another model's, is refused: its vectors would be missing or not comparable with a query's.
    Without, any vectors it holds are left out.
    """
    try:
        magic, version, header_length = _HEAD.unpack_from(data)
        if magic != MAGIC or version != FORMAT:
            raise SnapshotError(f"not a format {FORMAT} index snapshot")
        start = _HEAD.size + header_length
        header = json.loads(data[_HEAD.size : start])
        arrays = {
            name: np.frombuffer(data, dtype=np.dtype(dtype), count=count, offset=start + offset)
            for name, dtype, count, offset in header["arrays"]
        }
        if embedder is not None and header.get("meaning") != meaning.MODEL:
            raise SnapshotError(
                f"the index snapshot holds no vectors of {meaning.MODEL} "
                f"(it has {header.get('meaning') or 'none'})"
            )
        return _assemble(header, arrays, embedder)
    except SnapshotError:
        raise
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as exc:
        raise SnapshotError(f"the index snapshot does not decode: {exc}") from exc


def _assemble(
    header: dict[str, Any], arrays: dict[str, np.ndarray], embedder: meaning.Embedder | None
) -> SearchIndex:
    vocab = Vocabulary()
    vocab.intern_all(header["terms"])
    names = []
    for keys, shown in (header["topics"], header["providers"]):
        table = Names()
        for key, name in zip(keys, shown, strict=True):
            table.intern(key, name)
        names.append(table)
    if len(arrays["df"]) != len(vocab) or len(arrays["topic_counts"]) != len(names[0]):
        raise SnapshotError("the index snapshot's tables do not agree")
    parts = [
        _segment(f"s{n}.", arrays, with_meaning=embedder is not None)
        for n in range(int(header["segments"]))
    ]
    if not parts:
        raise SnapshotError("the index snapshot holds no segment")
    return SearchIndex(
        _Shared.over(vocab, names[0], names[1], embedder),
        tuple(segment for segment, _ in parts),
        tuple(alive for _, alive in parts),
        arrays["df"].copy(),
        arrays["topic_counts"].copy(),
        arrays["provider_counts"].copy(),
        [],
    )


def _segment(
    prefix: str, arrays: dict[str, np.ndarray], *, with_meaning: bool
) -> tuple[Segment, np.ndarray]:
    def get(name: str) -> np.ndarray:
        return arrays[prefix + name]

    def ragged(name: str) -> Ragged:
        return Ragged(get(f"{name}.flat"), get(f"{name}.off"))

    def postings(name: str, terms: np.ndarray, docs: np.ndarray, size: int) -> Any:
        if prefix + f"{name}.ptr" in arrays:
            return DensePostings(get(f"{name}.ptr"), get(f"{name}.docs"))
        return _postings(terms, docs, size)  # a small segment's: cheap to sort again

    title, excerpt, compound = ragged("title"), ragged("excerpt"), ragged("compound")
    size = len(get("published"))
    segment = Segment(
        size=size,
        title=title,
        excerpt=excerpt,
        compound=compound,
        topic=ragged("topic"),
        title_post=postings(
            "title_post",
            np.concatenate([title.flat, compound.flat]),
            np.concatenate([title.docs(), compound.docs()]),
            size,
        ),
        excerpt_post=postings("excerpt_post", excerpt.flat, excerpt.docs(), size),
        published=get("published"),
        quality=get("quality"),
        provider=get("provider"),
        url_keys=get("url_keys"),
        urls=TextColumn(memoryview(get("urls.data")), get("urls.off")),
        titles=TextColumn(memoryview(get("titles.data")), get("titles.off")),
        meaning=meaning.Vectors(
            get("codes").reshape(size, meaning.DIM),
            get("scales"),
            get("signs").reshape(meaning.DIM // 64, size),
        )
        if with_meaning
        else None,
    )
    return segment, get("alive").astype(bool)  # a copy: a change writes into its marks
