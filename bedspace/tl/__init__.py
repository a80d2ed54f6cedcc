"""Tools: training the joint embedding, distances, search and evaluation."""

from ._distances import distances
from ._evaluate import evaluate
from ._search import search
from ._train import train

__all__ = ["distances", "evaluate", "search", "train"]
