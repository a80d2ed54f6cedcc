"""Tools: training the joint embedding, distances and search."""

__all__: list[str] = []
