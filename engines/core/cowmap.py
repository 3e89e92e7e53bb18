"""An insertion-ordered, persistent (copy-on-write) mapping for the run state's big indexes.

Why: :class:`~engines.core.state.RunState` is immutable, so every step transition built a new
``attempts`` dict -- a full copy, O(paths). On a 2,000-step DAG that copy was most of the cost of a
transition (~60 us per copy, ~5 copies per step attempt), making a replay quadratic in the DAG size.
:class:`CowMap` splits the entries into chunks of at most :data:`CHUNK` entries: :meth:`CowMap.set`
copies one chunk and the list of chunks, O(CHUNK + n / CHUNK), and shares the rest with the old map.
Iteration order is insertion order, exactly as a ``dict`` (replacing a key keeps its place), so
every consumer sees the same order it saw before (records stay byte-identical).

The key -> chunk index is shared, append-only, by every map derived from the same root; a version
verifies a hit in its own chunk and falls back to scanning its chunks when the index names a chunk of
a diverged version, so old versions stay correct (the actor engine keeps the ``before`` state of a
commit and compares attempts by identity). Not thread-safe beyond what the GIL gives a dict, like the
rest of the core: whoever holds a run state owns it.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from typing import Any, Generic, TypeVar, overload

__all__ = ["CHUNK", "COW_THRESHOLD", "CowMap", "as_dict", "with_entry", "without_entry"]

CHUNK = 64
"""Entries per chunk: a set() copies about CHUNK + n / CHUNK references (balanced near n = 4,000)."""

COW_THRESHOLD = 128
"""Below this many entries a plain dict copy is as cheap, so :func:`with_entry` keeps dicts."""

K = TypeVar("K")
V = TypeVar("V")
_MISSING: Any = object()


class _Items(ItemsView[K, V]):
    _mapping: CowMap[K, V]

    def __iter__(self) -> Iterator[tuple[K, V]]:
        for chunk in self._mapping._chunks:
            yield from chunk.items()


class _Values(ValuesView[V]):
    _mapping: CowMap[Any, V]

    def __iter__(self) -> Iterator[V]:
        for chunk in self._mapping._chunks:
            yield from chunk.values()


class CowMap(Mapping[K, V], Generic[K, V]):
    """A read-only Mapping; :meth:`set` returns a new map and leaves this one unchanged."""

    __slots__ = ("_chunks", "_len", "_where")

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        source = items.items() if isinstance(items, Mapping) else items
        chunks: list[dict[K, V]] = []
        where: dict[K, int] = {}
        for k, v in source:
            i = where.get(k)
            if i is not None:
                chunks[i][k] = v
                continue
            if not chunks or len(chunks[-1]) >= CHUNK:
                chunks.append({})
            chunks[-1][k] = v
            where[k] = len(chunks) - 1
        self._chunks = chunks
        self._where = where
        self._len = len(where)

    @classmethod
    def _make(cls, chunks: list[dict[K, V]], where: dict[K, int], length: int) -> CowMap[K, V]:
        new: CowMap[K, V] = object.__new__(cls)
        new._chunks, new._where, new._len = chunks, where, length
        return new

    def _find(self, key: K) -> int:
        """Index of the chunk of this version holding ``key``, or -1."""
        chunks = self._chunks
        i = self._where.get(key)
        if i is None:
            return -1
        if i < len(chunks) and key in chunks[i]:
            return i
        for j, chunk in enumerate(chunks):  # the shared index names a diverged version's chunk
            if key in chunk:
                return j
        return -1

    def __getitem__(self, key: K) -> V:
        i = self._find(key)
        if i < 0:
            raise KeyError(key)
        return self._chunks[i][key]

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V | Any, /) -> V | Any: ...
    def get(self, key: K, default: Any = None, /) -> Any:
        chunks = self._chunks
        i = self._where.get(key)
        if i is None:
            return default
        if i < len(chunks):
            value = chunks[i].get(key, _MISSING)
            if value is not _MISSING:
                return value
        j = self._find(key)
        return default if j < 0 else chunks[j][key]

    def __contains__(self, key: object) -> bool:
        return self._find(key) >= 0  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[K]:
        for chunk in self._chunks:
            yield from chunk

    def __len__(self) -> int:
        return self._len

    def to_dict(self) -> dict[K, V]:
        """``dict(self)``, chunk by chunk in C: the same keys in the same order (a key lives in exactly
        one chunk of a version, and iteration is chunk order), without a ``__getitem__`` per key."""
        out: dict[K, V] = {}
        for chunk in self._chunks:
            out.update(chunk)
        return out

    def items(self) -> ItemsView[K, V]:
        return _Items(self)

    def values(self) -> ValuesView[V]:
        return _Values(self)

    def __repr__(self) -> str:
        return f"CowMap({dict(self.items())!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (CowMap, (list(self.items()),))

    def set(self, key: K, value: V) -> CowMap[K, V]:
        """A new map with ``key`` -> ``value`` (kept in place when present, else appended)."""
        chunks = self._chunks
        i = self._find(key)
        if i >= 0:
            chunk = dict(chunks[i])
            chunk[key] = value
            new_chunks = chunks.copy()
            new_chunks[i] = chunk
            return CowMap._make(new_chunks, self._where, self._len)
        new_chunks = chunks.copy()
        if not new_chunks or len(new_chunks[-1]) >= CHUNK:
            new_chunks.append({key: value})
        else:
            chunk = dict(new_chunks[-1])
            chunk[key] = value
            new_chunks[-1] = chunk
        self._where[key] = len(new_chunks) - 1
        return CowMap._make(new_chunks, self._where, self._len + 1)

    def delete(self, key: K) -> CowMap[K, V]:
        """A new map without ``key`` (which must be present; the others keep their order). Re-adding
        it later appends it at the end, as a ``dict`` does."""
        chunks = self._chunks
        i = self._find(key)
        if i < 0:
            raise KeyError(key)
        length = self._len - 1
        if len(chunks) > 2 * (length // CHUNK) + 8:  # mostly emptied chunks: compact (O(n), amortized)
            return CowMap((k, v) for k, v in self.items() if k != key)
        chunk = dict(chunks[i])
        del chunk[key]
        new_chunks = chunks.copy()
        new_chunks[i] = chunk
        return CowMap._make(new_chunks, self._where, length)


def with_entry(mapping: Mapping[K, V], key: K, value: V) -> Mapping[K, V]:
    """``{**mapping, key: value}`` as cheaply as the size allows: a dict copy while small, a
    :class:`CowMap` once it has :data:`COW_THRESHOLD` entries (same iteration order either way)."""
    if type(mapping) is CowMap:
        return mapping.set(key, value)
    if len(mapping) >= COW_THRESHOLD:
        return CowMap(mapping).set(key, value)
    out = dict(mapping)
    out[key] = value
    return out


def without_entry(mapping: Mapping[K, V], key: K) -> Mapping[K, V]:
    """``{k: v for k, v in mapping.items() if k != key}`` (``key`` present) as cheaply as the size
    allows: a dict copy while small, a :class:`CowMap` once it has :data:`COW_THRESHOLD` entries."""
    if type(mapping) is CowMap:
        return mapping.delete(key)
    if len(mapping) >= COW_THRESHOLD:
        return CowMap(mapping).delete(key)
    out = dict(mapping)
    del out[key]
    return out


def as_dict(mapping: Mapping[K, V]) -> dict[K, V]:
    """``dict(mapping)``; for a :class:`CowMap` without a Python-level lookup per key (the run state's
    ``live`` / ``backoff`` maps are converted at every JSON encoding of a run header)."""
    if type(mapping) is CowMap:
        return mapping.to_dict()
    return dict(mapping)
