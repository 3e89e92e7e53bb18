"""Make hostile text visible instead of active.

Autoescaping stops markup, but not Unicode bidirectional controls: a step name holding U+202E
(right-to-left override) flips every character after it on the same line of the page, so a path can
be made to read like another one ("Trojan Source"). Before escaping, the report replaces each bidi
control with a visible marker such as ``⟨U+202E⟩``; the text stays truthful and the layout stays put.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

__all__ = ["BIDI_CONTROLS", "escape_visible", "finalize", "visible"]

BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with every bidi control character shown as ``⟨U+XXXX⟩``."""
    return BIDI_CONTROLS.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def escape_visible(value: Any) -> Markup:
    """HTML-escape ``value`` after making bidi controls visible (Markup passes through unchanged)."""
    if isinstance(value, Markup):
        return value
    return escape(visible(str(value)))


def finalize(value: Any) -> Any:
    """jinja2 ``finalize`` hook: every plain string printed by a template goes through :func:`visible`."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value
