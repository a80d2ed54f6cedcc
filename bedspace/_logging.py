"""Messages in scanpy's style, shown according to ``scanpy.settings.verbosity``."""

from __future__ import annotations


def info(message: str) -> None:
    """Log at scanpy's ``info`` level (imported lazily: scanpy is slow to import)."""
    from scanpy import logging as logg

    logg.info(message)


def added(key: str, what: str, where: str) -> None:
    """Say what was written where, like scanpy: ``added 'X_bedspace', set embeddings (adata.obsm)``."""
    info(f"    added {key!r}, {what} (adata.{where})")
