"""Silencing other packages' chatter that bedspace users cannot act on (never bedspace's own warnings)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# anndata 0.13 on pandas 3 sets pandas options that pandas 3 deprecates, at every .h5ad read and write: the
# warning is about anndata's code, not the user's data, and says nothing the user can change.
_ANNDATA_ON_PANDAS_3 = r"The '(future\.infer_string|mode\.chained_assignment)' option is deprecated"


@contextmanager
def quiet_anndata_io() -> Iterator[None]:
    """Read or write ``.h5ad`` without anndata's pandas-3 deprecation notices."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ANNDATA_ON_PANDAS_3)
        yield
