"""CowMap behaves exactly like an insertion-ordered dict copied at every change, old versions included."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from engines.core.cowmap import CHUNK, COW_THRESHOLD, CowMap, with_entry

_KEYS = st.integers(0, 3 * CHUNK).map(lambda i: f"k{i}")
_OPS = st.lists(st.tuples(st.integers(0, 50), _KEYS, st.integers()), min_size=1, max_size=400)


class TestCowMapModel:
    @given(ops=_OPS)
    @settings(max_examples=150, deadline=None)
    def test_versions_equal_dict_model(self, ops: list[tuple[int, str, int]]) -> None:
        """Every version (also ones branched from old versions) equals its dict model, order included."""
        versions: list[tuple[CowMap[str, int], dict[str, int]]] = [(CowMap(), {})]
        for pick, key, value in ops:
            base, model = versions[pick % len(versions)]  # branch from any earlier version
            new_model = dict(model)
            new_model[key] = value
            versions.append((base.set(key, value), new_model))
        for cow, model in versions:
            assert list(cow.items()) == list(model.items())
            assert list(cow) == list(model)
            assert list(cow.values()) == list(model.values())
            assert len(cow) == len(model)
            for i in range(3 * CHUNK + 1):
                assert cow.get(f"k{i}") == model.get(f"k{i}")
                assert (f"k{i}" in cow) == (f"k{i}" in model)

    def test_missing_key_raises_key_error(self) -> None:
        """Indexing a key that is absent in this version raises KeyError even if a later version has it."""
        old = CowMap({"a": 1})
        new = old.set("b", 2)
        assert new["b"] == 2
        try:
            old["b"]
        except KeyError:
            pass
        else:  # pragma: no cover - the assertion below explains
            raise AssertionError("old version must not see a key added later")

    def test_equality_and_pickle(self) -> None:
        """A CowMap equals the dict with the same items (both ways) and survives pickling."""
        cow = CowMap({f"k{i}": i for i in range(200)}).set("k5", -5)
        expected = {f"k{i}": (-5 if i == 5 else i) for i in range(200)}
        assert cow == expected
        assert expected == cow
        assert pickle.loads(pickle.dumps(cow)) == expected


class TestWithEntry:
    def test_small_maps_stay_dicts(self) -> None:
        """Below the threshold with_entry returns a plain dict copy and leaves the input unchanged."""
        src = {"a": 1}
        out = with_entry(src, "b", 2)
        assert type(out) is dict
        assert out == {"a": 1, "b": 2}
        assert src == {"a": 1}

    def test_large_maps_become_cowmaps_in_order(self) -> None:
        """From the threshold on, the result is a CowMap with the dict's order and the new entry last."""
        src = {f"k{i}": i for i in range(COW_THRESHOLD)}
        out = with_entry(src, "new", -1)
        assert isinstance(out, CowMap)
        assert list(out) == [*src, "new"]
        assert len(src) == COW_THRESHOLD
