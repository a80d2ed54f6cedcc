"""The default joint space: the default annotator's label scores, written as region, label and set vectors.

The annotator scores a query's labels by kernel ridge regression on the token cosine, and its scores are a linear
form of the query's tokens (:meth:`~bedspace.annotate.RegionAnnotator.score_weights`): ``q @ W / sqrt(n) + c``.
So they are a space of their own, with one dimension per label: a region's vector is its weight for each label
(a row of ``W``), a label's vector is its axis, and a set's vector is its scores (the sum of its regions'
vectors over the square root of their number, plus ``c``), each label field's scores scaled to length 1
(:class:`~bedspace._engine.native.SetSpace`, one block per field). In that space the label vectors rank a set's
labels as the annotator does (before its scaling up of weak queries), a label's axis ranks sets by their score
of it, and the cosine of two sets is the mean over the fields of how alike their scores are: all three searches
answer from one vector per set, without the reference sets' regions.

The sets the classifier was fitted on are its training examples, and their own scores nearly repeat their labels
(the ridge regression nearly interpolates): the label blocks of every blood DNase set are alike. Two things keep
them apart. A last block, of the sets' regions themselves (latent semantic indexing of the fitted sets,
:data:`REGION_DIMS`), orders sets of the same labels by how alike their regions are; it holds
:data:`REGION_SHARE` of a cosine. And a fitted set's label blocks add :data:`HELD_OUT_SHARE` of its leave-one-out
scores (the classifier fitted without it: what a new experiment like it would get) to its own
(:func:`with_held_out_scores`), so that a label's axis ranks the sets carrying it by how typical of it the other
sets find them. (The leave-one-out scores alone put the sets of a query's labels first far less often.)
"""

from __future__ import annotations

import numpy as np

from ._engine.native import SetSpace
from ._labels import LabelTable
from ._similarity import unit_rows
from .annotate import RegionAnnotator

#: What ``bs.tl.train(space=...)`` can learn: the annotator's label scores (default), or StarSpace's objective.
SPACES = ("annotator", "starspace")
#: Dimensions of the regions block: the leading singular vectors of the fitted sets' tf-idf region matrix (latent
#: semantic indexing), which place sets of the same labels by how alike their regions are.
REGION_DIMS = 32
#: The regions block's share of a cosine of two sets; the label fields share the rest equally. Small: sets of a
#: query's labels come first (the label blocks), and among them the ones whose regions are most alike.
REGION_SHARE = 0.2
#: How much of a fitted set's leave-one-out scores its stored vector adds to its own (each as a unit vector).
HELD_OUT_SHARE = 0.25


def annotator_space(
    annotator: RegionAnnotator, labels: LabelTable, *, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray, SetSpace]:
    """``(region vectors, label vectors, set space)`` of the space of ``annotator``'s scores of ``labels``.

    One dimension per label of ``labels`` (in its order), a block per field, then the regions block
    (:data:`REGION_DIMS`, fitted on the annotator's fitted sets; left out below 3 sets). A label the annotator
    has no fitted set of has a zero vector (as StarSpace leaves a label no example has), and so does each label of
    a field the annotator was not fitted on. ``random_state`` seeds the regions block's solver.
    """
    n_labels = len(labels)
    fields = labels.fields
    field_of = labels.field_of
    forms = annotator.score_weights()
    regions = _region_block(annotator, random_state)
    n_dims = n_labels + (0 if regions is None else regions.shape[1])
    region_vectors = np.zeros((annotator.n_regions_, n_dims), np.float32)
    label_vectors = np.zeros((n_labels, n_dims), np.float32)
    bias = np.zeros(n_dims, np.float32)
    blocks = np.zeros(n_dims, np.int32)
    for block, field in enumerate(fields):
        dims = np.flatnonzero(field_of == field)
        blocks[dims] = block
        if field not in forms:
            continue
        weights, constant = forms[field]
        # a field's block is scaled to length 1 whatever its scale: a largest weight of 1 keeps the small ones
        # apart from zero in the float16 of a model folder
        scale = float(np.abs(weights).max()) or 1.0
        region_vectors[:, dims] = weights / scale
        bias[dims] = constant / scale
        carried = annotator.classifier_.fields[field].present
        label_vectors[dims[carried], dims[carried]] = 1.0
    shares = np.full(len(fields), 1.0 / len(fields))
    if regions is not None:
        region_vectors[:, n_labels:] = regions
        blocks[n_labels:] = len(fields)
        shares = np.append(shares * (1.0 - REGION_SHARE), REGION_SHARE)
    return region_vectors, label_vectors, SetSpace(bias, blocks, shares)


def _region_block(annotator: RegionAnnotator, random_state: int) -> np.ndarray | None:
    """Region vectors of the regions block: the fitted sets' tf-idf matrix's leading right singular vectors."""
    from scipy.sparse import diags
    from scipy.sparse.linalg import svds

    tokens = annotator.compared_sets().to_csr().astype(np.float64)
    n_sets = tokens.shape[0]
    k = min(REGION_DIMS, n_sets - 1)
    if k < 2:
        return None
    idf = np.log((1.0 + n_sets) / (1.0 + np.asarray(tokens.sum(axis=0)).ravel()))
    weighted = tokens @ diags(idf)
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    weighted = diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ weighted
    start = np.random.default_rng(random_state).standard_normal(min(weighted.shape))
    _, _, right = svds(weighted, k=k, v0=start)
    vectors = (right.T * idf[:, None]).astype(np.float32)  # a query's block: its regions' idf-weighted projection
    return vectors / (float(np.abs(vectors).max()) or 1.0)


def with_held_out_scores(
    vectors: np.ndarray, annotator: RegionAnnotator, labels: LabelTable, space: SetSpace
) -> np.ndarray:
    """The collection's set ``vectors``, each fitted set's label blocks with its leave-one-out scores added (in place).

    ``vectors``: the collection's sets as the space of :func:`annotator_space` embeds them (rows: the sets the
    annotator was fitted on). Per field, a fitted set's block becomes its own scores plus :data:`HELD_OUT_SHARE`
    times its leave-one-out scores, each as a unit vector, scaled as the space scales the block.
    """
    for block, field in enumerate(labels.fields):
        if field not in annotator.fields_:
            continue
        classifier = annotator.classifier_.fields[field]
        dims = np.flatnonzero(labels.field_of == field)
        own = unit_rows(vectors[np.ix_(classifier.rows, dims)])
        held_out = unit_rows(np.where(classifier.present, classifier.leave_one_out, 0.0))
        space.set_block(vectors, classifier.rows, block, own + HELD_OUT_SHARE * held_out)
    return vectors
