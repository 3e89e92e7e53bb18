"""Separate real divergences from noise (A/A) and from known, waived divergences (the registry).

Diffy's rule: a signature is reported only if baseline-vs-candidate shows it clearly more often than
baseline-vs-baseline (another perturbation seed): raw > noise, relative difference above a threshold
and absolute difference above a share of all traces. Known divergences are waived by a registry
file with an owner, a reason and an expiry date; an expired entry is an error, so waivers cannot
silently outlive their reason.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ExpiredEntryError",
    "NoiseConfig",
    "Registry",
    "RegistryEntry",
    "RegistryError",
    "SignatureStatus",
    "classify_group",
    "classify_signature",
    "exceeds_noise",
]


@dataclass(frozen=True, slots=True)
class NoiseConfig:
    """Thresholds of the noise filter: ``relative`` (0.20 = 20 %) of the A/A count, ``absolute``
    (0.0003 = 0.03 %) of all traces."""

    relative: float = 0.20
    absolute: float = 0.0003


def exceeds_noise(candidate_traces: int, aa_traces: int, total_traces: int, config: NoiseConfig) -> bool:
    """True when a signature diverges clearly more under the candidate than under A/A.

    relative = (raw - noise) / noise (infinite when A/A never shows it); absolute = (raw - noise) /
    traces. Both must be strictly above their thresholds, and raw strictly above noise."""
    if candidate_traces <= aa_traces or total_traces <= 0:
        return False
    excess = candidate_traces - aa_traces
    relative = float("inf") if aa_traces == 0 else excess / aa_traces
    return relative > config.relative and excess / total_traces > config.absolute


class RegistryError(Exception):
    """The known-divergence registry file is unreadable or malformed."""


class ExpiredEntryError(RegistryError):
    """A registry entry's expiry date has passed."""

    def __init__(self, entry: RegistryEntry, today: dt.date) -> None:
        self.entry = entry
        super().__init__(
            f"known-divergence entry {entry.id!r} (pattern {entry.pattern!r}, owner {entry.owner}) expired on "
            f"{entry.expires.isoformat()} (today {today.isoformat()}): fix the divergence and delete the entry, "
            "or have its owner extend 'expires' with a fresh reason"
        )


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One known divergence: ``pattern`` is a signature glob (where it shows), ``cause`` a cause-key glob
    (what changed, ``kind|field|change``); an entry with both waives what matches both, so a cause can
    be waived for some paths only. An empty glob matches everything."""

    id: str
    pattern: str
    owner: str
    reason: str
    expires: dt.date
    cause: str = ""

    def matches(self, signature: str, cause: str = "") -> bool:
        return (not self.pattern or fnmatch.fnmatchcase(signature, self.pattern)) and (
            not self.cause or fnmatch.fnmatchcase(cause, self.cause)
        )


@dataclass(frozen=True, slots=True)
class Registry:
    """Known divergences, from a TOML file of ``[[divergence]]`` tables (id, signature, owner, reason,
    expires)."""

    entries: tuple[RegistryEntry, ...] = ()

    @classmethod
    def load(cls, path: str | Path) -> Registry:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RegistryError(f"{path}: cannot read the known-divergence registry: {exc}") from exc
        raw = data.get("divergence", [])
        if not isinstance(raw, list):
            raise RegistryError(f"{path}: 'divergence' must be an array of tables ([[divergence]])")
        entries: list[RegistryEntry] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            where = f"{path}: [[divergence]] #{i + 1}"
            if not isinstance(item, dict):
                raise RegistryError(f"{where} is not a table")
            missing = [k for k in ("id", "owner", "reason", "expires") if k not in item]
            if "signature" not in item and "cause" not in item:
                missing.insert(1, "signature or cause")
            if missing:
                raise RegistryError(
                    f"{where} lacks {', '.join(missing)}; every entry needs id, a signature glob "
                    "and/or a cause glob, owner, reason and expires (a date like 2026-12-31)"
                )
            expires = item["expires"]
            if isinstance(expires, str):
                try:
                    expires = dt.date.fromisoformat(expires)
                except ValueError as exc:
                    raise RegistryError(f"{where}: expires {expires!r} is not a date (YYYY-MM-DD)") from exc
            if isinstance(expires, dt.datetime):
                expires = expires.date()
            if not isinstance(expires, dt.date):
                raise RegistryError(f"{where}: expires must be a date (YYYY-MM-DD)")
            entry_id = str(item["id"])
            if entry_id in seen:
                raise RegistryError(f"{where}: duplicate id {entry_id!r}; ids must be unique")
            seen.add(entry_id)
            entries.append(
                RegistryEntry(
                    entry_id,
                    str(item.get("signature", "")),
                    str(item["owner"]),
                    str(item["reason"]),
                    expires,
                    str(item.get("cause", "")),
                )
            )
        return cls(tuple(entries))

    def expired(self, today: dt.date) -> tuple[RegistryEntry, ...]:
        return tuple(e for e in self.entries if e.expires < today)

    def check(self, today: dt.date) -> None:
        """Raise :class:`ExpiredEntryError` for the first entry that expired before ``today``."""
        for entry in self.entries:
            if entry.expires < today:
                raise ExpiredEntryError(entry, today)

    def match(self, signature: str, cause: str = "") -> RegistryEntry | None:
        """The first entry whose globs match the signature and the cause (file order decides ties)."""
        return next((e for e in self.entries if e.matches(signature, cause)), None)


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    signature: str
    status: str  # unexplained | noise | waived
    waived_by: str | None


def classify_signature(
    signature: str,
    candidate_traces: int,
    aa_traces: int,
    total_traces: int,
    config: NoiseConfig,
    registry: Registry,
) -> SignatureStatus:
    """Waived when the registry matches; else unexplained when it exceeds A/A noise; else noise."""
    entry = registry.match(signature)
    if entry is not None:
        return SignatureStatus(signature, "waived", entry.id)
    if exceeds_noise(candidate_traces, aa_traces, total_traces, config):
        return SignatureStatus(signature, "unexplained", None)
    return SignatureStatus(signature, "noise", None)


def classify_group(
    candidate_traces: int, aa_traces: int, total_traces: int, config: NoiseConfig, waived_by: str | None
) -> SignatureStatus:
    """The status of a cause group (or signature): waived when the registry waives all of it, else
    unexplained when it exceeds A/A noise, else noise. (The key field holds no meaning here.)"""
    if waived_by is not None:
        return SignatureStatus("", "waived", waived_by)
    if exceeds_noise(candidate_traces, aa_traces, total_traces, config):
        return SignatureStatus("", "unexplained", None)
    return SignatureStatus("", "noise", None)
