"""Shared helpers for the importer tests (fixture paths, running one importer)."""

from __future__ import annotations

from pathlib import Path

from corpora.importers import IMPORTERS, ImportedItem, ImportOptions, run_import

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "importers"
SHARED = Path(__file__).resolve().parents[1].parent.parent / "shared" / "corpora"


def import_all(source: str, *paths: Path, options: ImportOptions | None = None) -> list[ImportedItem]:
    return list(run_import(IMPORTERS[source], list(paths), options or ImportOptions()))
