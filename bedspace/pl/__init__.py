"""Plotting: the pictures scanpy does not have (they compose with it: every function takes ``ax=``)."""

from ._label_similarity import label_similarity
from ._plots import embedding, evaluation, loss, search

__all__ = ["embedding", "evaluation", "label_similarity", "loss", "search"]
