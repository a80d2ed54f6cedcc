"""What an object is, without importing the library it might come from (a process that has none loaded has none).

A query of a model folder loads neither anndata nor scipy.sparse (together about a second); these checks keep it so.
"""

from __future__ import annotations

import sys


def is_anndata(value) -> bool:
    """Whether ``value`` is an AnnData."""
    anndata = sys.modules.get("anndata")
    return anndata is not None and isinstance(value, anndata.AnnData)


def is_sparse(value) -> bool:
    """Whether ``value`` is a scipy sparse matrix or array."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(value)
