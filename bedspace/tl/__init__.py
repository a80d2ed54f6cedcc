"""Tools: training the joint embedding, embedding new collections, distances, layout, search, explanations and evaluation."""

from ._distances import distances
from ._embed import embed
from ._evaluate import STARSPACE_COMPATIBLE, RepeatedEvaluation, evaluate, evaluate_repeated
from ._explain import explain
from ._layout import layout
from ._search import search
from ._train import calibrate, train

__all__ = [
    "STARSPACE_COMPATIBLE",
    "RepeatedEvaluation",
    "calibrate",
    "distances",
    "embed",
    "evaluate",
    "evaluate_repeated",
    "explain",
    "layout",
    "search",
    "train",
]
