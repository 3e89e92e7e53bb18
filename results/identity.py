"""The identity of results: what produced them, so that a verdict judges the candidate it names.

An identity is the sha256 of its parts (canonical JSON): the corpus content (the files' bytes, not
their names or paths), the baseline and the candidate engine (name, version, factory target and a
hash of the factory options), the seeds, the time limit and the harness version. Selection
(``--where``, ``--sample``, ``--limit``), noise thresholds and the registry are not part of it: they
choose which traces are replayed and how divergences are classified, never what a replay records.
``--exact`` is not part of it either: exact and fast replays give identical records by contract
(tests/engines/test_*_fast.py); provenance notes it per session.

Every row ``shadow run`` writes carries the identity of its session (column ``identity``). One file
may hold several identities (``shadow run --new-session``); readers see one at a time: the latest
(the identity of the most recent session) unless asked for another. :func:`scope` makes a read-only
connection show only one identity's rows, by shadowing each table with a temporary view of the same
name, so every reader query (gate, summary, report) stays unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from results.errors import ResultsError
from results.schema import IDENTITY_TABLES, dumps

__all__ = [
    "Identity",
    "IdentityMismatch",
    "compute_identity",
    "differences",
    "identities",
    "resolve",
    "scope",
]


class IdentityMismatch(ResultsError):
    """``shadow run`` was asked to add results of one identity to a database holding another."""


def compute_identity(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(dumps(dict(parts)).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Identity:
    """One identity in a results database, with when its last session started."""

    id: str
    parts: dict[str, Any]
    last_started_at: str = ""

    @property
    def short(self) -> str:
        return self.id[:12]

    @property
    def candidate_id(self) -> str:
        """The candidate's own identity: sha256 of the identity's ``candidate`` part (engine name, version,
        factory target, options hash). New traffic changes the identity, not this; the rollout advances a
        canary only on verdicts about the candidate it is running."""
        return compute_identity(self.parts.get("candidate") or {}) if not self.parts.get("legacy_v1") else ""

    def engine(self, role: str) -> str:
        part = self.parts.get(role) or {}
        return str(part.get("engine") or "?")

    def describe(self) -> str:
        """``identity 1a2b3c4d5e6f (candidate actor 0.1.0, baseline legacy 0.1.0, seed 0, corpus 9f8e7d6c)``."""
        if self.parts.get("legacy_v1"):
            return (
                f"identity {self.short} (written before identities were recorded: candidate "
                f"{self.engine('candidate')}, baseline {self.engine('baseline')})"
            )
        seeds = self.parts.get("seeds") or {}
        part = self.parts.get("corpus") or {}
        corpus = str(part.get("content_sha256", ""))[:8]
        if part.get("follow_head_sha256"):  # shadow run --follow: the stream, named by its first line
            corpus = "stream " + str(part["follow_head_sha256"])[:8]
        return (
            f"identity {self.short} (candidate {self.engine('candidate')}, baseline {self.engine('baseline')}, "
            f"seed {seeds.get('baseline', '?')}, corpus {corpus or '?'})"
        )

    def to_dict(self) -> dict[str, Any]:
        """For the verdict JSON: the id, the engines in words, and every part."""
        return {
            "id": self.id,
            "candidate_engine": self.engine("candidate"),
            "baseline_engine": self.engine("baseline"),
            "parts": self.parts,
        }


def _engine_words(part: Mapping[str, Any]) -> str:
    config = str(part.get("config_hash") or "")[:8]
    return f"{part.get('engine', '?')}" + (f" (config {config})" if config else "")


def _corpus_words(part: Mapping[str, Any]) -> str:
    if part.get("follow_head_sha256"):
        return f"the followed stream whose first line has sha256 {str(part['follow_head_sha256'])[:12]}"
    return f"content sha256 {str(part.get('content_sha256', ''))[:12]}"


def differences(stored: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """What differs between the identity in the database and the one requested, one line per part."""
    if stored.get("legacy_v1"):
        return [
            "the database holds results written before identities were recorded (schema 1): they cannot be "
            f"matched to this run (their candidate: {_engine_words(stored.get('candidate') or {})})"
        ]
    lines: list[str] = []
    for role in ("candidate", "baseline"):
        old, new = stored.get(role) or {}, requested.get(role) or {}
        if old != new:
            lines.append(
                f"{role} engine: {_engine_words(old)} in the database, {_engine_words(new)} requested"
            )
    old_part, new_part = stored.get("corpus") or {}, requested.get("corpus") or {}
    if old_part != new_part:
        lines.append(
            f"corpus: {_corpus_words(old_part)} in the database, {_corpus_words(new_part)} requested "
            "(other or changed corpus files, or another followed stream)"
        )
    if stored.get("seeds") != requested.get("seeds"):
        old_seed, new_seed = (stored.get("seeds") or {}), (requested.get("seeds") or {})
        lines.append(
            f"seeds: --seed {old_seed.get('baseline')} in the database, --seed {new_seed.get('baseline')} "
            "requested"
        )
    if stored.get("time_limit") != requested.get("time_limit"):
        lines.append(
            f"time limit: {stored.get('time_limit')} s in the database, {requested.get('time_limit')} s "
            "requested"
        )
    if stored.get("harness_version") != requested.get("harness_version"):
        lines.append(
            f"harness version: workflow-shadow {stored.get('harness_version')} in the database, "
            f"{requested.get('harness_version')} requested"
        )
    old_faults = (stored.get("faults") or {}).get("campaign_sha256")
    new_faults = (requested.get("faults") or {}).get("campaign_sha256")
    if old_faults != new_faults:
        lines.append(
            f"fault campaign: {_campaign(old_faults)} in the database, {_campaign(new_faults)} requested"
        )
    known = {"candidate", "baseline", "corpus", "seeds", "time_limit", "harness_version", "faults"}
    other = sorted(k for k in {*stored, *requested} - known if stored.get(k) != requested.get(k))
    if other or not lines:
        lines.append(f"identity parts {', '.join(other) or '(none)'} differ")
    return lines


def _campaign(sha: object) -> str:
    return f"--faults campaign sha256 {str(sha)[:12]}" if sha else "no --faults campaign"


def _has_identity(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'provenance' "
        "AND column_name = 'identity' AND table_catalog = current_database()"
    ).fetchone()
    return bool(row and row[0])


def identities(con: duckdb.DuckDBPyConnection) -> list[Identity]:
    """Every identity in the file, latest first (by its most recent session)."""
    if not _has_identity(con):
        return []
    rows = con.execute(
        "SELECT identity, arg_max(identity_parts, started_at), max(started_at) FROM provenance "
        "WHERE identity IS NOT NULL AND identity <> '' GROUP BY identity ORDER BY max(started_at) DESC, identity"
    ).fetchall()
    out = []
    for identity, parts, started in rows:
        try:
            parsed = json.loads(parts) if parts else {}
        except json.JSONDecodeError:
            parsed = {}
        out.append(Identity(str(identity), parsed if isinstance(parsed, dict) else {}, str(started or "")))
    return out


def resolve(con: duckdb.DuckDBPyConnection, requested: str | None, where: str) -> Identity | None:
    """The identity to read: ``requested`` (a full id or a unique prefix) or the latest one.

    None when the file records no identity (written before schema 2, or by a test factory): then every
    row is read, as before. Raises :class:`ResultsError` when ``requested`` matches none or several."""
    known = identities(con)
    if requested is None:
        return known[0] if known else None
    wanted = requested.strip().lower()
    matches = [i for i in known if i.id.startswith(wanted)] if wanted else []
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(i.describe() for i in known[:5]) or "none (the file records no identities)"
    if not matches:
        raise ResultsError(f"{where}: no identity {requested!r} in this database; it holds: {listing}")
    raise ResultsError(
        f"{where}: identity prefix {requested!r} matches {len(matches)} identities; give more "
        f"characters: {listing}"
    )


_SAFE_ID = re.compile(r"^[0-9a-z-]{1,128}$")


def scope(con: duckdb.DuckDBPyConnection, identity: Identity) -> None:
    """Make ``con`` (read-only is fine) show only ``identity``'s rows: a temporary view per table."""
    if not _SAFE_ID.match(identity.id):
        raise ResultsError(f"identity {identity.id!r} is malformed")
    database = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    catalog = '"' + str(database).replace('"', '""') + '"'
    present = {
        t
        for (t,) in con.execute(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'identity' AND table_schema = 'main' "
            "AND table_catalog = current_database()"
        ).fetchall()
    }
    for table in IDENTITY_TABLES:
        if table in present:
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * FROM {catalog}.main.{table} "
                f"WHERE identity = '{identity.id}'"
            )
