"""A cache of values per object, held only while the object lives (AnnData is not hashable: keyed by identity)."""

from __future__ import annotations

import weakref
from typing import Any


class PerObject:
    """``cache.get(obj)`` / ``cache.set(obj, value)``; an entry goes when its object is garbage-collected."""

    def __init__(self):
        self._entries: dict[int, tuple[weakref.ref, Any]] = {}

    def get(self, obj, default=None):
        """The value stored for ``obj`` (this very object, not an equal one), else ``default``."""
        entry = self._entries.get(id(obj))
        if entry is None or entry[0]() is not obj:
            return default
        return entry[1]

    def set(self, obj, value) -> None:
        """Store ``value`` for ``obj`` until ``obj`` is collected."""
        key = id(obj)
        self._entries[key] = (weakref.ref(obj, lambda _, key=key: self._entries.pop(key, None)), value)
