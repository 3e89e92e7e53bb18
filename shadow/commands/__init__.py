"""Command modules of the shadow CLI (one per command group)."""
