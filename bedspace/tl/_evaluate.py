"""``bs.tl.evaluate``: held-out retrieval quality of the embedding, beside random, overlap and enrichment baselines.

``bs.tl.evaluate_repeated`` repeats it over stratified splits and training seeds: one split moves hit@1 by a
whole set's share and two seeds can differ by several points, so nothing is decided from one run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from .. import _logging as logg
from .._keys import DEFAULT
from .._metrics import annotation_metrics, retrieval_metrics
from .._model import BEDSpaceModel
from .._params import whole_number
from .._search import default_method, set_scores
from .._similarity import unit_rows
from ..annotate._baselines import OverlapBaselines, aggregate_by_label, knn_vote
from ..annotate._calibration import confidence_calibration_error, expected_calibration_error
from ._collection import searchable

BASELINES = ("overlap", "enrichment", "random")
SEARCHES = ("r2l", "l2r", "r2r")
STARSPACE_COMPATIBLE = MappingProxyType({"space": "starspace", "exclude_positives": False, "calibrate": False})
"""Train options of the StarSpace-faithful run: StarSpace's objective, only the drawn positive label kept out of the negatives (and
no calibration: StarSpace annotates by the label vectors, reported as ``"starspace-labels"``)."""
LABEL_VECTORS = "-labels"
"""Suffix of a trained method's name for its annotation by the label vectors (StarSpace's way)."""
_COLUMNS = ["field", "search", "metric", "method", "value"]
_EVALUATION_KEY = "bedspace_evaluation"  # where evaluate_repeated trains, so a user's own key is never touched


@dataclass(frozen=True)
class _Field:
    """One label field coded against the model's labels: the candidates, and each set's label column (-1: none)."""

    name: str
    in_model: np.ndarray  # rows of model.labels that are this field's labels
    values: np.ndarray
    test: np.ndarray
    train: np.ndarray

    @classmethod
    def code(cls, model: BEDSpaceModel, name: str, train_obs: pd.DataFrame, test_obs: pd.DataFrame) -> _Field:
        labels = model.label_table
        in_model = labels.in_field(name)
        return cls(
            name,
            in_model,
            labels.values[in_model],
            labels.codes(name, test_obs[name]),
            labels.codes(name, train_obs[name]),
        )

    @property
    def known(self) -> np.ndarray:
        """Held-out sets whose label some training set has (the others cannot be annotated right)."""
        return self.test >= 0


def _check_fields(fields, *collections: ad.AnnData) -> list[str]:
    fields = [fields] if isinstance(fields, str) else list(fields)
    if not fields:
        raise ValueError("give at least one field to evaluate")
    missing = [f for f in fields if any(f not in c.obs.columns for c in collections)]
    if missing:
        raise KeyError(f"field(s) {missing} are not .obs columns of both train and test")
    return fields


def _check_baselines(baselines) -> tuple[str, ...]:
    baselines = (baselines,) if isinstance(baselines, str) else tuple(baselines)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    return baselines


def _check_counts(n_neighbors: int, n_random: int) -> None:
    if int(n_neighbors) < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
    if int(n_random) < 1:
        raise ValueError(f"n_random must be >= 1, got {n_random}")


def evaluate(
    train: ad.AnnData,
    test: ad.AnnData,
    *,
    fields: list[str] | str,
    key: str = DEFAULT,
    baselines: Sequence[str] = BASELINES,
    n_neighbors: int = 5,
    n_random: int = 20,
    random_state: int = 0,
) -> pd.DataFrame:
    """Measure r2l, l2r and r2r retrieval on held-out sets, for the model and its baselines.

    The protocol of BEDspace's evaluation: held-out sets were never trained on.

    * **r2l** (annotate): for each held-out set, rank the field's labels. ``hit@1``, ``hit@3``, ``MRR``, and
      ``macro-F1`` of the top-1 label.
    * **l2r** (find sets for a label): for each label of the field carried by a held-out set, rank the held-out
      sets. ``MAP`` and ``R-precision`` (relevant: sets carrying the label).
    * **r2r** (find similar sets): for each held-out set, rank the training sets. ``MAP``, ``R-precision``,
      ``MRR`` (relevant: training sets with the same value in the field).

    The trained model is measured twice:

    * ``bedspace``: the default annotator (:func:`bedspace.tl.search`, ``method="regions"``: a kernel ridge
      classifier on the sets' region overlap, fitted on the training sets) for r2l and l2r, ranked by its
      calibrated probabilities when the training was calibrated (then r2l also reports ``ECE``, the expected
      calibration error), else by its scores; r2r as :func:`bedspace.tl.search` ranks it by default: by cosine
      similarity of the set vectors in the default space (the annotator's); in StarSpace's space
      (``space="starspace"``), plus 0.5 × the probability that a training set shares the held-out set's labels
      when calibrated (``method="regions"``), else by the cosine alone.
    * ``bedspace-labels``: r2l and l2r by cosine similarity to the label vectors, r2r by cosine similarity of the
      set vectors (StarSpace's way: the embedding alone).

    Baselines on the same split, none of which is trained:

    * ``random``: uniform random scores, averaged over ``n_random`` draws.
    * ``overlap``: Jaccard similarity of the sets' region tokens (what interval-overlap search tools compute);
      for r2l and l2r a Jaccard-weighted vote of the ``n_neighbors`` most similar training sets.
    * ``enrichment``: LOLA's test (Sheffield & Bock 2016): one-sided Fisher's exact test of the 2×2 table of
      universe regions in the held-out set or not × in a training set or not. r2r ranks the training sets by
      p-value (ties by odds ratio); r2l ranks labels by the rank of their best training set
      (:func:`bedspace.annotate._baselines.label_enrichment`); l2r ranks the held-out sets by that rank, ties (many
      sets have a set of their own label first) by its p-value.

    Held-out sets whose label no training set has are skipped for that field.

    Parameters
    ----------
    train
        The collection trained with :func:`bedspace.tl.train` (key ``key``).
    test
        Held-out sets tokenized on the same universe (e.g. the second part of :func:`bedspace.pp.split`).
    fields
        ``.obs`` columns to evaluate (typically the label fields).
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.
    baselines
        Which of ``"overlap"``, ``"enrichment"``, ``"random"`` to compute.
    n_neighbors
        Neighbours voting in the overlap baseline.
    n_random, random_state
        Draws and seed of the random baseline.

    Returns
    -------
    Long-form DataFrame with columns ``field``, ``search`` (r2l, l2r, r2r), ``metric``, ``method``
    (bedspace, bedspace-labels and the baselines) and ``value``; ``.pivot_table(index=["field", "search", "metric"],
    columns="method", values="value")`` gives the side-by-side table.

    See Also
    --------
    evaluate_repeated : the same over several splits and training seeds, with mean ± sd.
    """
    fields = _check_fields(fields, train, test)
    baselines = _check_baselines(baselines)
    _check_counts(n_neighbors, n_random)
    model = searchable(train, key)  # the trained model with the training sets, their tokens not copied
    coded = [_Field.code(model, f, train.obs, test.obs) for f in fields]
    rows = _embedding_rows(model, train, test, coded, "bedspace")
    if baselines:
        rows += _baseline_rows(train, test, coded, baselines, n_neighbors, n_random, random_state)
    methods = ("bedspace", "bedspace" + LABEL_VECTORS, *BASELINES)
    return _ordered(pd.DataFrame(rows, columns=_COLUMNS), fields, methods)


def _embedding_rows(
    model: BEDSpaceModel,
    train: ad.AnnData,
    test: ad.AnnData,
    coded: list[_Field],
    method: str,
    predictions: list[pd.DataFrame] | None = None,
) -> list[tuple]:
    """Rows of a trained model: ``method`` (the default annotator and r2r) and ``method-labels`` (the embedding)."""
    test_vectors = unit_rows(model.embed(test))
    test_tokens = test.X
    annotation = model.need_annotator().annotate(test_tokens)
    by_vectors = set_scores(model, test_tokens, test_vectors, "embedding", coverage=None, own=None)[0]
    # r2r as bs.tl.search ranks it by default (the cosine, plus the shared-label probability in StarSpace's space)
    default_r2r = (
        set_scores(model, test_tokens, test_vectors, "regions", coverage=None, own=None, annotation=annotation)[0]
        if default_method(model, "r2r") == "regions"
        else by_vectors
    )
    rows = []
    for field in coded:
        known = field.known
        if not known.any():
            continue
        truth = field.test[known]
        probabilities = annotation.probabilities.get(field.name)
        # r2l and l2r as bs.tl.search ranks them: by probability when calibrated, else by score
        results = _measure(annotation.ranking(field.name)[known], default_r2r[known], truth, field.train)
        if probabilities is not None:
            # the calibration of the answers given: a query out of the domain has no probability (abstains)
            answered = ~np.isnan(probabilities[known]).any(axis=1)
            stated, right_label = probabilities[known][answered], truth[answered]
            if answered.any():
                results["r2l"]["ECE"] = expected_calibration_error(stated, right_label)
            if predictions is not None:
                predictions.append(
                    pd.DataFrame(
                        {
                            "method": method,
                            "field": field.name,
                            "set": test.obs_names[known][answered],
                            "confidence": stated.max(axis=1),
                            "correct": stated.argmax(axis=1) == right_label,
                        }
                    )
                )
        rows += _rows(field.name, method, results)
        by_label_vectors = test_vectors[known] @ model.unit_label_vectors[field.in_model].T
        label_vector_results = _measure(by_label_vectors, by_vectors[known], truth, field.train)
        rows += _rows(field.name, method + LABEL_VECTORS, label_vector_results)
    return rows


def _baseline_rows(
    train: ad.AnnData,
    test: ad.AnnData,
    coded: list[_Field],
    baselines: tuple[str, ...],
    n_neighbors: int,
    n_random: int,
    random_state: int,
) -> list[tuple]:
    overlap = OverlapBaselines.of(test.X, train.X) if {"overlap", "enrichment"} & set(baselines) else None
    rng = np.random.default_rng(random_state)
    rows = []
    for field in coded:
        known = field.known
        if not known.any():
            continue
        truth = field.test[known]
        n_labels = field.values.size
        if "overlap" in baselines:
            r2l = knn_vote(overlap.jaccard[known], field.train, n_labels, int(n_neighbors))
            results = _measure(r2l, overlap.jaccard[known], truth, field.train)
            rows += _rows(field.name, "overlap", results)
        if "enrichment" in baselines:
            by_label = aggregate_by_label(overlap.log_pvalue[known], overlap.odds_ratio[known], field.train, n_labels)
            results = _measure(
                by_label.scores(), -overlap.enrichment_ranks[known].astype(np.float64), truth, field.train
            )
            rows += _rows(field.name, "enrichment", results)
        if "random" in baselines:
            draws = []
            for _ in range(int(n_random)):
                r2l = rng.random((truth.size, n_labels))
                draws.append(_measure(r2l, rng.random((truth.size, train.n_obs)), truth, field.train))
            mean = {s: {m: float(np.nanmean([d[s][m] for d in draws])) for m in draws[0][s]} for s in draws[0]}
            rows += _rows(field.name, "random", mean)
    return rows


def _measure(r2l: np.ndarray, r2r: np.ndarray, truth: np.ndarray, train_codes: np.ndarray) -> dict[str, dict]:
    """The three searches from one method's scores: set × label (r2l, and l2r transposed) and set × training set."""
    return {"r2l": annotation_metrics(r2l, truth), "l2r": _l2r(r2l, truth), "r2r": _r2r(r2r, truth, train_codes)}


def _l2r(set_label_scores: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Labels carried by a held-out set as queries over the held-out sets (transpose of the r2l scores)."""
    present = np.unique(truth)
    relevant = truth[None, :] == present[:, None]
    metrics = retrieval_metrics(set_label_scores[:, present].T, relevant)
    return {"MAP": metrics["MAP"], "R-precision": metrics["R-precision"]}


def _r2r(scores: np.ndarray, truth: np.ndarray, train_codes: np.ndarray) -> dict[str, float]:
    relevant = truth[:, None] == train_codes[None, :]
    return retrieval_metrics(scores, relevant)


def _rows(field: str, method: str, results: dict[str, dict[str, float]]) -> list[tuple]:
    return [
        (field, search, metric, method, value)
        for search, metrics in results.items()
        for metric, value in metrics.items()
    ]


def _ordered(table: pd.DataFrame, fields: Sequence[str], methods: Sequence[str]) -> pd.DataFrame:
    """Rows by field (as given), search (r2l, l2r, r2r), method (as given), metric (as computed)."""
    key = pd.DataFrame(
        {
            "field": table["field"].map({f: i for i, f in enumerate(fields)}),
            "search": table["search"].map({s: i for i, s in enumerate(SEARCHES)}),
            "method": table["method"].map({m: i for i, m in enumerate(methods)}),
            "position": np.arange(len(table)),
        }
    )
    order = key.sort_values(["field", "search", "method", "position"], kind="stable").index
    return table.loc[order].reset_index(drop=True)


@dataclass(frozen=True)
class RepeatedEvaluation:
    """Result of :func:`evaluate_repeated`.

    Attributes
    ----------
    runs
        One row per run and number: ``split``, ``seed`` (training seed; ``<NA>`` for the untrained baselines,
        which depend on the split only), ``field``, ``search``, ``metric``, ``method``, ``value``. For error
        bars and plots of your own.
    summary
        One row per ``field``, ``search``, ``metric``, ``method``: ``mean``, ``sd`` (sample sd over all runs),
        ``n`` (runs), ``sd_split`` (sd over splits of the per-split means) and ``sd_seed`` (pooled sd between
        training seeds within a split; ``nan`` for baselines and with one seed).
    predictions
        One row per held-out set annotated with calibrated probabilities, per run and field: ``method``,
        ``field``, ``set`` (the held-out set's name), ``confidence`` (probability of the top label), ``correct``,
        ``split`` and ``seed``. What :meth:`calibration_error` pools.
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    predictions: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)

    def calibration_error(self, *, n_bins: int = 15, n_draws: int = 200, random_state: int = 0) -> pd.DataFrame:
        """Expected calibration error of the r2l probabilities, pooled over every held-out annotation of every run.

        One run holds out about 45 sets: binned over so few, even a calibrated annotator shows an ECE of 0.05–0.1
        (each bin's accuracy is a small sample). Pooling the runs' annotations measures the calibration itself.

        Returns
        -------
        One row per method and field: ``n`` (annotations), ``confidence`` (mean stated probability of the top
        label), ``accuracy`` (share right), ``ECE``, and ``ECE_if_calibrated``: the ECE that answers right exactly
        as often as stated would still show over these annotations (the mean over ``n_draws`` draws, each answer
        right with its stated probability): the binning noise, the floor to read ``ECE`` against. The runs of a
        split (one per training seed) annotate the same held-out sets: their annotations of one set share one
        draw, as they share one truth, so that repeats do not pass for independent evidence.
        """
        if self.predictions.empty:
            raise ValueError("no calibrated probabilities were evaluated (train with calibrate=True)")
        rng = np.random.default_rng(random_state)
        rows = []
        for (method, field), part in self.predictions.groupby(["method", "field"], sort=False):
            confidence = part["confidence"].to_numpy()
            correct = part["correct"].to_numpy()
            ece = confidence_calibration_error(confidence, correct, n_bins=n_bins)
            same_set = [c for c in ("split", "set") if c in part.columns]
            annotated = part.groupby(same_set, sort=False).ngroup().to_numpy() if same_set else np.arange(len(part))
            n_sets = int(annotated.max()) + 1 if annotated.size else 0
            floor = np.mean(
                [
                    confidence_calibration_error(confidence, rng.random(n_sets)[annotated] < confidence, n_bins=n_bins)
                    for _ in range(n_draws)
                ]
            )
            rows.append((method, field, len(part), confidence.mean(), correct.mean(), ece, floor))
        return pd.DataFrame(
            rows, columns=["method", "field", "n", "confidence", "accuracy", "ECE", "ECE_if_calibrated"]
        )

    def table(self, metrics: Mapping[str, str] | None = None, *, digits: int = 3) -> pd.DataFrame:
        """``mean ± sd`` side by side: rows ``field``, ``search``, ``metric``; one column per method.

        Parameters
        ----------
        metrics
            Which metric per search, e.g. ``{"r2l": "hit@1", "l2r": "MAP", "r2r": "MAP"}``; default all.
        digits
            Decimals shown.
        """
        summary = self.summary
        if metrics is not None:
            unknown = [s for s in metrics if s not in SEARCHES]
            if unknown:
                raise ValueError(f"unknown search(es) {unknown} in metrics; choose from {list(SEARCHES)}")
            summary = summary[[metrics.get(s) == m for s, m in zip(summary["search"], summary["metric"], strict=True)]]
            if summary.empty:
                raise ValueError(f"no rows of the summary match {dict(metrics)}")
        text = [
            f"{m:.{digits}f}" if math.isnan(s) else f"{m:.{digits}f} ± {s:.{digits}f}"
            for m, s in zip(summary["mean"], summary["sd"], strict=True)
        ]
        wide = summary.assign(text=text).pivot(index=["field", "search", "metric"], columns="method", values="text")
        methods = list(dict.fromkeys(summary["method"]))
        index = list(dict.fromkeys(zip(summary["field"], summary["search"], summary["metric"], strict=True)))
        return wide.loc[index, methods].rename_axis(columns=None)


def evaluate_repeated(
    adata: ad.AnnData,
    *,
    fields: list[str] | str,
    labels: list[str] | str | None = None,
    stratify: str | Literal[False] | None = None,
    n_splits: int = 5,
    seeds: Sequence[int] = (0, 1),
    test_size: float = 0.25,
    configurations: Mapping[str, Mapping] | None = None,
    train_kwargs: Mapping | None = None,
    baselines: Sequence[str] = BASELINES,
    n_neighbors: int = 5,
    n_random: int = 20,
) -> RepeatedEvaluation:
    """Held-out evaluation repeated over stratified splits and training seeds: mean ± sd beside the baselines.

    For each split seed ``0 … n_splits - 1``, the collection is split with :func:`bedspace.pp.split`
    (stratified by ``stratify``, or at random); every configuration is trained on the training part once per training seed
    and measured by :func:`evaluate` on the held-out part; the baselines (untrained) are measured once per split.
    A split of ~45 held-out sets moves hit@1 by 0.022 per set, and two training seeds can differ by 0.03–0.10:
    read differences against ``sd``, and against ``sd_seed`` for what a seed alone does.

    The universe is the one ``adata`` was tokenized on. BEDspace's protocol builds it from the training sets
    only; a universe built from every set lets the held-out sets shape which regions exist (for all methods
    alike).

    Parameters
    ----------
    adata
        A tokenized, labelled collection (:func:`bedspace.pp.tokenize`); it is not modified.
    fields
        ``.obs`` columns to evaluate.
    labels
        ``.obs`` columns to train on (default: ``fields``).
    stratify
        Column the splits keep in proportion (default: the first field); ``False``: sets held out at random,
        like new experiments from the collection's source (what the calibrated probabilities are fitted for;
        see :func:`bedspace.pp.split`).
    n_splits
        Number of splits (split seeds ``0 … n_splits - 1``).
    seeds
        Training seeds (``random_state`` of :func:`bedspace.tl.train`); each configuration is trained once per
        split and seed. Two or more give the seed-to-seed sd.
    test_size
        Share held out per split.
    configurations
        Trained methods: name → options of :func:`bedspace.tl.train` that set it apart; default
        ``{"bedspace": {}}``. Each is reported as ``name`` (the default annotator) and ``name-labels`` (by the
        label vectors), as in :func:`evaluate`. ``{"bedspace": {}, "starspace": bs.tl.STARSPACE_COMPATIBLE}``
        adds the StarSpace-faithful native run (``exclude_positives=False``); ``starspace-labels`` is
        StarSpace's own annotation.
    train_kwargs
        Options of :func:`bedspace.tl.train` common to every configuration (e.g. ``dim``, ``epochs``,
        ``n_threads``). ``labels``, ``random_state``, ``key_added`` and ``copy`` are set here and may not be given.
    baselines, n_neighbors, n_random
        As in :func:`evaluate` (the random baseline's seed is the split seed).

    Returns
    -------
    :class:`RepeatedEvaluation`: ``.summary`` (mean, sd, n, sd_split, sd_seed per field × search × metric ×
    method), ``.runs`` (the long per-run table) and ``.table()`` (``mean ± sd`` side by side).

    Examples
    --------
    >>> result = bs.tl.evaluate_repeated(
    ...     adata,
    ...     fields=["organ", "assay"],
    ...     configurations={"bedspace": {}, "starspace": bs.tl.STARSPACE_COMPATIBLE},
    ...     train_kwargs={"epochs": 20, "n_threads": 2},
    ... )  # doctest: +SKIP
    >>> result.table({"r2l": "hit@1", "l2r": "MAP", "r2r": "MAP"})  # doctest: +SKIP
    """
    from ..pp import split as split_sets
    from ._train import train as train_model

    fields = _check_fields(fields, adata)
    labels = fields if labels is None else ([labels] if isinstance(labels, str) else list(labels))
    missing = [c for c in labels if c not in adata.obs.columns]
    if missing:
        raise KeyError(f"label column(s) {missing} are not in .obs; available: {list(adata.obs.columns)}")
    if stratify is not False and not isinstance(stratify, str | None):
        raise TypeError(f"stratify must be a column name, None (the first field) or False (random), got {stratify!r}")
    stratify = fields[0] if stratify is None else stratify or None
    whole_number(n_splits, "n_splits", expected="an integer >= 1")
    if isinstance(seeds, int | np.integer) or not all(isinstance(s, int | np.integer) for s in seeds):
        raise TypeError(f"seeds must be a sequence of integer training seeds, e.g. seeds=(0, 1); got {seeds!r}")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    configurations = {"bedspace": {}} if configurations is None else dict(configurations)
    if not configurations:
        raise ValueError("configurations is empty: give at least one, e.g. {'bedspace': {}}")
    baselines = _check_baselines(baselines)
    clash = [name for name in configurations if name in BASELINES]
    if clash:
        raise ValueError(f"configuration name(s) {clash} are taken by baselines; rename them")
    train_kwargs = dict(train_kwargs or {})
    for options in (train_kwargs, *configurations.values()):
        reserved = [k for k in ("labels", "random_state", "key_added", "copy") if k in options]
        if reserved:
            raise ValueError(
                f"train options {reserved} are set by evaluate_repeated (labels=..., seeds=...); leave them out"
            )
    _check_counts(n_neighbors, n_random)
    methods = (*[m for name in configurations for m in (name, name + LABEL_VECTORS)], *baselines)

    runs = []
    predictions: list[pd.DataFrame] = []
    for split_seed in range(n_splits):
        train, test = split_sets(adata, stratify=stratify, test_size=test_size, random_state=split_seed)
        coded = None
        for name, options in configurations.items():
            for seed in seeds:
                logg.info(f"evaluate_repeated: split {split_seed}, {name}, seed {seed}")
                train_model(
                    train, labels=labels, random_state=seed, key_added=_EVALUATION_KEY, **{**train_kwargs, **options}
                )
                model = searchable(train, _EVALUATION_KEY)
                # Every configuration sees the same training sets and labels, so the same candidates per field.
                coded = coded or [_Field.code(model, f, train.obs, test.obs) for f in fields]
                found: list[pd.DataFrame] = []
                rows = _embedding_rows(model, train, test, coded, name, found)
                runs += [(split_seed, seed, *row) for row in rows]
                predictions += [part.assign(split=split_seed, seed=seed) for part in found]
                del model
        if baselines:
            rows = _baseline_rows(train, test, coded, baselines, n_neighbors, n_random, split_seed)
            runs += [(split_seed, pd.NA, *row) for row in rows]
    table = pd.DataFrame(runs, columns=["split", "seed", *_COLUMNS]).astype({"seed": "Int64"})
    table = _ordered(table, fields, methods)
    predicted = pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame()
    return RepeatedEvaluation(runs=table, summary=_summarise(table, fields, methods), predictions=predicted)


def _summarise(runs: pd.DataFrame, fields: Sequence[str], methods: Sequence[str]) -> pd.DataFrame:
    """Mean, sd and their split / seed parts per field × search × metric × method."""
    keys = ["field", "search", "metric", "method"]
    grouped = runs.groupby(keys, sort=False, dropna=False)["value"]
    summary = grouped.agg(mean="mean", sd="std", n="count").reset_index()
    per_split = runs.groupby([*keys, "split"], sort=False)["value"]
    split_means = per_split.mean().groupby(level=keys, sort=False).std().rename("sd_split")
    # Pooled within-split variance across seeds: nan for one seed and for the baselines (one run per split).
    seed_var = per_split.var().groupby(level=keys, sort=False).mean()
    summary = summary.merge(split_means.reset_index(), on=keys, how="left")
    summary = summary.merge(np.sqrt(seed_var).rename("sd_seed").reset_index(), on=keys, how="left")
    return _ordered(summary, fields, methods)[[*keys, "mean", "sd", "n", "sd_split", "sd_seed"]]
