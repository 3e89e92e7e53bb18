"""Noise filter boundaries and the known-divergence registry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shadow.noise import (
    ExpiredEntryError,
    NoiseConfig,
    Registry,
    RegistryError,
    classify_signature,
    exceeds_noise,
)

CFG = NoiseConfig()


class TestNoiseFilter:
    def test_raw_must_exceed_noise(self) -> None:
        """Equal raw and A/A counts are noise, however high."""
        assert not exceeds_noise(50, 50, 100, CFG)

    def test_relative_boundary(self) -> None:
        """Exactly 20 % above A/A is not reported; just above is."""
        assert not exceeds_noise(120, 100, 10_000, CFG)
        assert exceeds_noise(121, 100, 10_000, CFG)

    def test_absolute_boundary(self) -> None:
        """Exactly 0.03 % of traces is not reported; just above is."""
        assert not exceeds_noise(3, 0, 10_000, CFG)
        assert exceeds_noise(4, 0, 10_000, CFG)

    def test_zero_noise_is_infinitely_relative(self) -> None:
        """A signature A/A never shows passes the relative test with a single trace."""
        assert exceeds_noise(1, 0, 100, CFG)

    def test_configurable(self) -> None:
        """Looser thresholds turn a reported signature into noise."""
        assert not exceeds_noise(121, 100, 10_000, NoiseConfig(relative=0.5))

    def test_empty_database(self) -> None:
        """No traces at all: nothing can be reported."""
        assert not exceeds_noise(1, 0, 0, CFG)


def _registry(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "known.toml"
    path.write_text(body, encoding="utf-8")
    return path


ENTRY = """
[[divergence]]
id = "DIV-1"
signature = "etl|SHELL|*|config"
owner = "team-a"
reason = "tags order"
expires = {expires}
"""


class TestRegistry:
    def test_match_waives(self, tmp_path: Path) -> None:
        """A matching glob marks the signature waived by its entry, even above noise."""
        reg = Registry.load(_registry(tmp_path, ENTRY.format(expires="2099-01-01")))
        status = classify_signature("etl|SHELL|fan[*]/x|config", 10, 0, 10, CFG, reg)
        assert (status.status, status.waived_by) == ("waived", "DIV-1")
        assert classify_signature("etl|SHELL|x|params", 10, 0, 10, CFG, reg).status == "unexplained"

    def test_cause_globs_narrowed_by_signature(self, tmp_path: Path) -> None:
        """An entry may name a cause (what changed), a signature (where), or both (that cause, there only)."""
        body = (
            '[[divergence]]\nid = "C-1"\ncause = "outputs|outputs.region|added:*"\nsignature = "etl|*"\n'
            'owner = "team-a"\nreason = "new field"\nexpires = 2099-01-01\n'
            '[[divergence]]\nid = "C-2"\ncause = "params|*|upper-cased"\n'
            'owner = "team-b"\nreason = "case"\nexpires = 2099-01-01\n'
        )
        reg = Registry.load(_registry(tmp_path, body))
        region = "outputs|outputs.region|added:str"
        assert reg.match("etl|SHELL|a|outputs", region).id == "C-1"  # type: ignore[union-attr]
        assert reg.match("ml|SHELL|a|outputs", region) is None  # the signature glob narrows it
        assert reg.match("ml|HTTP|x|params", "params|params.table|upper-cased").id == "C-2"  # type: ignore[union-attr]
        assert reg.match("etl|SHELL|a|config", "config|config.tags|text") is None

    def test_an_entry_needs_a_signature_or_a_cause(self, tmp_path: Path) -> None:
        body = '[[divergence]]\nid = "X"\nowner = "o"\nreason = "r"\nexpires = 2099-01-01\n'
        with pytest.raises(RegistryError, match="signature or cause"):
            Registry.load(_registry(tmp_path, body))

    def test_expired_entry_is_error(self, tmp_path: Path) -> None:
        """An entry past its date raises a typed error naming it and saying what to do."""
        reg = Registry.load(_registry(tmp_path, ENTRY.format(expires="2026-01-01")))
        reg.check(dt.date(2026, 1, 1))  # the expiry day itself is still valid
        with pytest.raises(ExpiredEntryError) as info:
            reg.check(dt.date(2026, 1, 2))
        assert "DIV-1" in str(info.value)
        assert "extend 'expires'" in str(info.value)

    def test_missing_field(self, tmp_path: Path) -> None:
        """An entry without an owner is rejected with the list of required fields."""
        body = ENTRY.format(expires="2099-01-01").replace('owner = "team-a"\n', "")
        with pytest.raises(RegistryError, match="lacks owner"):
            Registry.load(_registry(tmp_path, body))

    def test_bad_toml_and_duplicates(self, tmp_path: Path) -> None:
        """Unparsable TOML and duplicate ids are registry errors."""
        with pytest.raises(RegistryError, match="cannot read"):
            Registry.load(_registry(tmp_path, "[[divergence]\n"))
        twice = ENTRY.format(expires="2099-01-01") * 2
        with pytest.raises(RegistryError, match="duplicate id"):
            Registry.load(_registry(tmp_path, twice))
