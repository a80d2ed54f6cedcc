"""Training engines: the built-in numba engine and the StarSpace binary."""
