"""Text from files that reaches a terminal: control characters (escape sequences that
clear the screen or set the window title, bidirectional overrides that reorder what is
shown) are refused where the text is read, so nothing shown can carry them."""

from __future__ import annotations

import unicodedata

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def control_character(text: str, allowed: str = "") -> str | None:
    """The first control character of ``text`` (escaped, as ``'\\x1b'``), or None.

    >>> control_character("plain name")
    >>> control_character("\\x1b[2J")
    "'\\\\x1b'"
    """
    for char in text:
        if char in allowed:
            continue
        if unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS:
            return ascii(char)
    return None
