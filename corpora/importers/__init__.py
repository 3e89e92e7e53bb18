"""Importers: turn traces and definitions written by other systems into ``shadow-trace/1``.

``IMPORTERS`` maps a ``--from`` name to its importer. Use :func:`run_import` to stream a source:
it yields one :class:`ImportedItem` per trace (validated) or per quarantined input (with a typed
:class:`~corpora.errors.TraceError` saying what, where and what to do). See docs/IMPORTERS.md for
every mapping and what it loses or synthesizes.
"""

from __future__ import annotations

from corpora.importers._common import ImportedItem, Importer, ImportOptions, run_import, validate_imported
from corpora.importers.alibaba import AlibabaImporter
from corpora.importers.argo import ArgoImporter
from corpora.importers.maestro import MaestroImporter
from corpora.importers.nextflow import NextflowImporter
from corpora.importers.wfformat import WfFormatImporter

__all__ = [
    "IMPORTERS",
    "ImportOptions",
    "ImportedItem",
    "Importer",
    "run_import",
    "validate_imported",
]

IMPORTERS: dict[str, Importer] = {
    "wfformat": WfFormatImporter(),
    "maestro": MaestroImporter(),
    "argo": ArgoImporter(),
    "nextflow": NextflowImporter(),
    "alibaba": AlibabaImporter(),
}
