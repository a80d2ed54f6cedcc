"""Plotting: the pictures scanpy does not have (compose with it: every function takes ``ax=``)."""

from ._label_similarity import label_similarity

__all__ = ["label_similarity"]
