"""Tools: training the joint embedding, distances and search."""

from ._train import train

__all__ = ["train"]
