"""The labels: metadata values namespaced by their column (``organ=blood``). The only place that knows them.

A :class:`LabelTable` holds the fields and values, their names and StarSpace tokens, resolves what a user types
(``"T_cell"``, ``"cell_class=T cell"``) to one label, and assigns a collection's metadata to labels.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._formats.starspace import label_token, parse_label_token
from ._warnings import warn


@dataclass(frozen=True)
class LabelAssignment:
    """Per set, its labels as a CSR-like pair (``ptr``, ``idx``) of rows of a :class:`LabelTable`."""

    ptr: np.ndarray  # int64, n_sets + 1
    idx: np.ndarray  # int64 label rows

    def counts(self) -> np.ndarray:
        """Labels per set."""
        return np.diff(self.ptr)

    def of(self, rows: np.ndarray) -> LabelAssignment:
        """The assignment of the sets ``rows`` only, in that order."""
        counts = self.counts()[rows]
        ptr = np.zeros(rows.size + 1, np.int64)
        np.cumsum(counts, out=ptr[1:])
        idx = (
            np.concatenate([self.idx[self.ptr[r] : self.ptr[r + 1]] for r in rows])
            if rows.size
            else np.zeros(0, np.int64)
        )
        return LabelAssignment(ptr, idx.astype(np.int64, copy=False))


class LabelTable:
    """Labels: ``field`` (the metadata column) and ``value``, named ``field=value``; rows align with vectors."""

    def __init__(self, fields: Sequence[str], values: Sequence[str]):
        if len(fields) != len(values):
            raise ValueError(f"{len(fields)} label fields for {len(values)} values")
        frame = pd.DataFrame({"field": [str(f) for f in fields], "value": [str(v) for v in values]})
        frame.index = pd.Index((frame["field"] + "=" + frame["value"]).tolist())
        if frame.index.has_duplicates:
            raise ValueError(f"labels must be distinct; repeated: {sorted(set(frame.index[frame.index.duplicated()]))}")
        self._frame = frame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> LabelTable:
        """From a frame with ``field`` and ``value`` columns (as ``.uns`` and ``labels.tsv`` hold them)."""
        missing = [c for c in ("field", "value") if c not in frame.columns]
        if missing:
            raise ValueError(f"a label table needs 'field' and 'value' columns; {missing} missing")
        return cls(frame["field"].astype(str).tolist(), frame["value"].astype(str).tolist())

    @classmethod
    def from_tokens(cls, tokens: Sequence[str]) -> LabelTable:
        """From StarSpace label tokens (``__label__organ=blood``; a plain ``__label__x`` is field ``label``)."""
        keys = [parse_label_token(t) for t in tokens]
        return cls([f for f, _ in keys], [v for _, v in keys])

    @classmethod
    def from_obs(
        cls, obs: pd.DataFrame, fields: Sequence[str] | str, *, warn_numbers: bool = True
    ) -> tuple[LabelTable, LabelAssignment]:
        """The labels of ``obs[fields]``, and each set's labels; the same value in two columns stays two labels.

        Missing values are skipped (a set may have no label). Each value's label is its text
        (:func:`label_texts`); ``warn_numbers``: warn about a column of floating-point numbers.
        """
        fields = [fields] if isinstance(fields, str) else list(fields)
        if not fields:
            raise ValueError("labels: give at least one .obs column whose values become labels")
        unknown = [f for f in fields if f not in obs.columns]
        if unknown:
            raise KeyError(f"labels: no column(s) {unknown} in .obs; available: {list(obs.columns)}")
        if len(set(fields)) != len(fields):
            raise ValueError(f"labels: columns given more than once: {fields}")
        table_fields: list[str] = []
        table_values: list[str] = []
        codes = []
        for field in fields:
            values = label_texts(obs[field], field, warn_numbers=warn_numbers).astype("category")
            values = values.cat.remove_unused_categories()
            categories = [str(c) for c in values.cat.categories]
            field_codes = values.cat.codes.to_numpy().astype(np.int64)
            codes.append(np.where(field_codes >= 0, field_codes + len(table_values), -1))
            table_fields += [field] * len(categories)
            table_values += categories
        if not table_values:
            raise ValueError(f"labels: the column(s) {fields} hold no values (all missing)")
        per_set = np.stack(codes, axis=1)  # sets × fields, -1 = missing
        present = per_set >= 0
        ptr = np.zeros(len(obs) + 1, np.int64)
        np.cumsum(present.sum(axis=1), out=ptr[1:])
        return cls(table_fields, table_values), LabelAssignment(ptr, per_set[present].astype(np.int64))

    # -- what it holds ----------------------------------------------------------------------------------------
    @property
    def frame(self) -> pd.DataFrame:
        """``field``, ``value``, indexed ``field=value`` (a copy)."""
        return self._frame.copy()

    @property
    def names(self) -> pd.Index:
        """``field=value`` names, in row order."""
        return self._frame.index

    @property
    def fields(self) -> list[str]:
        """The distinct fields, in order of first appearance."""
        return list(dict.fromkeys(self._frame["field"]))

    @property
    def field_of(self) -> np.ndarray:
        """Field of each label."""
        return self._frame["field"].to_numpy()

    @property
    def values(self) -> np.ndarray:
        """Value of each label."""
        return self._frame["value"].to_numpy()

    def __len__(self) -> int:
        return len(self._frame)

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelTable) and self._frame.equals(other._frame)

    def __hash__(self):
        return hash(tuple(self._frame.index))

    def __repr__(self) -> str:
        return f"LabelTable({len(self)} labels in {self.fields})"

    def tokens(self) -> list[str]:
        """StarSpace tokens (``__label__organ=blood``, percent-encoded so that any text stays one token)."""
        return [label_token(f, v) for f, v in zip(self._frame["field"], self._frame["value"], strict=True)]

    def in_field(self, field: str | None) -> np.ndarray:
        """Mask of the labels of ``field`` (all labels for ``None``); an unknown field is an error."""
        if field is None:
            return np.ones(len(self), bool)
        if field not in self.fields:
            raise KeyError(f"no label field {field!r}; fields are {self.fields}")
        return self.field_of == field

    def codes(self, field: str, values: pd.Series) -> np.ndarray:
        """Row of each value among ``field``'s labels (-1 for a missing value or one the table lacks)."""
        mask = self.in_field(field)
        code_of = pd.Series(np.arange(int(mask.sum())), index=pd.Index(self.values[mask], dtype=object))
        texts = label_texts(pd.Series(values), field, warn_numbers=False).astype(object)
        return texts.map(code_of).fillna(-1).to_numpy(np.int64)

    # -- resolving what users type ----------------------------------------------------------------------------
    def resolve(self, query: str, field: str | None = None) -> int:
        """Row meant by ``query``: ``"field=value"``, or a value unique across fields (``field`` narrows it).

        A near miss that is unambiguous (``"T_cell"`` for ``"T cell"``, ``"dnase-seq"`` for ``"DNase-seq"``) is
        accepted. An ambiguous value is an error listing the candidates; an unknown one lists close matches.
        """
        query = str(query)
        mask = self.in_field(field)
        candidates = np.flatnonzero(mask)
        names = self.names[candidates]
        values = self.values[candidates]
        fields = self.field_of[candidates]
        prefix, sep, rest = query.partition("=")
        if sep and prefix in set(fields):
            hits = np.flatnonzero((fields == prefix) & (values == rest))
        else:
            hits = np.flatnonzero(values == query)
        if hits.size == 0:  # second chance: "T_cell" for "T cell", "dnase-seq" for "DNase-seq"
            loose = _normalised(query)
            hits = np.flatnonzero(
                [_normalised(v) == loose or _normalised(n) == loose for v, n in zip(values, names, strict=True)]
            )
        if hits.size == 1:
            return int(candidates[hits[0]])
        if hits.size > 1:
            options = ", ".join(repr(names[i]) for i in hits)
            raise ValueError(
                f"label {query!r} is ambiguous: it is a value of several fields ({options}); write it as field=value"
            )
        close = difflib.get_close_matches(query, list(names) + list(values), n=5, cutoff=0.5)
        hint = f"; close matches: {', '.join(map(repr, dict.fromkeys(close)))}" if close else ""
        raise KeyError(f"unknown label {query!r}{hint} (labels look like {names[0]!r})")


def without_shared_labels(codes: Mapping[str, np.ndarray], n_tokens: np.ndarray, *, minimum_sets: int) -> list[str]:
    """The fields whose labels cannot be calibrated: fewer than two sets carry a label that another set carries.

    ``codes``: per field, each set's label (-1: none); ``n_tokens``: each set's regions. Calibration is fitted on
    the held-out answers of the labelled sets with a region, each checked against its own label, which must be
    another set's too; with fewer than ``minimum_sets`` such sets there is no calibration to fit (none is named).
    """
    if not codes:
        return []
    fitted = np.column_stack([np.asarray(c) >= 0 for c in codes.values()]).any(axis=1) & (np.asarray(n_tokens) > 0)
    if fitted.sum() < minimum_sets:
        return []
    blocked = []
    for field, field_codes in codes.items():
        carried = np.asarray(field_codes)[fitted]
        carried = carried[carried >= 0]
        if (np.bincount(carried, minlength=1)[carried] >= 2).sum() < 2:
            blocked.append(field)
    return blocked


def label_texts(values: pd.Series, field: str, *, warn_numbers: bool = True) -> pd.Series:
    """The label of each value of the column ``field``: its text (``str``), missing values left missing.

    Text stays as it is, a whole number is its digits (``1``), a float pandas' text of it (``1.0``). A column of
    floating-point numbers cannot say how its values were written (``1``, ``01`` and ``1.0`` were read as one
    1.0), so ``warn_numbers`` warns, naming it; two different values of one column that read the same (the number
    ``1`` and the text ``"1"``) are an error naming them.
    """
    present = values.notna()
    texts = values.astype(str).where(present)
    kinds = _value_kinds(values)
    if warn_numbers and "float" in kinds:
        shown = ", ".join(repr(t) for t in pd.unique(texts[present])[:5])
        warn(
            f"labels: column {field!r} holds floating-point numbers ({shown}): each is a label as pandas writes it, "
            "and values written differently in the metadata (1, 01, 1.0) were read as one number before bedspace "
            "saw them. Keep label columns as text: read the metadata with pd.read_csv(..., dtype=str) or give "
            "bs.pp.tokenize the file"
        )
    if len(kinds) > 1:  # mixed Python objects: 1 and "1" would silently become one label
        _refuse_clashes(values[present], texts[present], field)
    return texts


def _value_kinds(values: pd.Series) -> set[str]:
    """What the non-missing values of a column are: ``"float"``, ``"text"``, ``"other"`` (ints, booleans...)."""
    dtype = values.dtype.categories.dtype if isinstance(values.dtype, pd.CategoricalDtype) else values.dtype
    if pd.api.types.is_float_dtype(dtype):
        return {"float"}
    if not pd.api.types.is_object_dtype(dtype):
        return {"text"} if pd.api.types.is_string_dtype(dtype) else {"other"}
    unique = values.cat.categories if isinstance(values.dtype, pd.CategoricalDtype) else values.dropna()
    return {
        "float" if isinstance(v, float | np.floating) else "text" if isinstance(v, str) else "other" for v in unique
    }


def _refuse_clashes(values: pd.Series, texts: pd.Series, field: str) -> None:
    """An error when two different values of the column ``field`` have one text (``1`` and ``"1"``)."""
    seen: dict[str, str] = {}
    for value, text in dict.fromkeys(zip(values.astype(object), texts, strict=True)):
        shown = f"{value!r} ({type(value).__name__})"
        if seen.setdefault(text, shown) != shown:
            raise ValueError(
                f"labels: column {field!r} holds {seen[text]} and {shown}, which would be one label {text!r}; "
                "make the column text (adata.obs[...] = adata.obs[...].astype(str)) or give them distinct values"
            )


def _normalised(text: str) -> str:
    """Loose form of a label for a second-chance match: case, spaces and punctuation ignored."""
    return re.sub(r"[^0-9a-z]+", "", text.lower())
