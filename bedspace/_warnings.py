"""Warnings and the words of messages: bedspace's warning category, the one way it warns, how it quotes input."""

from __future__ import annotations

import os
import warnings

_PACKAGE = os.path.dirname(__file__) + os.sep


class BEDSpaceWarning(UserWarning):
    """A problem with the input that bedspace worked around (empty set, no shared chromosomes, ...)."""


def warn(message: str) -> None:
    """Warn at the user's line: the first frame outside bedspace, however deep the call (no counted stacklevel)."""
    warnings.warn(message, BEDSpaceWarning, skip_file_prefixes=(_PACKAGE,))


def excerpt(text: str | bytes, *, limit: int = 80, quote: bool = True) -> str:
    """``text`` as a message shows it: whole (``repr``) when short, else its first ``limit`` characters and its length.

    Every message that quotes input goes through here: a 50 MB line must not become a 50 MB error.
    """
    shown = repr if quote else (lambda value: value if isinstance(value, str) else repr(value))
    if len(text) <= limit:
        return shown(text)
    unit = "bytes" if isinstance(text, bytes) else "characters"
    return f"{shown(text[:limit])}… ({len(text):,} {unit})"
