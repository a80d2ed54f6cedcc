"""The warning category of bedspace, so that users can filter it, and the one way bedspace warns."""

from __future__ import annotations

import os
import warnings

_PACKAGE = os.path.dirname(__file__) + os.sep


class BEDSpaceWarning(UserWarning):
    """A problem with the input that bedspace worked around (empty set, no shared chromosomes, ...)."""


def warn(message: str) -> None:
    """Warn at the user's line: the first frame outside bedspace, however deep the call (no counted stacklevel)."""
    warnings.warn(message, BEDSpaceWarning, skip_file_prefixes=(_PACKAGE,))
