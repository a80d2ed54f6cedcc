"""Plain values: records (parameters, manifests) as JSON and ``.h5ad`` keep them, whatever numpy gave them."""

from __future__ import annotations

import numpy as np


def plain(value):
    """Numpy scalars and arrays (as h5ad returns them) to plain Python, for JSON and comparisons."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()] if value.dtype == object else value.tolist()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def json_default(value):
    """``json.dumps(default=...)``: numpy values as plain Python; anything else is an error naming its type."""
    converted = plain(value)
    if converted is value:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")
    return converted
