"""The warning category of bedspace, so that users can filter it."""


class BEDSpaceWarning(UserWarning):
    """A problem with the input that bedspace worked around (empty set, no shared chromosomes, ...)."""
