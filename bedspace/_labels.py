"""Labels from metadata columns: namespaced by column, any value allowed, missing values skipped."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd

LABEL_PREFIX = "__label__"


@dataclass(frozen=True)
class LabelAssignment:
    """The label table and, per set, its labels as a CSR-like pair (``ptr``, ``idx``)."""

    table: pd.DataFrame  # columns field, value; index = label names "field=value"
    ptr: np.ndarray  # int64, n_sets + 1
    idx: np.ndarray  # int64 label numbers

    def counts(self) -> np.ndarray:
        """Labels per set."""
        return np.diff(self.ptr)


def label_names(table: pd.DataFrame) -> pd.Index:
    """``field=value`` names (how labels appear in columns and searches)."""
    return pd.Index((table["field"].astype(str) + "=" + table["value"].astype(str)).tolist())


def assign_labels(obs: pd.DataFrame, fields: list[str] | str) -> LabelAssignment:
    """Turn ``obs[fields]`` into labels; the same value in two columns stays two labels."""
    fields = [fields] if isinstance(fields, str) else list(fields)
    if not fields:
        raise ValueError("labels: give at least one .obs column whose values become labels")
    unknown = [f for f in fields if f not in obs.columns]
    if unknown:
        raise KeyError(f"labels: no column(s) {unknown} in .obs; available: {list(obs.columns)}")
    if len(set(fields)) != len(fields):
        raise ValueError(f"labels: columns given more than once: {fields}")

    tables, codes = [], []
    offset = 0
    for field in fields:
        column = obs[field]
        values = column.astype("category") if not isinstance(column.dtype, pd.CategoricalDtype) else column
        values = values.cat.remove_unused_categories()
        categories = [str(c) for c in values.cat.categories]
        tables.append(pd.DataFrame({"field": field, "value": categories}))
        field_codes = values.cat.codes.to_numpy().astype(np.int64)
        codes.append(np.where(field_codes >= 0, field_codes + offset, -1))
        offset += len(categories)
    table = pd.concat(tables, ignore_index=True)
    if table.empty:
        raise ValueError(f"labels: the column(s) {fields} hold no values (all missing)")
    table.index = label_names(table)

    per_set = np.stack(codes, axis=1)  # sets × fields, -1 = missing
    present = per_set >= 0
    ptr = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int64)
    idx = per_set[present].astype(np.int64)
    return LabelAssignment(table, ptr, idx)


def label_token(field: str, value: str) -> str:
    """The StarSpace token of a label: no spaces, colons or empty parts, and reversible."""
    return f"{LABEL_PREFIX}{quote(str(field), safe='')}={quote(str(value), safe='')}"


def parse_label_token(token: str) -> tuple[str, str]:
    """``(field, value)`` of a token written by :func:`label_token`."""
    body = token.removeprefix(LABEL_PREFIX)
    field, sep, value = body.partition("=")
    if not sep:
        return "label", unquote(body)
    return unquote(field), unquote(value)


def region_token(chrom: str, start: int, end: int) -> str:
    """The StarSpace token of a universe region, ``chr1_100_200`` (no ``:``, which StarSpace reads as a weight)."""
    return f"{quote(str(chrom), safe='')}_{start}_{end}"
