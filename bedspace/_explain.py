"""Evidence for an r2l answer: which of a query's regions, and which reference sets, make a label's score.

:func:`explain` takes one query (any form r2l takes, :mod:`~bedspace._queries`) and labels (by default the
query's top r2l label of each field), splits each label's score with
:func:`~bedspace.annotate._explain.explain_scores` and returns an :class:`Explanation`: three tidy tables and a
BED file on request. Nothing is written into an AnnData: an explanation is of one query, as a search's table is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._outputs import output_file
from ._params import whole_number
from ._queries import parse_queries
from ._search import warn_about
from .annotate._explain import ScoreParts, explain_scores

#: The first words of the ``track`` line of a BED file :meth:`Explanation.write_bed` wrote: by them a later write
#: knows a file it may replace.
TRACK = 'track name="bedspace explain'


@dataclass(frozen=True)
class Explanation:
    """Why a query got its labels: per label, its score split over the query's regions and the reference sets.

    Attributes
    ----------
    query
        The query's name (its file's name, or the stored set's).
    labels
        One row per explained label: ``field``, ``label`` (``field=value``), ``value``, ``score`` (the
        annotator's, as r2l reports it), ``probability`` (calibrated; absent when the model is not calibrated),
        ``baseline`` (the part of the score no region makes: intercept and centring), ``from_regions``
        (``score - baseline``: the sum of every region's contribution), ``lift`` (the factor the query's overlaps
        were scaled up by: 1 unless its best match is weaker than the reference sets' typical best match),
        ``left_out`` (a stored set, explained by the classifier fitted without it), ``n_regions`` (the query's
        universe regions), ``n_positive`` (those with a positive contribution).
    regions
        Per label, its ``top_k`` regions by contribution, largest first: ``field``, ``label``, ``rank``,
        ``chrom``, ``start``, ``end`` (the universe region), ``contribution`` (its part of the score),
        ``share`` (of ``from_regions``: the shares of all the query's regions sum to 1), ``n_label_sets`` and
        ``n_other_sets`` (the reference sets of the label, and of another label of the field, that carry it).
    sets
        Per label, the fitted reference sets that share a region with the query, by weight, largest first:
        ``field``, ``label``, ``rank``, ``name``, ``weight`` (the set's part of the score: its overlap with the
        query times its dual weight for the label), ``share`` (of ``from_regions``), ``shared_regions``,
        ``has_label``, then the sets' label fields.
    """

    query: str
    labels: pd.DataFrame
    regions: pd.DataFrame
    sets: pd.DataFrame

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{row.label} (score {row.score:.3g}, {row.from_regions:+.3g} from its regions)"
            for row in self.labels.itertuples()
        )
        return f"Explanation of {self.query!r}: {shown}"

    def write_bed(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the regions with a positive contribution as BED6, by position; atomically.

        A ``track`` line first (``useScore=1``: UCSC shades the regions by score), then per region ``chrom``,
        ``start``, ``end``, ``name`` (the label, spaces as ``_``), ``score`` (0–1000: the contribution against the
        label's largest) and strand ``.``. Gzipped when the name ends in ``.gz``. The exact numbers are in
        :attr:`regions`.

        Parameters
        ----------
        path
            Where to write.
        overwrite
            Replace a BED file an earlier explanation wrote (known by its ``track`` line; never any other file).

        Returns
        -------
        The path written.

        Raises
        ------
        FileExistsError
            ``path`` exists and ``overwrite`` is false, or it is not an explanation's BED file.
        """
        return write_bed(self, path, overwrite=overwrite, option="overwrite=True")


def explain(
    model, query, label: str | Sequence[str] | None, field: str | None, top_k: int | None, *, assembly=None
) -> Explanation:
    """:meth:`BEDSpaceModel.explain <bedspace.BEDSpaceModel.explain>`: one query, its labels' scores split."""
    if top_k is not None:
        whole_number(top_k, "top_k", expected="a whole number >= 1, or None for every region")
    labels = model.label_table
    if field is not None:
        labels.in_field(field)  # an unknown field is an error naming the fields
    annotator = model.need_annotator()
    queries = parse_queries(model, query, assembly=assembly)
    if len(queries.names) != 1:
        raise ValueError(
            f"an explanation is of one query, got {len(queries.names)} ({', '.join(queries.names[:5])}"
            f"{'…' if len(queries.names) > 5 else ''}): explain them one at a time"
        )
    queries = queries.rankable(by_vectors=False)
    rows = _label_rows(labels, label, field)
    answer = annotator.annotate(queries.tokens, coverage=queries.coverage, own=queries.own)
    warn_about(queries.names, answer)
    if rows is None:  # the query's top r2l label of each field (or of ``field``)
        fields = [f for f in labels.fields if f in annotator.fields_] if field is None else [field]
        rows = [np.flatnonzero(labels.in_field(f))[int(answer.ranking(f)[0].argmax())] for f in fields]
    by_field: dict[str, list[int]] = {}
    for row in rows:
        by_field.setdefault(str(labels.field_of[row]), []).append(int(row))
    missing = [f for f in by_field if f not in annotator.fields_]
    if missing:
        raise KeyError(f"the reference sets have no metadata column(s) {missing} to explain labels of")
    asked = {name: [_column_in_field(labels, row) for row in field_rows] for name, field_rows in by_field.items()}
    parts = explain_scores(annotator, queries.tokens, asked, own=int(queries.own[0]))
    return _tables(model, queries.names[0], parts, answer, top_k)


def _label_rows(labels, label, field) -> list[int] | None:
    """The label table's rows of ``label`` (a name or several), ``None`` for the top labels; unknown ones named."""
    if label is None:
        return None
    asked = [label] if isinstance(label, str) else list(label)
    if not asked:
        raise ValueError("label is an empty list: give a label such as 'organ=liver', or None for the top labels")
    rows = []
    for item in asked:
        try:
            rows.append(labels.resolve(str(item), field))
        except KeyError as err:
            prefix, sep, _ = str(item).partition("=")
            where = field if field is not None else prefix if sep and prefix in labels.fields else None
            if where is None:
                known = f"the fields are {labels.fields}; labels look like {labels.names[0]!r}"
            else:
                known = f"the labels of {where!r} are {list(labels.names[labels.in_field(where)])}"
            raise KeyError(f"unknown label {str(item)!r}: {known} ({err.args[0]})") from None
    return list(dict.fromkeys(rows))


def _column_in_field(labels, row: int) -> int:
    """The column of label ``row`` among its field's labels (the annotator's numbering)."""
    return int(np.searchsorted(np.flatnonzero(labels.in_field(labels.field_of[row])), row))


def _tables(model, query: str, parts: list[ScoreParts], answer, top_k: int | None) -> Explanation:
    labels, universe, reference = model.label_table, model.universe, model.need_reference()
    summary, regions, sets = [], [], []
    fields = [f for f in labels.fields if f in reference.metadata.columns]
    for part in parts:
        row = np.flatnonzero(labels.in_field(part.field))[part.column]
        name, value = str(labels.names[row]), str(labels.values[row])
        from_regions = part.score - part.baseline
        entry = {"field": part.field, "label": name, "value": value, "score": part.score}
        if part.field in answer.probabilities:
            entry["probability"] = float(answer.probabilities[part.field][0, part.column])
        entry.update(
            baseline=part.baseline, from_regions=from_regions, lift=part.lift, left_out=part.left_out,
            n_regions=int(part.regions.size), n_positive=int(np.count_nonzero(part.contributions > 0)),
        )  # fmt: skip
        summary.append(entry)
        order = np.lexsort((part.regions, -part.contributions))  # largest first; ties by position
        if top_k is not None:
            order = order[:top_k]
        chrom, start, end = _coordinates(universe, part.regions[order])
        regions.append(
            pd.DataFrame(
                {"field": part.field, "label": name, "rank": np.arange(1, order.size + 1), "chrom": chrom,
                 "start": start, "end": end, "contribution": part.contributions[order],
                 "share": _share(part.contributions[order], from_regions), "n_label_sets": part.carriers[order],
                 "n_other_sets": part.others[order]}
            )
        )  # fmt: skip
        touching = np.flatnonzero(part.shared > 0)
        touching = touching[np.lexsort((part.sets[touching], -part.set_weights[touching]))]
        table = pd.DataFrame(
            {"field": part.field, "label": name, "rank": np.arange(1, touching.size + 1),
             "name": reference.names[part.sets[touching]].astype(str), "weight": part.set_weights[touching],
             "share": _share(part.set_weights[touching], from_regions), "shared_regions": part.shared[touching],
             "has_label": part.label_sets[touching]}
        )  # fmt: skip
        metadata = reference.metadata.iloc[part.sets[touching]][fields].reset_index(drop=True)
        sets.append(pd.concat([table, metadata.drop(columns=[c for c in fields if c in table.columns])], axis=1))
    return Explanation(
        query,
        pd.DataFrame(summary),
        pd.concat(regions, ignore_index=True),
        pd.concat(sets, ignore_index=True),
    )


def _share(values: np.ndarray, total: float) -> np.ndarray:
    """``values`` over ``total`` (``nan`` when the total is 0: a query sharing no region with the fitted sets)."""
    return values / total if total != 0 else np.full(values.shape, np.nan)


def _coordinates(universe, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``chrom``, ``start``, ``end`` of universe regions ``rows`` (without naming every region of the universe)."""
    chrom = universe._chrom  # categorical; Universe.regions would spell half a million names first
    return (
        np.asarray(chrom.cat.categories, dtype=object)[chrom.cat.codes.to_numpy()[rows]],
        np.asarray(universe._starts)[rows],
        np.asarray(universe._ends)[rows],
    )


def explanation_bed(path: Path) -> bool:
    """Whether ``path`` is a BED file :meth:`Explanation.write_bed` wrote (its first line; gzipped or not)."""
    import gzip

    try:
        with open(path, "rb") as handle:
            start = handle.read(2)
        opener = gzip.open if start == b"\x1f\x8b" else open
        with opener(path, "rb") as handle:
            return handle.read(len(TRACK)) == TRACK.encode()
    except (OSError, EOFError):
        return False


def format_bed(explanation: Explanation) -> bytes:
    """The BED6 text of :meth:`Explanation.write_bed`."""
    regions = explanation.regions
    regions = regions[regions["contribution"] > 0]
    largest = regions.groupby("label", sort=False)["contribution"].transform("max")
    scores = np.clip(np.rint(1000 * regions["contribution"] / largest), 0, 1000).astype(np.int64)
    lines = pd.DataFrame(
        {"chrom": regions["chrom"].astype(str), "start": regions["start"], "end": regions["end"],
         "name": regions["label"].str.replace(r"\s", "_", regex=True), "score": scores, "strand": "."}
    ).sort_values(["chrom", "start", "end", "name"], kind="stable")  # fmt: skip
    shown = ", ".join(explanation.labels["label"])
    track = (
        f'{TRACK} {_quoted(explanation.query)}" description="bedspace explain: regions of {_quoted(explanation.query)}'
        f' for {_quoted(shown)}, scored by contribution" useScore=1\n'
    )
    return track.encode() + lines.to_csv(sep="\t", header=False, index=False).encode()


def _quoted(text: str) -> str:
    """``text`` fit for a quoted value of a ``track`` line (no double quotes, no line breaks)."""
    return " ".join(str(text).replace('"', "'").split())


def write_bed(explanation: Explanation, path: str | os.PathLike, *, overwrite: bool, option: str) -> Path:
    """Write :func:`format_bed`'s text to ``path`` atomically, replacing only an earlier explanation's BED file."""
    import gzip

    path = Path(path)
    text = format_bed(explanation)
    data = gzip.compress(text, compresslevel=6, mtime=0) if path.name.endswith(".gz") else text
    with output_file(path, overwrite=overwrite, own=explanation_bed, option=option) as tmp:
        tmp.write_bytes(data)
    return path
