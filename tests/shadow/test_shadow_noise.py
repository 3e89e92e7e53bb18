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
    count_hits,
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

    def test_hits_counted(self, tmp_path: Path) -> None:
        """Hits sum the divergence counts of every matching signature."""
        reg = Registry.load(_registry(tmp_path, ENTRY.format(expires="2099-01-01")))
        assert count_hits(reg, [("etl|SHELL|a|config", 2), ("etl|SHELL|b|config", 3), ("x|y|z|params", 7)]) == {
            "DIV-1": 5}

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
