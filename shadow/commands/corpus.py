"""``shadow corpus generate|validate|stats``."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, groups: dict[str, Any]) -> None:
    """Placeholder until the corpus commands land (issue 2)."""
    del sub, groups


def _unused(args: argparse.Namespace) -> int:  # pragma: no cover
    return 0
