"""Every AnnData key bedspace writes, in one registry, and the one helper that writes and says so.

``Keys("bedspace")`` names what :func:`bedspace.tl.train` (``key_added="bedspace"``) and the tools after it
write; ``docs/dev.md`` has the table of who writes and who reads each key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import _logging as logg
from ._labels import LabelTable
from ._similarity import unit_rows

if TYPE_CHECKING:
    import anndata as ad

#: The default key of every tool (``key_added`` of :func:`bedspace.tl.train`, ``key`` of the tools after it).
DEFAULT = "bedspace"
#: ``.uns`` entry of :func:`bedspace.pp.tokenize`: the universe and the tokenization parameters.
TOKENIZE = DEFAULT


#: What ``.uns[key]`` holds of a trained embedding (beside the ``annotator`` of its sets).
EMBEDDING_RECORD = ("params", "labels", "label_vectors", "loss", "universe")


@dataclass(frozen=True)
class Keys:
    """The keys of one trained embedding, named after its ``key``."""

    key: str = DEFAULT

    def __post_init__(self):
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"key must be a non-empty string, got {self.key!r}")

    @property
    def region_vectors(self) -> str:
        """``.varm``: region vectors."""
        return self.key

    @property
    def set_vectors(self) -> str:
        """``.obsm``: set vectors (``sc.pl.embedding(basis=key)`` finds them)."""
        return f"X_{self.key}"

    @property
    def record(self) -> str:
        """``.uns``: the embedding's record (:data:`EMBEDDING_RECORD`) and the annotator of its sets."""
        return self.key

    @property
    def in_training(self) -> str:
        """``.obs``: whether the set was a training example."""
        return f"{self.key}_in_training"

    @property
    def label_similarity(self) -> str:
        """``.obsm``: sets × labels cosine similarity (DataFrame)."""
        return f"{self.key}_label_similarity"

    @property
    def neighbors(self) -> str:
        """``.uns`` (and the prefix of two ``.obsp`` keys): the set–set neighbour graph, as scanpy writes it."""
        return f"{self.key}_neighbors"

    @property
    def distances(self) -> str:
        """``.obsp``: set–set cosine distances of the neighbour graph."""
        return f"{self.neighbors}_distances"

    @property
    def connectivities(self) -> str:
        """``.obsp``: set–set connectivities of the neighbour graph."""
        return f"{self.neighbors}_connectivities"

    def layout(self, basis: str) -> str:
        """``.obsm``: 2-D coordinates of the sets in the joint map (``uns`` of the same name: the labels')."""
        return f"X_{self.key}_{basis}"

    def needs_training(self, adata: ad.AnnData, *, region_vectors: bool = True) -> None:
        """Raise a KeyError that says what to run when ``adata`` holds no embedding under this key."""
        record = adata.uns.get(self.record)
        missing = []
        if not isinstance(record, dict) or "label_vectors" not in record or "labels" not in record:
            missing.append(f"adata.uns[{self.record!r}]")
        if self.set_vectors not in adata.obsm:
            missing.append(f"adata.obsm[{self.set_vectors!r}]")
        if region_vectors and self.region_vectors not in adata.varm:
            missing.append(f"adata.varm[{self.region_vectors!r}]")
        if missing:
            raise KeyError(
                f"no trained embedding under key {self.key!r} ({', '.join(missing)} missing): run "
                f"bs.tl.train(adata, labels=..., key_added={self.key!r}) or bs.tl.embed(adata, reference)"
            )


def trained_labels(adata: ad.AnnData, key: str) -> tuple[LabelTable, np.ndarray]:
    """The labels trained under ``key`` and their unit vectors (what distances and layouts place sets against)."""
    keys = Keys(key)
    keys.needs_training(adata, region_vectors=False)
    record = adata.uns[keys.record]
    return LabelTable.from_frame(pd.DataFrame(record["labels"])), unit_rows(np.asarray(record["label_vectors"]))


def store(adata: ad.AnnData, attr: str, key: str, value, what: str) -> None:
    """``adata.<attr>[key] = value`` and say so, like scanpy: ``added 'X_bedspace', set vectors (adata.obsm)``."""
    getattr(adata, attr)[key] = value
    logg.added(key, what, attr)
