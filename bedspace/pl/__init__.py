"""Plotting: the pictures scanpy does not have (they compose with it: every function takes ``ax=``)."""

from ._explain import explain
from ._label_similarity import label_similarity
from ._plots import calibration, embedding, evaluation, loss, search

__all__ = ["calibration", "embedding", "evaluation", "explain", "label_similarity", "loss", "search"]
