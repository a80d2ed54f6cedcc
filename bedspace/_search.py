"""The three searches of a model: what each ranks by, and the tidy table every search returns.

:func:`search` checks the options once and dispatches: **r2l** ranks a query's labels (by the default annotator's
calibrated probabilities, or by the label vectors' cosine), **l2r** ranks the stored sets for a label (by the
label vector's cosine, or by each set's leave-one-out annotation), **r2r** ranks the stored sets for a query (by
the cosine of the set vectors, or that plus the probability that a set shares the query's labels);
:func:`default_method` says which is the default.
Everything here takes the model as it is; nothing is built.

Tables of sets (l2r, r2r) show, after their own columns, the sets' label fields only (the columns the model was
trained on); ``obs_columns`` adds other metadata columns by name, or all of them (:func:`shown_columns`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._lazy import is_anndata
from ._params import whole_number
from ._queries import Queries, parse_queries
from ._similarity import scores_against, unit_rows
from ._similarity import top_k as top_k_of
from ._warnings import warn
from .annotate import LABEL_WEIGHT, Annotation, TokenMatrix
from .annotate._evidence import FEW_REGIONS, ONE_CHROMOSOME
from .annotate._kernel import exclude_own
from .annotate._tokens import TokenRows

SEARCH_TYPES = ("r2l", "l2r", "r2r")
METHODS = ("regions", "embedding")
#: The columns a table of sets has before the sets' metadata (a metadata column of one of these names is not shown).
OWN_COLUMNS = ("query", "rank", "name", "score", "probability", "has_label", "cosine", "shared_labels")


def search(
    model,
    query,
    search_type: str,
    top_k: int,
    field: str | None,
    *,
    method: str | None,
    min_probability: float,
    approximate: bool,
    obs_columns=None,
    assembly: str | None = None,
) -> pd.DataFrame:
    """:meth:`BEDSpaceModel.search <bedspace.BEDSpaceModel.search>`: check the options, then run one search."""  # fmt: skip
    if search_type not in SEARCH_TYPES:
        raise ValueError(f"search_type must be one of {SEARCH_TYPES}, got {search_type!r}")
    whole_number(top_k, "top_k", expected="a whole number >= 1")
    if method not in (None, *METHODS):
        raise ValueError(f"method must be 'regions', 'embedding' or None, got {method!r}")
    if not (isinstance(min_probability, int | float) and 0 <= min_probability <= 1):
        raise ValueError(f"min_probability must be a number in [0, 1], got {min_probability!r}")
    if search_type != "r2l" and min_probability:
        raise ValueError("min_probability is an option of r2l (annotation) only")
    if not isinstance(approximate, bool | np.bool_):
        raise ValueError(f"approximate must be True or False, got {approximate!r}")
    if approximate and search_type == "r2l":
        raise ValueError("approximate=True is an option of r2r and l2r (it finds sets); r2l ranks labels exactly")
    _check_obs_columns(obs_columns)
    if obs_columns is not None and search_type == "r2l":
        raise ValueError(
            "obs_columns is an option of l2r and r2r (their tables list sets, with the sets' metadata); r2l lists "
            "labels, which have none"
        )
    if search_type == "l2r":
        if assembly is not None:
            raise ValueError("assembly is an option of r2l and r2r (the genome build of a region-set query)")
        return _label_to_sets(model, query, top_k, field, method, approximate, obs_columns)
    if search_type == "r2l":
        return _sets_to_labels(model, query, top_k, field, method, min_probability, assembly=assembly)
    return _sets_to_sets(model, query, top_k, method, approximate, obs_columns, assembly=assembly)


def default_method(model, search_type: str) -> str:
    """What a search ranks by unless told: ``"regions"`` (the default annotator) or ``"embedding"`` (vectors).

    r2l annotates with the annotator whenever the model has one (calibrated probabilities, the domain, the
    evidence). In the annotator's space (``bs.tl.train``'s default) the vectors are its scores, so l2r and r2r
    rank by them: one product with a vector per set, at any size. In StarSpace's space, l2r ranks by the
    annotator's answers for the stored sets and r2r adds the probability that a set shares the query's labels to
    the cosine, whenever the model can.
    """
    if search_type == "r2l" or model.space is None:
        able = model.can_compare_labels if search_type == "r2r" else model.can_annotate
        return "regions" if able else "embedding"
    return "embedding"


def _check_obs_columns(obs_columns) -> None:
    """``obs_columns`` is None, True/False, ``"all"``, a column name or a list of names."""
    if obs_columns is None or isinstance(obs_columns, bool | np.bool_ | str):
        return
    if isinstance(obs_columns, list | tuple | pd.Index | np.ndarray) and all(isinstance(c, str) for c in obs_columns):
        return
    raise ValueError(
        f"obs_columns must be a metadata column's name, a list of names, 'all' (or True) or False, got {obs_columns!r}"
    )


def _by_name(obs_columns) -> bool:
    """Whether ``obs_columns`` names columns (which the metadata may lack), rather than all, none or the default."""
    everything = isinstance(obs_columns, str) and obs_columns == "all"
    return not (obs_columns is None or isinstance(obs_columns, bool | np.bool_) or everything)


def shown_columns(metadata: pd.DataFrame, fields: list[str], obs_columns=None) -> list[str]:
    """The metadata columns a table of sets shows, in order.

    ``None``: the label ``fields`` the sets carry. A name or a list of names: those fields, then these columns (an
    unknown name is an error listing the columns there are). ``"all"`` or ``True``: every column, in the metadata's
    order. ``False``: none.
    """
    columns = metadata.columns
    if isinstance(obs_columns, bool | np.bool_):
        return list(columns) if obs_columns else []
    if isinstance(obs_columns, str) and obs_columns == "all":
        return list(columns)
    shown = [f for f in fields if f in columns]
    asked = [] if obs_columns is None else [obs_columns] if isinstance(obs_columns, str) else list(obs_columns)
    missing = [c for c in asked if c not in columns]
    if missing:
        raise KeyError(
            f"the sets have no metadata column(s) {missing}; their columns are {[str(c) for c in columns]} "
            "(obs_columns='all' shows every one)"
        )
    clashing = [c for c in asked if c in OWN_COLUMNS]
    if clashing:
        raise ValueError(
            f"metadata column(s) {clashing} cannot be shown: the table has columns of that name ({list(OWN_COLUMNS)})"
        )
    return list(dict.fromkeys(shown + asked))


def _several(query, queries: Queries) -> bool:
    """Whether the table keeps its ``query`` column: more than one query asked for (before any is left out)."""
    return len(queries.names) > 1 or isinstance(query, list | tuple) or is_anndata(query)


def _sets_to_labels(model, query, top_k, field, method, min_probability, *, assembly=None) -> pd.DataFrame:
    """r2l: per field, labels with probabilities (the default annotator), or by the label vectors' cosine."""
    labels = model.label_table
    method = method or default_method(model, "r2l")
    fields = labels.fields if field is None else [field]
    labels.in_field(fields[0])  # an unknown field is an error naming the fields
    parsed = parse_queries(model, query, assembly=assembly)
    several = _several(query, parsed)  # before rankable: a folder of two files keeps its query column with one left
    queries = parsed.rankable(by_vectors=method == "embedding")
    if method == "embedding":
        if min_probability:
            raise ValueError("min_probability needs calibrated probabilities: use method='regions'")
        in_field = labels.in_field(field)
        scores = scores_against(queries.vectors, model.unit_label_vectors[in_field])
        return ranked_table(
            queries.names, scores, top_k, labels.names[in_field], labels.frame[in_field], several=several
        )
    annotator = model.need_annotator()
    if min_probability and not annotator.is_calibrated:
        raise ValueError("min_probability needs calibrated probabilities: train with calibrate=True")
    missing = [f for f in fields if f not in annotator.fields_]
    if missing:
        raise KeyError(f"the reference sets have no metadata column(s) {missing} to annotate with")
    result = annotator.annotate(queries.tokens, coverage=queries.coverage, own=queries.own)
    warn_about(queries.names, result)
    return annotation_table(
        queries.names, result, {f: labels.frame[labels.in_field(f)] for f in fields}, top_k,
        min_probability=min_probability, several=several,
    )  # fmt: skip


def _label_to_sets(model, query, top_k, field, method, approximate, obs_columns) -> pd.DataFrame:
    """l2r: the stored sets ranked for each label: those that carry it first, then the others.

    Each group is ordered by the sets' leave-one-out annotation (probability, then the classifier's score: how
    typical a carrier is, how likely another carries the label), or by the label vector's cosine.
    """
    reference, labels = model.need_reference(), model.label_table
    shown = shown_columns(reference.metadata, labels.fields, obs_columns)
    queries = [query] if isinstance(query, str) else list(query)
    rows = [labels.resolve(str(q), field) for q in queries]
    names, several = labels.names[rows].tolist(), not isinstance(query, str)
    by_regions = (method or default_method(model, "l2r")) == "regions"
    if approximate and by_regions:
        raise ValueError(
            "approximate=True finds sets by their vectors' cosine to the label's: use method='embedding' "
            "(the default l2r annotates every stored set once, then keeps the answers)"
        )
    carries = _carriers(reference, labels, rows)
    if approximate:
        return _approximate_l2r(
            reference, model.unit_label_vectors[rows], carries, top_k, names, several=several, shown=shown
        )
    parts = {}
    if by_regions:
        answers = model.need_annotator().reference_annotation()
        scores = np.empty((len(rows), len(reference)))
        probabilities = np.empty_like(scores) if answers.probabilities else None
        for i, row in enumerate(rows):
            label_field = labels.field_of[row]
            if label_field not in answers.scores:
                raise KeyError(
                    f"the stored sets have no metadata column {label_field!r} to rank them for its labels by"
                )
            scores[i] = answers.scores[label_field][:, _column_in_field(labels, row)]
            if probabilities is not None:
                probabilities[i] = answers.probabilities[label_field][:, _column_in_field(labels, row)]
        if probabilities is not None:
            parts["probability"] = probabilities
    else:
        scores = scores_against(model.unit_label_vectors[rows], reference.unit_vectors)
        probabilities = None
    parts["has_label"] = carries
    order = _carriers_first(carries, scores, probabilities)
    return ranked_table(names, scores, top_k, reference.names, reference.metadata, several=several, parts=parts,
                        order=order, columns=shown)  # fmt: skip


def _carriers(reference, labels, rows: list[int]) -> np.ndarray:
    """Labels × reference sets: whether each set carries each label (by its metadata now)."""
    codes = reference.label_codes(labels)
    carries = np.zeros((len(rows), len(reference)), bool)
    for i, row in enumerate(rows):
        label_field = labels.field_of[row]
        if label_field in codes:
            carries[i] = codes[label_field] == _column_in_field(labels, row)
    return carries


def _carriers_first(carries: np.ndarray, scores: np.ndarray, probabilities: np.ndarray | None) -> np.ndarray:
    """Keys to rank by (larger first): carriers first, then by probability (few distinct values), then by score.

    The score is continuous, so two sets tie only when they are alike in every number.
    """
    keys = (scores,) if probabilities is None else (scores, probabilities)
    order = np.empty(scores.shape)
    for i in range(scores.shape[0]):
        ranked = np.lexsort(tuple(-k[i] for k in keys) + (~carries[i],))
        order[i, ranked] = np.arange(ranked.size, 0, -1)
    return order


def _approximate_l2r(reference, vectors: np.ndarray, carries: np.ndarray, top_k: int, names, *, several, shown):
    """l2r by the label vectors' cosine with ``approximate=True``: the carriers exactly, the rest from the index.

    The carriers are known from the metadata: only their cosines are computed. The index is asked for the
    others only when fewer carriers than ``top_k`` fill the list.
    """
    parts = []
    for i, name in enumerate(names):
        columns = np.flatnonzero(carries[i])
        if columns.size < top_k:
            found, _ = reference.approximate_index.query(vectors[i : i + 1], top_k + columns.size)
            found = found[0][found[0] >= 0]
            columns = np.union1d(columns, found)
        cosine = scores_against(vectors[i : i + 1], reference.unit_vectors[columns])
        has_label = carries[i : i + 1, columns]
        parts.append(
            ranked_table([name], cosine, top_k, reference.names[columns], reference.metadata.iloc[columns],
                         several=True, parts={"has_label": has_label},
                         order=_carriers_first(has_label, cosine, None), columns=shown)
        )  # fmt: skip
    table = pd.concat(parts, ignore_index=True)
    return table if several else table.drop(columns="query")


def _column_in_field(labels, row: int) -> int:
    """The column of label ``row`` among its field's labels (the annotator's and the codes' numbering)."""
    return int(np.flatnonzero(np.flatnonzero(labels.in_field(labels.field_of[row])) == row)[0])


def _sets_to_sets(model, query, top_k, method, approximate, obs_columns, *, assembly=None) -> pd.DataFrame:
    """r2r: the stored sets ranked for each query."""
    reference, fields = model.need_reference(), model.label_table.fields
    if _by_name(obs_columns):  # an unknown column is an error before the query is read
        shown_columns(reference.metadata, fields, obs_columns)
    method = method or default_method(model, "r2r")
    if approximate and method == "regions":
        raise ValueError(
            "approximate=True finds sets by the cosine of their vectors alone: use method='embedding' (the "
            "default r2r also weighs the probability that a set shares the query's labels)"
        )
    parsed = parse_queries(model, query, assembly=assembly)
    several = _several(query, parsed)
    queries = parsed.rankable(by_vectors=True)
    if approximate:
        shown = shown_columns(reference.metadata, fields, obs_columns)
        return _approximate_table(
            reference, queries.vectors, queries.own, top_k, queries.names, several=several, shown=shown
        )
    scores, parts, annotation = set_scores(
        model, queries.tokens, queries.vectors, method, coverage=queries.coverage, own=queries.own
    )
    if annotation is not None:
        warn_about(queries.names, annotation)
    # the sets' metadata is read last (a model folder reads it on first use)
    shown = shown_columns(reference.metadata, fields, obs_columns)
    return ranked_table(
        queries.names, scores, top_k, reference.names, reference.metadata, drop_excluded=True, several=several,
        parts=parts, columns=shown,
    )  # fmt: skip


def set_scores(
    model, tokens, vectors, method: str, *, coverage, own, annotation: Annotation | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray] | None, Annotation | None]:
    """r2r scores (own sets ``-inf``), what they are made of (``cosine``, ``shared_labels``), the annotation."""
    if method not in METHODS:
        raise ValueError(f"method must be 'regions' or 'embedding', got {method!r}")
    if vectors is None:
        vectors = unit_rows_of(model, tokens)
    cosine = scores_against(vectors, model.need_reference().unit_vectors)
    if method == "embedding":
        return exclude_own(cosine, own), None, None
    if not model.can_compare_labels:
        raise ValueError(
            "the default r2r weighs the probability that sets share labels, and this model has no calibrated "
            "annotator (trained with calibrate=False, or without its sets' tokens): use method='embedding', or "
            "bs.tl.calibrate the collection first"
        )
    if annotation is None:
        annotation = model.annotator.annotate(tokens, coverage=coverage, own=own)
    shared = model.annotator.shared_labels(annotation)
    scores = exclude_own(cosine + LABEL_WEIGHT * shared, own)
    return scores, {"cosine": cosine, "shared_labels": shared}, annotation


def unit_rows_of(model, tokens) -> np.ndarray:
    """Unit vectors of tokenized sets (any sets × regions matrix)."""
    rows = (tokens if isinstance(tokens, TokenRows) else TokenMatrix.of(tokens).read()).compact()
    return unit_rows(model.embed_rows(rows.indptr, rows.indices))


def warn_about(names: list[str], annotation: Annotation) -> None:
    """Warn of queries the annotator judged unlike every reference set, or that carry little evidence."""
    outside = [n for n, inside in zip(names, annotation.in_domain, strict=True) if not inside]
    if annotation.evidence is not None and annotation.probabilities:
        for kind in (FEW_REGIONS, ONE_CHROMOSOME):
            judged = zip(names, annotation.evidence, annotation.in_domain, strict=True)
            flagged = [n for n, verdict, inside in judged if verdict == kind and inside]
            if flagged:
                what = "few regions in the universe" if kind == FEW_REGIONS else "regions on one chromosome only"
                warn(
                    f"{len(flagged)} quer{'y has' if len(flagged) == 1 else 'ies have'} {what}: too little evidence "
                    f"for a confident label; their probabilities are capped at what such sub-files of the reference "
                    f"sets earned (column 'evidence'): {flagged[:10]}"
                )
    if outside:
        warn(
            f"{len(outside)} quer{'y is' if len(outside) == 1 else 'ies are'} unlike every reference set (few of "
            f"its regions in the universe, or no more shared regions than chance: another genome, assay or a "
            f"random file?): no probability is given (nan) and no label passes min_probability; their labels are "
            f"ranked by enrichment alone: {outside[:10]}"
        )


def _approximate_table(
    reference, vectors: np.ndarray, own: np.ndarray | None, top_k: int, names: list[str], *, several, shown
) -> pd.DataFrame:
    """:func:`ranked_table` of the candidates of the reference's approximate index (scored exactly).

    A query's own stored set (``own`` ≥ 0) is not its own hit: one more candidate is asked for, and it is dropped.
    """
    index = reference.approximate_index
    exclude = own is not None and bool((own >= 0).any())
    parts = []
    # a few hundred queries at a time: each part's score matrix is queries × the union of their candidates
    for start in range(0, len(names), 256):
        stop = min(start + 256, len(names))
        found, scores = index.query(vectors[start:stop], top_k + 1 if exclude else top_k)
        if exclude:
            scores[(found == own[start:stop, None]) & (found >= 0)] = -np.inf
        kept = np.isfinite(scores)
        columns = np.unique(found[kept])
        dense = np.full((stop - start, len(columns)), -np.inf)
        dense[np.nonzero(kept)[0], np.searchsorted(columns, found[kept])] = scores[kept]
        metadata = reference.metadata.iloc[columns]
        parts.append(
            ranked_table(names[start:stop], dense, top_k, metadata.index, metadata, drop_excluded=True, several=True,
                         columns=shown)
        )  # fmt: skip
    table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return table if several else table.drop(columns="query")


def ranked_table(
    queries: list[str],
    scores: np.ndarray,
    top_k: int,
    names: pd.Index,
    metadata: pd.DataFrame | None,
    *,
    drop_excluded: bool = False,
    several: bool | None = None,
    parts: Mapping[str, np.ndarray] | None = None,
    order: np.ndarray | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """The ``top_k`` best candidates per query: ``query`` (when ``several``), ``rank``, ``name``, ``score``, metadata.

    ``drop_excluded`` leaves out candidates scored ``-inf`` (a query's own set). ``several`` (default: more than
    one query) keeps the ``query`` column, for a list of queries of which only one could be ranked. ``parts``:
    more queries × candidates numbers (what the score is made of), each a column after ``score``. ``order``:
    queries × candidates keys to rank by instead of the scores (larger first). ``columns``: the metadata columns
    to show (default: all; :func:`shown_columns`), after the table's own (one of the same name is left out).
    """
    index, _ = top_k_of(scores if order is None else order, top_k)
    best = np.take_along_axis(np.atleast_2d(scores), index, axis=1)
    n = index.shape[1]
    rows = np.repeat(np.arange(len(queries)), n)
    table = pd.DataFrame(
        {
            "query": np.asarray(queries, dtype=object)[rows],
            "rank": np.tile(np.arange(1, n + 1), len(queries)),
            "name": np.asarray(names, dtype=object)[index.ravel()],
            "score": best.ravel().astype(np.float64),
            **{name: _as_column(part)[rows, index.ravel()] for name, part in (parts or {}).items()},
        }
    )
    shown = [] if metadata is None else list(metadata.columns if columns is None else columns)
    if shown:
        extra = metadata.iloc[index.ravel()][shown].reset_index(drop=True)
        table = pd.concat([table, extra.drop(columns=[c for c in extra.columns if c in table.columns])], axis=1)
    if drop_excluded:
        table = table[np.isfinite(table["score"])].reset_index(drop=True)
        table["rank"] = table.groupby("query", sort=False).cumcount() + 1
    if not (len(queries) > 1 if several is None else several):
        table = table.drop(columns="query")
    return table


def _as_column(part) -> np.ndarray:
    """Numbers as float64 (as the scores), flags as they are."""
    part = np.asarray(part)
    return part if part.dtype == bool else part.astype(np.float64, copy=False)


def annotation_table(
    queries: list[str],
    answer: Annotation,
    labels: dict[str, pd.DataFrame],
    top_k: int,
    *,
    min_probability: float = 0.0,
    several: bool,
) -> pd.DataFrame:
    """The default annotator's answer, per query and field of ``labels``: ``top_k`` labels as it ranks them.

    Columns ``query`` (when ``several``), ``field``, ``rank`` (within the query and field), ``name``, ``value``,
    ``probability`` (when calibrated; ``nan`` out of the domain), ``score`` (the classifier's; enrichment's out of
    the domain), ``in_domain``, ``evidence`` (when measured: ``full``,
    ``few regions`` or ``one chromosome``). Labels below ``min_probability`` are left out: a query may get no label in
    a field (abstention).
    """
    parts = []
    for field, frame in labels.items():
        field_scores, probability = answer.scores[field], answer.probabilities.get(field)
        index, _ = top_k_of(answer.ranking(field), top_k)
        n = index.shape[1]
        flat = index.ravel()
        rows = np.repeat(np.arange(len(queries)), n)
        part = pd.DataFrame(
            {
                "query": np.asarray(queries, dtype=object)[rows],
                "field": field,
                "rank": np.tile(np.arange(1, n + 1), len(queries)),
                "name": frame.index.to_numpy(dtype=object)[flat],
                "value": frame["value"].to_numpy(dtype=object)[flat],
            }
        )
        if probability is not None:
            part["probability"] = np.take_along_axis(probability, index, axis=1).ravel()
        part["score"] = np.take_along_axis(field_scores, index, axis=1).ravel()
        part["in_domain"] = np.asarray(answer.in_domain, bool)[rows]
        if answer.evidence is not None and probability is not None:
            part["evidence"] = np.asarray(answer.evidence, dtype=object)[rows]
        part["_query"] = rows
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    table = table.sort_values(["_query"], kind="stable").drop(columns="_query").reset_index(drop=True)
    if min_probability > 0:
        table = table[table["probability"] >= min_probability].reset_index(drop=True)
    if not several:
        table = table.drop(columns="query")
    return table
