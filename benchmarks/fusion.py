"""Research for issue 10: does fusing embedding and overlap evidence annotate better than each alone?

    python benchmarks/fusion.py [--splits 3]

Not yet bedspace's default, and not in the package: this script holds the candidate annotator (a conditional
logit over four kinds of label evidence, fitted on two-fold held-out predictions of the training collection)
and prints, per held-out split of the real hg19 collection (consensus universe, published settings), r2l hit@1
of the fused annotator beside each evidence alone. Measured on 3 splits (seed = split): organ 0.756 fused vs
0.785 enrichment alone, cell_class 0.907 vs 0.900 overlap kNN, assay 0.941 vs 0.941 — the fusion as fitted here
does not beat the best single evidence by the margin issue 10 asks for, so it is not the default.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.optimize  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import bedspace as bs  # noqa: E402
from bedspace._enrichment import binary_csr, enrichment_from_counts, overlap_counts, rank_references  # noqa: E402
from bedspace._model import BEDSpaceModel  # noqa: E402
from bedspace._params import TrainParams  # noqa: E402
from bedspace._similarity import unit_rows  # noqa: E402
from bedspace._training import training_examples  # noqa: E402

EVIDENCE = ("label_cosine", "embedding_neighbors", "overlap_neighbors", "enrichment")
N_NEIGHBORS = 5


@dataclass(frozen=True)
class Overlap:
    """Shared universe regions of queries × reference sets, and what follows from them."""

    shared: np.ndarray
    query_sizes: np.ndarray
    reference_sizes: np.ndarray
    n_regions: int

    @classmethod
    def of(cls, query: sp.csr_matrix, reference: sp.csr_matrix) -> Overlap:
        """Count the shared regions (one sparse product; queries are few, or come in blocks)."""
        query, reference = binary_csr(query, name="query"), binary_csr(reference, name="reference")
        return cls(
            overlap_counts(query, reference).astype(np.float64),
            np.diff(query.indptr).astype(np.float64),
            np.diff(reference.indptr).astype(np.float64),
            int(query.shape[1]),
        )

    def subset(self, rows: np.ndarray) -> Overlap:
        """The same for some queries only."""
        return Overlap(self.shared[rows], self.query_sizes[rows], self.reference_sizes, self.n_regions)

    @property
    def jaccard(self) -> np.ndarray:
        """Jaccard similarity of the token sets."""
        union = self.query_sizes[:, None] + self.reference_sizes[None, :] - self.shared
        return np.divide(self.shared, union, out=np.zeros(self.shared.shape), where=union > 0)

    def enrichment_ranks(self) -> np.ndarray:
        """Rank of every reference set per query by LOLA's test (Fisher's exact, one-sided), 1 = most enriched."""
        log_p, odds = enrichment_from_counts(self.shared, self.query_sizes, self.reference_sizes, self.n_regions)
        return rank_references(log_p, odds)


def enrichment_votes(ranks: np.ndarray, reference_codes: np.ndarray, n_labels: int) -> np.ndarray:
    """Per label, ``1 / rank`` of its most enriched reference set (0 for a label no reference set has)."""
    votes = np.zeros((ranks.shape[0], n_labels))
    labelled = np.flatnonzero(reference_codes >= 0)
    for label in np.unique(reference_codes[labelled]):
        members = labelled[reference_codes[labelled] == label]
        votes[:, label] = 1.0 / ranks[:, members].min(axis=1)
    return votes


def neighbor_votes(
    similarity: np.ndarray, reference_codes: np.ndarray, n_labels: int, k: int = N_NEIGHBORS
) -> np.ndarray:
    """Share of the similarity-weighted vote of each query's ``k`` nearest reference sets that goes to each label.

    Reference sets without a label in the field (code -1) are never neighbours. Rows sum to 1 (0 when no
    neighbour has a label).
    """
    labelled = np.flatnonzero(reference_codes >= 0)
    votes = np.zeros((similarity.shape[0], n_labels))
    if labelled.size == 0 or similarity.shape[0] == 0:
        return votes
    similarity = similarity[:, labelled]
    k = min(int(k), labelled.size)
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    weights = np.clip(np.take_along_axis(similarity, nearest, axis=1), 0, None) + 1e-9
    codes = reference_codes[labelled][nearest]
    rows = np.repeat(np.arange(similarity.shape[0]), k)
    np.add.at(votes, (rows, codes.ravel()), weights.ravel())
    return votes / votes.sum(axis=1, keepdims=True)


def evidence(
    label_cosine: np.ndarray,
    embedding_similarity: np.ndarray,
    overlap: Overlap,
    reference_codes: np.ndarray,
    k: int = N_NEIGHBORS,
    *,
    enrichment_ranks: np.ndarray | None = None,
) -> np.ndarray:
    """Queries × labels × evidence, in the order of :data:`EVIDENCE`."""
    n_labels = label_cosine.shape[1]
    ranks = overlap.enrichment_ranks() if enrichment_ranks is None else enrichment_ranks
    return np.stack(
        [
            label_cosine,
            neighbor_votes(embedding_similarity, reference_codes, n_labels, k),
            neighbor_votes(overlap.jaccard, reference_codes, n_labels, k),
            enrichment_votes(ranks, reference_codes, n_labels),
        ],
        axis=2,
    )


def probabilities(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``softmax(features @ weights)`` over the labels of each query."""
    logits = features @ np.asarray(weights, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    expo = np.exp(logits)
    return expo / expo.sum(axis=1, keepdims=True)


def fit_weights(features: np.ndarray, truth: np.ndarray, *, ridge: float = 1e-3) -> np.ndarray:
    """Weights of the conditional logit maximising the likelihood of ``truth`` (a light ridge keeps them finite)."""
    if features.shape[0] == 0:
        raise ValueError("no held-out predictions to fit the annotator on")
    rows = np.arange(truth.size)

    def loss(weights):
        logits = features @ weights
        top = logits.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        p = np.exp(logits - log_norm[:, None])
        value = np.mean(log_norm - logits[rows, truth]) + ridge * weights @ weights
        # gradient: E_p[features] − features of the truth
        expected = np.einsum("nl,nlf->nf", p, features)
        grad = np.mean(expected - features[rows, truth], axis=0) + 2 * ridge * weights
        return value, grad

    start = np.ones(features.shape[2])
    result = scipy.optimize.minimize(loss, start, jac=True, method="L-BFGS-B")
    return result.x


@dataclass
class Annotator:
    """Fitted fusion weights per field, the neighbours that vote, and the domain of the training collection."""

    weights: dict[str, list[float]]
    n_neighbors: int = N_NEIGHBORS
    min_overlap: float = 0.0  # below both of these, a query is unlike every training set
    min_cosine: float = -1.0
    held_out: dict[str, dict[str, float]] = field(default_factory=dict)  # fit diagnostics per field

    def to_dict(self) -> dict:
        """Plain values (for ``.uns`` and ``model.json``)."""
        return {
            "evidence": list(EVIDENCE),
            "weights": {f: [float(x) for x in w] for f, w in self.weights.items()},
            "n_neighbors": int(self.n_neighbors),
            "min_overlap": float(self.min_overlap),
            "min_cosine": float(self.min_cosine),
            "held_out": {f: {k: float(v) for k, v in d.items()} for f, d in self.held_out.items()},
        }

    @classmethod
    def from_dict(cls, record: Mapping) -> Annotator:
        """Read what :meth:`to_dict` wrote (after an ``.h5ad`` or JSON round trip)."""
        evidence_names = [str(e) for e in np.atleast_1d(record.get("evidence", EVIDENCE))]
        if evidence_names != list(EVIDENCE):
            raise ValueError(f"annotator evidence {evidence_names} is not {list(EVIDENCE)}: made by another bedspace")
        weights = {str(f): [float(x) for x in np.atleast_1d(w)] for f, w in dict(record["weights"]).items()}
        for name, values in weights.items():
            if len(values) != len(EVIDENCE) or not np.all(np.isfinite(values)):
                raise ValueError(f"annotator weights of field {name!r} are malformed: {values}")
        held_out = {
            str(f): {str(k): float(v) for k, v in dict(d).items()} for f, d in dict(record.get("held_out", {})).items()
        }
        return cls(
            weights=weights,
            n_neighbors=int(record.get("n_neighbors", N_NEIGHBORS)),
            min_overlap=float(record.get("min_overlap", 0.0)),
            min_cosine=float(record.get("min_cosine", -1.0)),
            held_out=held_out,
        )

    def in_domain(self, max_overlap: np.ndarray, max_cosine: np.ndarray) -> np.ndarray:
        """Whether each query is like at least one training set, by overlap or in the embedding."""
        return (np.asarray(max_overlap) >= self.min_overlap) | (np.asarray(max_cosine) >= self.min_cosine)


def field_codes(examples_labels, assignment, field_name: str) -> np.ndarray:
    """Each set's label in ``field_name`` as a column among that field's labels (-1: no label in the field)."""
    in_field = np.flatnonzero(examples_labels.in_field(field_name))
    local = np.full(len(examples_labels), -1, np.int64)
    local[in_field] = np.arange(in_field.size)
    codes = np.full(assignment.ptr.size - 1, -1, np.int64)
    owner = np.repeat(np.arange(codes.size), assignment.counts())
    hit = local[assignment.idx] >= 0
    codes[owner[hit]] = local[assignment.idx[hit]]
    return codes


def fit_annotator(examples, params, *, n_threads: int, random_state: int, k: int = N_NEIGHBORS) -> Annotator:
    """Fit the fusion weights on held-out predictions: two folds of the training sets, each trained on the other.

    ``examples`` are the :class:`~bedspace._training.TrainingExamples` of the run and ``params`` its
    :class:`~bedspace._params.TrainParams`; the two fold trainings together cost about one full training.
    """
    from bedspace._engine import native

    labels = examples.labels
    fields = labels.fields
    codes = {f: field_codes(labels, examples.assignment, f) for f in fields}
    n = examples.n_examples
    rng = np.random.default_rng(random_state)
    fold = np.zeros(n, np.int64)
    stratum = codes[fields[0]]
    for value in np.unique(stratum):
        members = rng.permutation(np.flatnonzero(stratum == value))
        fold[members] = (np.arange(members.size) + rng.integers(2)) % 2
    X = sp.csr_matrix(
        (np.ones(examples.indices.size, np.float32), examples.indices, examples.indptr), shape=(n, examples.n_regions)
    )
    collected: dict[str, tuple[list, list]] = {f: ([], []) for f in fields}
    best_overlap, best_cosine = [], []
    for part in (0, 1):
        trained, held = np.flatnonzero(fold != part), np.flatnonzero(fold == part)
        if trained.size < 2 or held.size == 0:
            continue
        sub = X[trained]
        assignment = examples.assignment.of(trained)
        region_vectors, label_vectors, _ = native.train(
            native.TrainingData(
                indptr=sub.indptr.astype(np.int64), indices=sub.indices.astype(np.int32), label_ptr=assignment.ptr,
                label_idx=assignment.idx, n_regions=examples.n_regions, n_labels=len(labels),
            ),
            params, n_threads=n_threads, random_state=random_state + 1 + part,
        )  # fmt: skip
        held_X = X[held]
        reference = unit_rows(native.set_vectors(region_vectors, sub.indptr.astype(np.int64), sub.indices))
        queries = unit_rows(native.set_vectors(region_vectors, held_X.indptr.astype(np.int64), held_X.indices))
        overlap = Overlap.of(held_X, sub)
        ranks = overlap.enrichment_ranks()
        cosine = queries @ reference.T
        best_overlap.append(overlap.jaccard.max(axis=1))
        best_cosine.append(cosine.max(axis=1))
        unit_labels = unit_rows(label_vectors)
        for name in fields:
            reference_codes, truth = codes[name][trained], codes[name][held]
            n_labels = int(labels.in_field(name).sum())
            seen = np.bincount(reference_codes[reference_codes >= 0], minlength=n_labels) > 0
            keep = (truth >= 0) & seen[np.maximum(truth, 0)]
            label_cosine = queries[keep] @ unit_labels[labels.in_field(name)].T
            features = evidence(
                label_cosine, cosine[keep], overlap.subset(keep), reference_codes, k, enrichment_ranks=ranks[keep]
            )
            collected[name][0].append(features)
            collected[name][1].append(truth[keep])
    weights, held_out = {}, {}
    for name in fields:
        if not collected[name][0]:
            continue
        features, truth = np.concatenate(collected[name][0]), np.concatenate(collected[name][1])
        if truth.size < 4:
            continue
        weights[name] = fit_weights(features, truth)
        p = probabilities(features, weights[name])
        held_out[name] = {
            "n": float(truth.size),
            "hit@1": float(np.mean(p.argmax(axis=1) == truth)),
            "log_loss": float(-np.mean(np.log(np.clip(p[np.arange(truth.size), truth], 1e-12, None)))),
        }
    if not weights:
        raise ValueError("too few labelled training sets to fit the annotator (need at least 4 per field)")
    best_overlap, best_cosine = np.concatenate(best_overlap), np.concatenate(best_cosine)
    return Annotator(
        weights=weights,
        n_neighbors=k,
        # half the least overlap, and a margin below the least cosine, that a real held-out training set showed
        min_overlap=float(0.5 * best_overlap.min()),
        min_cosine=float(best_cosine.min() - 0.1),
        held_out=held_out,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.BEDSpaceWarning)
    data = bs.datasets.encode_hg19()
    full = bs.pp.tokenize(data.beds, data.universes["consensus"], metadata=data.metadata)
    fields = ["organ", "cell_class", "assay"]
    rows = []
    for split in range(args.splits):
        train, test = bs.pp.split(full, stratify="organ", test_size=0.25, random_state=split)
        start = time.perf_counter()
        bs.tl.train(train, labels=fields, n_threads=2, random_state=split)
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        annotator = fit_annotator(training_examples(train, fields), TrainParams(), n_threads=2, random_state=split)
        fit_seconds = time.perf_counter() - start
        model = BEDSpaceModel.from_anndata(train)
        queries = unit_rows(model.embed(test))
        overlap = Overlap.of(test.X, train.X)
        ranks = overlap.enrichment_ranks()
        cosine = queries @ model.unit_set_vectors.T
        for name in fields:
            mask = model.label_table.in_field(name)
            code = {v: i for i, v in enumerate(model.label_table.values[mask])}
            truth = np.array([code.get(str(v), -1) for v in test.obs[name]])
            reference_codes = np.array([code.get(str(v), -1) for v in train.obs[name]])
            keep = truth >= 0
            label_cosine = queries[keep] @ model.unit_label_vectors[mask].T
            features = evidence(
                label_cosine, cosine[keep], overlap.subset(keep), reference_codes, enrichment_ranks=ranks[keep]
            )
            fused = probabilities(features, annotator.weights[name])

            def hit(scores, truth=truth[keep]):
                return float(np.mean(scores.argmax(axis=1) == truth))

            rows.append(
                {"split": split, "field": name, "fused": hit(fused)}
                | {evidence_name: hit(features[:, :, i]) for i, evidence_name in enumerate(EVIDENCE)}
            )
        print(f"split {split}: training {train_seconds:.0f} s, fitting the fusion {fit_seconds:.0f} s", flush=True)
    table = pd.DataFrame(rows).groupby("field", sort=False).mean().drop(columns="split")
    print("\nr2l hit@1, mean over splits\n" + table.round(3).to_string())


if __name__ == "__main__":
    main()
