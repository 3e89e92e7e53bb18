"""reports.text: bidi controls become visible markers; markup is escaped; Markup passes through."""

from __future__ import annotations

from markupsafe import Markup

from reports.text import escape_visible, finalize, visible


class TestVisible:
    def test_every_bidi_control_is_marked(self) -> None:
        """Overrides, embeddings, isolates and marks all become ⟨U+XXXX⟩."""
        text = "a\u202eb\u2066c\u2069d\u200fe\u061cf"
        out = visible(text)
        assert out == "a⟨U+202E⟩b⟨U+2066⟩c⟨U+2069⟩d⟨U+200F⟩e⟨U+061C⟩f"

    def test_plain_rtl_text_kept(self) -> None:
        """Hebrew or Arabic letters are content, not controls: they stay."""
        assert visible("שלום مرحبا") == "שלום مرحبا"

    def test_escape_visible(self) -> None:
        """Markup is escaped after marking; Markup objects are trusted as they are."""
        assert escape_visible("<b>\u202e") == "&lt;b&gt;⟨U+202E⟩"
        assert escape_visible(Markup("<b>ok</b>")) == "<b>ok</b>"

    def test_finalize_only_touches_plain_strings(self) -> None:
        """The jinja finalize hook marks plain strings and leaves numbers and Markup alone."""
        assert finalize("x\u202e") == "x⟨U+202E⟩"
        assert finalize(3) == 3
        assert finalize(Markup("\u202e")) == Markup("\u202e")
