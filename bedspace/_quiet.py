"""Silencing other packages' chatter that bedspace users cannot act on (never bedspace's own warnings)."""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

# anndata 0.13 on pandas 3 sets pandas options that pandas 3 deprecates, at every .h5ad read and write: the
# warning is about anndata's code, not the user's data, and says nothing the user can change.
_ANNDATA_ON_PANDAS_3 = r"The '(future\.infer_string|mode\.chained_assignment)' option is deprecated"

#: pyranges1 and its two modules that configure logging but load later than ``import pyranges1`` (on a PyRanges'
#: first ``to_bed``/``to_bigwig``/... and ``summary``). tests/test_quiet.py checks that these cover every module of
#: pyranges1 that calls ``logging.basicConfig``.
_PYRANGES = ("pyranges1", "pyranges1.core.out", "pyranges1.methods.summary")
_PYRANGES_LOCK = threading.Lock()


@contextmanager
def quiet_anndata_io() -> Iterator[None]:
    """Read or write ``.h5ad`` without anndata's pandas-3 deprecation notices."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ANNDATA_ON_PANDAS_3)
        yield


def pyranges() -> ModuleType:
    """``pyranges1``, imported without the logging configuration it sets up; bedspace's one way to import it.

    pyranges1 (1.5) calls ``logging.basicConfig(level=logging.INFO)`` at the top of eight of its modules. In a
    process that configured no logging, the first of them gives the root logger a handler printing to stderr and
    the level INFO: from then on every library's info messages are printed (``INFO:matplotlib.font_manager:...``),
    and an application's own logger that has a handler prints each message twice. So pyranges1 and its modules that
    do this are imported here, all at once, with the loggers that existed before as they were
    (:func:`kept_logging`). Loggers pyranges1 creates for itself keep the level it gives them.
    """
    if all(name in sys.modules for name in _PYRANGES):
        return sys.modules["pyranges1"]
    with _PYRANGES_LOCK:  # one import at a time: a second thread must not save the configuration mid-import
        with kept_logging():
            for name in _PYRANGES:
                importlib.import_module(name)
    return sys.modules["pyranges1"]


@contextmanager
def kept_logging() -> Iterator[None]:
    """Run a block (an import) and then put back the level, handlers, ``propagate`` and ``disabled`` it changed.

    Of every logger that existed before the block, the root logger included; a handler the block added is closed.
    """
    loggers = [logging.getLogger(), *list(logging.Logger.manager.loggerDict.values())]
    saved = [
        (logger, logger.level, list(logger.handlers), logger.propagate, logger.disabled)
        for logger in loggers
        if isinstance(logger, logging.Logger)  # not the placeholders of loggers not created yet
    ]
    try:
        yield
    finally:
        for logger, level, handlers, propagate, disabled in saved:
            if logger.level != level:
                logger.setLevel(level)
            for handler in [h for h in logger.handlers if h not in handlers]:
                logger.removeHandler(handler)
                handler.close()
            for handler in handlers:
                if handler not in logger.handlers:
                    logger.addHandler(handler)
            logger.propagate, logger.disabled = propagate, disabled
