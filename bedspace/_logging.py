"""Messages in scanpy's style, shown according to ``scanpy.settings.verbosity``."""

from __future__ import annotations

import sys


def info(message: str) -> None:
    """Log at scanpy's ``info`` level.

    Only once scanpy is imported: its settings decide what is shown, and before anyone imported it they are its
    defaults, which show no info (scanpy takes seconds to import: the command line never loads it to say nothing).
    """
    if "scanpy" not in sys.modules:
        return
    from scanpy import logging as logg

    logg.info(message)


def added(key: str, what: str, where: str) -> None:
    """Say what was written where, like scanpy: ``added 'X_bedspace', set embeddings (adata.obsm)``."""
    info(f"    added {key!r}, {what} (adata.{where})")
