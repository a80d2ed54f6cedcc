"""The default annotator and what it is measured against: arrays in, arrays out (no AnnData, no model).

* :class:`RegionAnnotator` (``_estimator.py``): the estimator — fit on a collection's tokens and labels,
  annotate queries with calibrated probabilities and a domain flag, one saved form (``to_record`` /
  ``from_record``).
* ``_kernel.py``: how two sets compare (shared regions, token cosine, log odds).
* ``_ridge.py``: the kernel ridge classifier, one per label field, with exact leave-one-out.
* ``_calibration.py``: scores → probabilities (temperature, isotonic step), ECE, reliability bins.
* ``_baselines.py``: overlap k-NN and LOLA-style enrichment.
* ``_tokens.py``: the 0/1 token matrix, read by rows in memory, memory-mapped or from an ``.h5ad`` file.
* ``_explain.py``: a label's score for one query split exactly over its regions and the fitted sets.
"""

from ._estimator import LABEL_WEIGHT, Annotation, RegionAnnotator
from ._tokens import TokenMatrix

__all__ = ["LABEL_WEIGHT", "Annotation", "RegionAnnotator", "TokenMatrix"]
