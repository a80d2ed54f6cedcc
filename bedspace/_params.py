"""Training hyperparameters: their defaults, their checks and how they are recorded — in this one place.

``bs.tl.train``, the command line and both engines take their defaults from :class:`TrainParams` and hand one
validated instance down, so a bad value (``batch_size=0``, ``lr=inf``, ``margin=nan``) is refused here, naming
the option, before any work starts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal

import numpy as np

LOSSES = ("hinge", "softmax")
BACKENDS = ("native", "starspace")


def whole_number(value, name: str, *, minimum: int = 1, expected: str = "a positive integer") -> int:
    """``value`` as an int; a ValueError naming ``name`` unless it is a whole number >= ``minimum`` (never a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class TrainParams:
    """Options of StarSpace trainMode 0 as bedspace runs it (StarSpace's flag in brackets).

    Attributes
    ----------
    dim
        Embedding dimension [``-dim``].
    epochs
        Passes over the training sets [``-epoch``].
    lr
        Initial learning rate, decaying linearly towards 0 [``-lr``].
    neg_search_limit
        Negative labels sampled per batch [``-negSearchLimit``].
    max_neg_samples
        At most this many margin-violating negatives are used per example [``-maxNegSamples``].
    margin
        Hinge-loss margin on cosine similarity [``-margin``].
    batch_size
        Examples per batch; a batch shares its negatives [``-batchSize``].
    loss
        ``"hinge"`` or ``"softmax"`` [``-loss``].
    exclude_positives
        Never use any of an example's own labels as its negative (StarSpace excludes only the drawn positive).
    dropout
        Share of a set's regions left out, afresh, at every visit [``-dropoutLHS``].
    max_norm
        Rows are kept at L2 norm at most this [``-norm``].
    init_std
        Standard deviation of the initial vectors [``-initRandSd``].
    """

    dim: int = 100
    epochs: int = 50
    lr: float = 0.05
    neg_search_limit: int = 5
    max_neg_samples: int = 10
    margin: float = 0.05
    batch_size: int = 5
    loss: Literal["hinge", "softmax"] = "hinge"
    exclude_positives: bool = True
    dropout: float = 0.0
    max_norm: float = 1.0
    init_std: float = 0.001

    def __post_init__(self):
        for name in ("dim", "epochs", "neg_search_limit", "max_neg_samples", "batch_size"):
            whole_number(getattr(self, name), name, expected="a whole number >= 1")
        for name, low, high, low_open, high_open in (
            ("lr", 0.0, math.inf, True, True),
            ("margin", 0.0, math.inf, False, True),
            ("dropout", 0.0, 1.0, False, True),
            ("max_norm", 0.0, math.inf, True, True),
            ("init_std", 0.0, math.inf, True, True),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if value < low or (low_open and value == low) or value > high or (high_open and value == high):
                bounds = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
                raise ValueError(f"{name} must be in {bounds}, got {value!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if not isinstance(self.exclude_positives, bool):
            raise ValueError(f"exclude_positives must be True or False, got {self.exclude_positives!r}")

    @classmethod
    def from_options(cls, **options) -> TrainParams:
        """Build from user options: numbers given as numpy scalars or whole floats are accepted as such."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(f"unknown training option(s) {unknown}; options are {sorted(known)}")
        converted = {}
        for name, value in options.items():
            if value is None:
                continue
            default = getattr(cls, name)
            if isinstance(default, bool):
                converted[name] = value if isinstance(value, bool) else _as_bool(name, value)
            elif isinstance(default, int):
                converted[name] = _as_int(name, value)
            elif isinstance(default, float):
                converted[name] = _as_float(name, value)
            else:
                converted[name] = value
        return cls(**converted)

    def record(self) -> dict:
        """Every option as plain Python values (for ``.uns`` and ``model.json``)."""
        return asdict(self)


DEFAULTS = TrainParams()


def _as_int(name: str, value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def _as_float(name: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _as_bool(name: str, value) -> bool:
    if hasattr(value, "item") and isinstance(value.item(), bool):  # numpy bool, as .uns gives it back
        return bool(value.item())
    raise ValueError(f"{name} must be True or False, got {value!r}")


def check_threads(n_threads) -> int | None:
    """``None`` (all cores) or a whole number >= 1."""
    if n_threads is None:
        return None
    value = _as_int("n_threads", n_threads)
    if value < 1:
        raise ValueError(f"n_threads must be >= 1 (or None for all cores), got {n_threads!r}")
    return value
